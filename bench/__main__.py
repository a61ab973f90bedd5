"""`make bench`: run the benchmarks one after the other and print their figures."""

from __future__ import annotations

import sys

from bench import fanout_bench, serve_bench


def main() -> int:
    """Run every benchmark with its quick defaults (arguments go to the fan-out benchmark)."""
    status = fanout_bench.main(sys.argv[1:])
    return status or serve_bench.main([])


if __name__ == "__main__":
    sys.exit(main())
