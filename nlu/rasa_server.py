"""Train the `nlu/` project with the Rasa in `.rasa-venv` and serve it on loopback (`make rasa`, tests).

Rasa lives in its own venv (scripts/rasa_venv.sh): it pins ~40 packages to 2022 releases that clash with ours,
so we only ever talk to it through its command line and its HTTP API.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

RASA_VERSION = "3.6.21"
PROJECT_FILES = ("config.yml", "domain.yml", "data/nlu.yml")


class RasaServerError(Exception):
    """Rasa could not be trained or did not come up."""


@dataclass(frozen=True)
class RunningRasa:
    """A Rasa server we started: its base URL and its process."""

    url: str
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class RasaPaths:
    """Where the Rasa venv, the `nlu/` project and the trained models are."""

    venv: Path
    project: Path
    models: Path

    @classmethod
    def default(cls, root: Path) -> RasaPaths:
        """The repository's layout: `.rasa-venv`, `nlu/`, `nlu/models` (overridable by RASA_VENV)."""
        venv = Path(os.environ.get("RASA_VENV", root / ".rasa-venv"))
        return cls(venv=venv, project=root / "nlu", models=root / "nlu" / "models")

    @property
    def rasa(self) -> Path:
        """The `rasa` command of the venv."""
        return self.venv / "bin" / "rasa"

    def ready(self) -> bool:
        """Whether scripts/rasa_venv.sh finished building the venv."""
        return self.rasa.exists() and (self.venv / f".rasa-{RASA_VERSION}-installed").exists()

    def env(self) -> dict[str, str]:
        """The environment for Rasa's commands: no telemetry, its cache inside its venv, quiet TensorFlow."""
        env = dict(os.environ)
        env.update(
            RASA_TELEMETRY_ENABLED="false",
            RASA_CACHE_DIRECTORY=str(self.venv / "cache"),
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONWARNINGS="ignore",
        )
        return env


def fingerprint(paths: RasaPaths) -> str:
    """A short hash of the project files and Rasa's version: a model of that name needs no training."""
    digest = hashlib.sha256(RASA_VERSION.encode())
    for name in PROJECT_FILES:
        digest.update(name.encode() + b"\0" + (paths.project / name).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def train(paths: RasaPaths) -> Path:
    """The model trained on the project's current files; trains only when none exists yet."""
    name = f"nlu-{fingerprint(paths)}"
    model = paths.models / f"{name}.tar.gz"
    if model.exists():
        return model
    paths.models.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(paths.rasa), "train", "nlu",
        "--config", str(paths.project / "config.yml"),
        "--nlu", str(paths.project / "data" / "nlu.yml"),
        "--domain", str(paths.project / "domain.yml"),
        "--out", str(paths.models),
        "--fixed-model-name", name,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log_file:
        done = subprocess.run(cmd, env=paths.env(), stdout=log_file, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not model.exists():
            raise RasaServerError(f"rasa train failed ({done.returncode}):\n{_tail(log_file)}")
    # Models of older project files are 30+ MB each and never used again.
    for stale in paths.models.glob("nlu-*.tar.gz"):
        if stale != model:
            stale.unlink(missing_ok=True)
    return model


@contextlib.contextmanager
def serve(
    paths: RasaPaths, model: Path, *, port: int, host: str = "127.0.0.1", ready_timeout_s: float = 600.0
) -> Iterator[RunningRasa]:
    """Run `rasa run --enable-api` on `model` until the block ends; yields it once `/model/parse` answers."""
    cmd = [
        str(paths.rasa), "run", "--enable-api",
        "--model", str(model),
        "--interface", host,
        "--port", str(port),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log_file:
        # Its own session, so stopping it also stops anything it spawned, and nothing else.
        proc = subprocess.Popen(
            cmd, env=paths.env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://{host}:{port}"
            wait_until_parsing(url, proc, ready_timeout_s, log_file)
            yield RunningRasa(url=url, process=proc)
        finally:
            _stop(proc)


def wait_until_parsing(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float, log_file: IO[bytes]
) -> None:
    """Poll `POST /model/parse` until it answers 200; fail early when the server process dies."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RasaServerError(f"rasa run exited with {proc.returncode}:\n{_tail(log_file)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.post(f"{url}/model/parse", json={"text": "hallo"}).status_code == 200:
                    return
            time.sleep(0.25)
    raise RasaServerError(f"rasa run did not answer within {timeout_s:.0f} s:\n{_tail(log_file)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tail(log_file: IO[bytes], limit: int = 4000) -> str:
    log_file.seek(0)
    return log_file.read().decode("utf-8", "replace")[-limit:]


def main(argv: list[str] | None = None) -> int:
    """`python -m nlu.rasa_server train|serve|eval [--port 5005]`: train; serve in the foreground; or score.

    `eval` serves Rasa just long enough for `nlu.evaluate` to score it next to the built-in parser.
    """
    parser = argparse.ArgumentParser(prog="python -m nlu.rasa_server", description=__doc__)
    parser.add_argument("command", choices=["train", "serve", "eval"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    args = parser.parse_args(argv)

    paths = RasaPaths.default(Path(__file__).resolve().parent.parent)
    if not paths.ready():
        print(f"no Rasa venv at {paths.venv}: run scripts/rasa_venv.sh first", file=sys.stderr)
        return 1
    started = time.monotonic()
    model = train(paths)
    print(f"model {model} ready after {time.monotonic() - started:.1f} s", flush=True)
    if args.command == "train":
        return 0
    started = time.monotonic()
    if args.command == "eval":
        from nlu import evaluate

        with serve(paths, model, port=args.port, host=args.host) as rasa:
            print(f"Rasa up in {time.monotonic() - started:.1f} s", flush=True)
            return evaluate.main(["--rasa-url", rasa.url])
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # A shell starts background jobs with SIGINT ignored, and an ignored signal never reaches sigtimedwait.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with serve(paths, model, port=args.port, host=args.host) as rasa:
        print(
            f"Rasa serves {rasa.url}/model/parse (up in {time.monotonic() - started:.1f} s); Ctrl-C stops it"
        )
        print(f"  RASA_URL={rasa.url}", flush=True)
        while rasa.process.poll() is None:
            if signal.sigtimedwait(stop_signals, 1.0) is not None:
                return 0
    print(f"rasa run exited with {rasa.process.returncode}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
