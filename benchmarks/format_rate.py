"""Read-plus-parse rate (events/s) of each input format.

For every file given (default: the three committed format fixtures, which
hold the same simulated events), reads each event with the format's reader
and runs the schema's parsers on it (data, semantic labels, cluster labels),
as the training loader does. Reports events/s and voxels/s per format.

Usage::

    python benchmarks/format_rate.py                      # committed fixtures
    python benchmarks/format_rate.py --sim-size 512 --events 20
    python benchmarks/format_rate.py --file larcv2:/data/pilarnet_512.root

``--sim-size`` also writes the same simulated events of that image size in
each format to temporary files and measures them: larcv3 (needs larcv),
PILArNet-M, and larcv2 when the PyPI ``root`` wheel is importable (the
writer of ``tests/fixtures/make_larcv2_fixture.py``; skipped with a log
line otherwise).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(ROOT_DIR / "tests" / "fixtures"))

log = logging.getLogger("format_rate")

#: Product names of each format's schema (see chain_configs/pilarnet_*.yaml).
SCHEMAS: Dict[str, Dict[str, str]] = {
    "larcv3": {"data": "sparse3d_data", "semantics": "sparse3d_semantics",
               "cluster": "cluster3d_pcluster"},
    "larcv2": {"data": "sparse3d_data", "semantics": "sparse3d_fivetypes",
               "cluster": "cluster3d_mcst"},
    "pilarnet_m": {"data": "sparse3d_data", "semantics": "sparse3d_semantics",
                   "cluster": "cluster3d_pcluster"},
}


def open_any(fmt: str, path: str, size: int, voxel_cm: float):
    """A reader for ``path``; PILArNet-M gets the grid of the file's events."""
    from parsers.readers import open_reader

    if fmt == "pilarnet_m":  # io.dataset.reader_options of chain_configs/pilarnet_m.yaml
        return open_reader(path, fmt, grid_size=size, voxel_cm=voxel_cm)
    return open_reader(path, fmt)


def measure(reader, schema: Dict[str, str], max_events: int) -> Tuple[int, int, float]:
    """Read and parse up to ``max_events``; return (events, voxels, seconds)."""
    from parsers.cluster import parse_cluster3d
    from parsers.sparse import parse_sparse3d

    n = min(len(reader), max_events)
    voxels = 0
    start = time.perf_counter()
    for i in range(n):
        record = reader[i]
        data = parse_sparse3d(record, schema["data"])
        parse_sparse3d(record, schema["semantics"])
        parse_cluster3d(record, schema["cluster"], schema["semantics"])
        voxels += len(data)
    return n, voxels, time.perf_counter() - start


def rate_table(rows: List[Tuple[str, str, int, int, float]]) -> str:
    """The result table as text."""
    lines = [f"{'format':<11} {'events':>6} {'voxels/ev':>10} {'events/s':>9} {'Mvox/s':>7}  file"]
    for fmt, path, n, voxels, seconds in rows:
        lines.append(f"{fmt:<11} {n:>6} {voxels / max(n, 1):>10.0f} {n / seconds:>9.1f} "
                     f"{voxels / seconds / 1e6:>7.2f}  {path}")
    return "\n".join(lines)


def simulate_formats(folder: Path, n: int, seed: int, size: int,
                     voxel_mm: float) -> List[Tuple[str, str]]:
    """Write the same simulated events in each available format; (format, path) pairs."""
    from make_pilarnet_m_fixture import write_pilarnet_m
    from mlreco_spice.sim import simulate_events
    from parsers.writer import write_events

    log.info("simulating %d events of %d px", n, size)
    records = list(simulate_events(n, seed, size, voxel_mm))
    out = [("larcv3", str(folder / f"sim_{size}_larcv3.h5")),
           ("pilarnet_m", str(folder / f"sim_{size}_pilarnet_m.h5"))]
    write_events(out[0][1], records)
    write_pilarnet_m(records, out[1][1])
    try:
        from make_larcv2_fixture import load_root_classes, write_larcv2

        root = load_root_classes(folder)
    except ImportError as err:  # the root wheel is test-only
        log.info("larcv2 not simulated (%s): pip install --pre root", err)
        return out
    out.append(("larcv2", str(folder / f"sim_{size}_larcv2.root")))
    write_larcv2(records, Path(out[-1][1]), root)
    return out


def main(argv=None) -> int:
    from fixture_events import (FIXTURE_EVENTS, LARCV2_FIXTURE, LARCV3_FIXTURE,
                                PILARNET_M_FIXTURE)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", default=[],
                        help="FORMAT:PATH (format larcv3, larcv2 or pilarnet_m); repeatable")
    parser.add_argument("--events", type=int, default=200, help="events per file at most")
    parser.add_argument("--repeat", type=int, default=3, help="passes per file (best kept)")
    parser.add_argument("--sim-size", "--pilarnet-m-size", type=int, default=0,
                        help="also simulate events of this image size into each format")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    size, voxel_cm = FIXTURE_EVENTS["size"], FIXTURE_EVENTS["voxel_mm"] / 10
    files = [tuple(spec.split(":", 1)) for spec in args.file]
    if not files:
        files = [(fmt, str(path)) for fmt, path in (("larcv3", LARCV3_FIXTURE),
                                                     ("larcv2", LARCV2_FIXTURE),
                                                     ("pilarnet_m", PILARNET_M_FIXTURE))
                 if path.exists()]
    with tempfile.TemporaryDirectory() as tmp:
        sim_size = args.sim_size
        simulated = simulate_formats(Path(tmp), min(args.events, 20), args.seed, sim_size,
                                     FIXTURE_EVENTS["voxel_mm"]) if sim_size else []
        files.extend(simulated)
        rows = []
        for fmt, path in files:
            grid = sim_size if (fmt, path) in simulated else size
            best = None
            for _ in range(args.repeat):
                reader = open_any(fmt, path, grid, voxel_cm)
                result = measure(reader, SCHEMAS[fmt], args.events)
                reader.close()
                if best is None or result[2] < best[2]:
                    best = result
            rows.append((fmt, Path(path).name, *best))
    print(rate_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
