"""Rasa for real: train and start times, `/model/parse` latency through RasaParser, next to the built-in.

Run: `make rasa-bench` or `.venv/bin/python -m bench.rasa_bench [--fresh] [--rounds N]`.
`--fresh` trains into a temporary folder to time training; otherwise the cached model in nlu/models is used.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from nlu import rasa_server
from nlu.rasa import RasaParser
from nlu.types import Parser, ParseResult

ROOT = Path(__file__).resolve().parent.parent
PROBES = (
    "hallo",
    "ik wil me aanmelden voor burgernet",
    "stop ik wil geen berichten meer",
    "ik ben verhuisd naar 7511 AB 12",
    "wat weten jullie over mij",
    "hoe werkt dit",
    "ik zag een man in een rode jas richting het station fietsen",
    "zwarte golf 12-ABC-3 reed 10 minuten geleden naar het noorden",
    "ja",
    "nee hoor",
    "wat voor weer wordt het morgen",
    "I saw him running towards the station",
)


class _NoFallback:
    async def parse(self, text: str) -> ParseResult:
        raise RuntimeError("Rasa did not answer during the benchmark")


def probe_texts() -> list[str]:
    """The held-out examples of nlu/data/test.yml when present, else a fixed set of probes."""
    test_file = ROOT / "nlu" / "data" / "test.yml"
    if not test_file.exists():
        return list(PROBES)
    texts: list[str] = []
    for block in (yaml.safe_load(test_file.read_text(encoding="utf-8")) or {}).get("nlu", []):
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                texts.append(_strip_annotations(line[2:]))
    return texts or list(PROBES)


def _strip_annotations(example: str) -> str:
    # Rasa marks entities as [text](entity) or [text]{"entity": ...}; the parser sees only the text.
    return re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})", r"\1", example)


def builtin_parser() -> Parser | None:
    """The built-in parser made by the factory (RASA_URL unset), or None while it does not exist yet."""
    try:
        from nlu.factory import make_parser
    except ImportError:
        return None
    return make_parser(rasa_url=None)


async def timed(parser: Parser, texts: Sequence[str], rounds: int) -> list[float]:
    """Milliseconds per parse over `rounds` passes of `texts`, after one warm-up pass."""
    for text in texts:
        await parser.parse(text)
    out: list[float] = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            await parser.parse(text)
            out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _measure(url: str, texts: list[str], rounds: int) -> tuple[list[float], list[float] | None, float]:
    builtin = builtin_parser()
    async with RasaParser(url, fallback=_NoFallback(), timeout_s=10.0) as rasa:
        rasa_ms = await timed(rasa, texts, rounds)
    builtin_ms = await timed(builtin, texts, rounds) if builtin is not None else None
    agree = 0.0
    if builtin is not None:
        async with RasaParser(url, fallback=_NoFallback(), timeout_s=10.0) as rasa:
            pairs = [(await rasa.parse(t), await builtin.parse(t)) for t in texts]
        agree = sum(a.intent.name == b.intent.name for a, b in pairs) / len(pairs)
    return rasa_ms, builtin_ms, agree


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="train into a temporary folder to time training")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--project", type=Path, help="another Rasa project folder than nlu/ (trained fresh)")
    args = parser.parse_args(argv)

    paths = rasa_server.RasaPaths.default(ROOT)
    if not paths.ready():
        print(f"no Rasa venv at {paths.venv}: run scripts/rasa_venv.sh (make rasa-venv)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        if args.project is not None:
            paths = replace(paths, project=args.project.resolve())
        if args.fresh or args.project is not None:
            paths = replace(paths, models=Path(tmp))
        started = time.monotonic()
        model = rasa_server.train(paths)
        train_s = time.monotonic() - started
        started = time.monotonic()
        with rasa_server.serve(paths, model, port=_free_port()) as server:
            up_s = time.monotonic() - started
            texts = probe_texts()
            rasa_ms, builtin_ms, agree = asyncio.run(_measure(server.url, texts, args.rounds))
            rss = rss_mib(server.process.pid)

    label = "trained" if args.fresh or args.project is not None else "train (0 when cached)"
    print(f"rasa {rasa_server.RASA_VERSION}, model {model.name}")
    print(
        f"{label}: {train_s:.1f} s; server up (until /model/parse answers): {up_s:.1f} s; RSS {rss:.0f} MiB"
    )
    print(f"{len(texts)} texts x {args.rounds} rounds, sequential, one client")
    print(f"RasaParser (HTTP):   p50 {pct(rasa_ms, 50):7.2f} ms   p99 {pct(rasa_ms, 99):7.2f} ms")
    if builtin_ms is None:
        print("built-in parser: not there yet (nlu/factory.py missing)")
        return 0
    print(f"built-in parser:     p50 {pct(builtin_ms, 50):7.2f} ms   p99 {pct(builtin_ms, 99):7.2f} ms")
    print(
        f"ratio Rasa / built-in: p50 x{statistics.median(rasa_ms) / statistics.median(builtin_ms):.1f}, "
        f"p99 x{pct(rasa_ms, 99) / pct(builtin_ms, 99):.1f}; same intent on {agree:.0%} of the texts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
