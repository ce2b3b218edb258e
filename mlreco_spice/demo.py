"""``make demo``: the main job on the shipped default, end to end.

1. simulate a small test set (fixed seed never used in training, 512 px), or
   reuse the one a previous demo left when it is of this simulator version
   with the same seed, size and event count; one of another version is
   refused, naming both versions;
2. print its Table I statistics;
3. run the full chain with the shipped weights (``predict``);
4. evaluate the predictions: CSVs, the Table III summary, the paper's plots;
5. draw one event display (HTML + PNG);
6. print where everything is.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

log = logging.getLogger("mlreco_spice.demo")

DEMO_SEED = 20201231  # never used for training, tuning or the accuracy benchmark


def _shipped_weights() -> Optional[Path]:
    from .config import find_config, load_config

    cfg = load_config(str(find_config("predict")))
    weights = cfg["predict"]["weights"]
    return Path(weights) if weights and Path(weights).is_file() else None


def _reusable_events(data: Path, n_events: int, size: int) -> bool:
    """Whether a previous demo's events can be reused; refuses another simulator version."""
    from .sim.version import check_simulated_file, describe, read_simulation_info

    if not data.is_file():
        return False
    check_simulated_file(data)   # raises, naming both versions, for another version
    info = read_simulation_info(data)
    wanted = {"seed": DEMO_SEED, "size": size, "n_events": n_events, "first_event": 0}
    if any(info.get(k) != v for k, v in wanted.items()):
        log.info("%s holds other events (%s): simulating again", data, describe(info))
        return False
    return True


def _weights_mismatch(weights: Path) -> Optional[str]:
    """A warning when the weights were trained on another simulator version than the
    events the demo makes (weights record it since version 2; older ones do not)."""
    from .checkpoint import load_checkpoint
    from .sim.version import SIM_VERSION

    trained = (load_checkpoint(weights).get("simulator") or {}).get("version")
    if trained == SIM_VERSION:
        return None
    return (f"{weights} was trained on simulator version {trained or '1 (not recorded)'}, "
            f"these events are version {SIM_VERSION}: expect poor accuracy until a model "
            f"trained on version {SIM_VERSION} ships (README, 'The shipped model')")


def run_demo(output: str, n_events: int = 20, size: int = 512) -> int:
    """Run the demo into ``output``; returns a process exit code."""
    from .cli import main as cli

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "demo_events.h5"
    start = time.time()
    if _reusable_events(data, n_events, size):
        log.info("reusing %s (same simulator version, seed, size and events)", data)
    else:
        code = cli(["simulate", "-o", str(data), "-n", str(n_events), "--seed", str(DEMO_SEED),
                    "--size", str(size), "--overwrite"])
        if code:
            return code
    code = cli(["simulate", "--stats", str(data)])
    if code:
        return code
    weights = _shipped_weights()
    if weights is None:
        log.error("no shipped weights (weights/spice_default.pt): run `make train-default`")
        return 1
    mismatch = _weights_mismatch(weights)
    if mismatch:
        log.warning("%s", mismatch)
    predictions = out / "predictions"
    predicted = predictions / f"{data.stem}_spice.h5"
    steps = (["predict", "-i", str(data), "-o", str(predictions), "--overwrite"],
             ["evaluate", "-i", str(predicted), "-o", str(out / "evaluation"), "--plots",
              "--overwrite"],
             ["display", "-i", str(predicted), "--entry", "0", "-o", str(out / "display")])
    for step in steps:
        code = cli(step)
        if code:
            return code
    print(f"\ndemo finished in {time.time() - start:.0f} s. Outputs in {out.resolve()}:\n"
          f"  {predictions}/          larcv files with cluster3d_spice, timing CSVs\n"
          f"  {out / 'evaluation'}/   cluster_metrics.csv, clusters.csv, pred_clusters.csv,\n"
          f"                           summary.md, summary.csv, *.png\n"
          f"  {out / 'display'}/      event display (HTML, PNG)")
    if mismatch:
        print(f"note: {mismatch}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="mlreco_spice demo (what `make demo` runs)")
    parser.add_argument("--output", default="demo_output", help="output directory")
    parser.add_argument("-n", "--events", type=int, default=20, help="events to simulate")
    parser.add_argument("--size", type=int, default=512, help="image size in voxels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .errors import UserError

    try:
        return run_demo(args.output, args.events, args.size)
    except UserError as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
