"""`make bench`: run the benchmarks one after the other and print their figures."""

from __future__ import annotations

import sys

from bench import fanout_bench


def main() -> int:
    """Run every benchmark with its quick defaults."""
    return fanout_bench.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
