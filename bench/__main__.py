"""`make bench`: run the benchmarks one after the other and print their figures.

`python -m bench` runs them all (options go to the fan-out benchmark, as before);
`python -m bench inbound --messages 2000` runs one benchmark with its own options.
"""

from __future__ import annotations

import sys

from bench import fanout_bench, inbound_bench

BENCHMARKS = {"fanout": fanout_bench.main, "inbound": inbound_bench.main}


def main() -> int:
    """Run every benchmark with its quick defaults, or the one named first."""
    argv = sys.argv[1:]
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    return fanout_bench.main(argv) or inbound_bench.main([])


if __name__ == "__main__":
    sys.exit(main())
