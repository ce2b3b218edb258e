"""Check simulated files from a shell script (``make train-default``).

Exit status 0 when every file is of this simulator version (and of the
seed, size and length asked); 1, with one line on stderr, when not::

    python -m mlreco_spice.sim.check_files FILE [FILE ...] [--seed S] [--size N] [--events N]

(Its own module, not :mod:`.version`, which the package imports: running an
imported module with ``-m`` makes Python warn.)
"""
from __future__ import annotations

import sys
from typing import Optional

from mlreco_spice.errors import DataError

from .version import check_simulated_file, describe

__all__ = ["main"]


def main(argv: Optional[list] = None) -> int:
    """Check files from a shell script: exit 0 when all are of this version (and settings)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mlreco_spice.sim.check_files",
        description="Check that simulated files are of this simulator version (exit 1, one "
                    "line on stderr, when not), and optionally of a seed, size and length.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--seed", type=int, help="the seed the files must have")
    parser.add_argument("--size", type=int, help="the image size they must have")
    parser.add_argument("--events", type=int, dest="n_events", help="their number of events")
    args = parser.parse_args(argv)
    expected = {k: v for k, v in (("seed", args.seed), ("size", args.size),
                                  ("n_events", args.n_events)) if v is not None}
    for path in args.files:
        try:
            print(f"{path}: {describe(check_simulated_file(path, **expected))}")
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
