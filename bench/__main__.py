"""`make bench`: run the benchmarks one after the other and print their figures."""

from __future__ import annotations

import sys

from bench import fanout_bench, serve_bench, tip_bench


def main() -> int:
    """Run every benchmark with its quick defaults (arguments go to the fan-out benchmark; tips for 10 s)."""
    fanout = fanout_bench.main(sys.argv[1:])
    tips = tip_bench.main(["--seconds", "10"])
    serve = serve_bench.main([])
    return fanout or tips or serve
