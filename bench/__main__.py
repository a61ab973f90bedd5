"""`make bench`: run the benchmarks one after the other and print their figures.

`python -m bench NAME [ARGS]` runs one of them with its own arguments (fanout, tips, inbound, serve,
guards, login-flood).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import fanout_bench, guards_bench, inbound_bench, login_flood_bench, serve_bench, tip_bench

BENCHMARKS: dict[str, Callable[[list[str]], int]] = {
    "fanout": fanout_bench.main,
    "tips": tip_bench.main,
    "inbound": inbound_bench.main,
    "serve": serve_bench.main,
    "guards": guards_bench.main,
    "login-flood": login_flood_bench.main,
}
QUICK: dict[str, list[str]] = {"tips": ["--seconds", "10"], "login-flood": ["--seconds", "5"]}


def main() -> int:
    """Run every benchmark with its quick defaults, or the one named first with the arguments after it."""
    argv = sys.argv[1:]
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    status = 0
    for name, run in BENCHMARKS.items():
        status = run(QUICK.get(name, [])) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
