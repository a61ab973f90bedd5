"""`make bench`: run the benchmarks one after the other and print their figures."""

from __future__ import annotations

import sys

from bench import fanout_bench, tip_bench


def main() -> int:
    """Run every benchmark with its quick defaults (the tip benchmark for 10 s instead of 30 s)."""
    fanout = fanout_bench.main(sys.argv[1:])
    tips = tip_bench.main(["--seconds", "10"])
    return fanout or tips


if __name__ == "__main__":
    sys.exit(main())
