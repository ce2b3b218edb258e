"""``mlreco-spice``: the command line. Parses arguments, calls library functions.

Every subcommand is a thin shell over a function that Python users can call
directly; heavy modules are imported only when their subcommand runs, so
``--help`` is instant and works without MinkowskiEngine.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, List, Optional

from . import __version__
from .errors import UserError

log = logging.getLogger("mlreco_spice")

_SET_HELP = ("override a config key, value parsed as YAML; repeat for several "
             "(e.g. --set train.iterations=50 --set model.modules.spice.network.uresnet.filters=16)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by predict and evaluate."""
    p.add_argument("-c", "--config", default="predict",
                   help="chain config YAML, or the name of a shipped one (default: predict, "
                        "which uses the shipped weights and thresholds)")
    p.add_argument("-i", "--input", nargs="+", required=True, metavar="FILE_OR_GLOB",
                   help="larcv files, globs or directories (quote globs for large sets)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--weights", help="checkpoint or weights file (overrides predict.weights)")
    p.add_argument("--shard", metavar="i/n", help="process only shard i of n (0-based) of the input files")
    p.add_argument("--max-events", type=int, metavar="N", help="stop after N events per file")
    p.add_argument("--overwrite", action="store_true",
                   help="redo outputs that exist, even when made with another config or weights")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """-v/-q/--traceback, accepted before the subcommand and after it.

    The subcommands' copies default to SUPPRESS, so that an option given
    before the subcommand is not reset by the subparser's default.
    """
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("global options (before or after the command)")
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    group.add_argument("-v", "--verbose", action="count", default=default(0),
                       help="more log output (-vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="warnings and errors only, no progress bars")
    group.add_argument("--traceback", action="store_true", default=default(False),
                       help="show Python tracebacks on errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="mlreco-spice",
        description="SPICE particle clustering for LArTPC images: simulate data, train, "
                    "predict, tune thresholds, evaluate and display.",
        epilog="Typical session:\n"
               "  mlreco-spice simulate -o train.h5 -n 500 --seed 1\n"
               "  mlreco-spice train -c chain_configs/spice_train.yaml --set io.dataset.files=[train.h5]\n"
               "  mlreco-spice predict -i data/*.h5 -o out/\n"
               "  mlreco-spice evaluate -i out/ -o eval/ --plots\n"
               "Run `mlreco-spice COMMAND --help` for each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_global_options(False)])
    parser.add_argument("--version", action="version", version=f"mlreco_spice {__version__}")
    common = _global_options(True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("simulate", parents=[common],
                       help="write PILArNet-like simulated events to a larcv3 file",
                       description="Simulate PILArNet-like events (tracks, showers, Michels, deltas) "
                                   "into a larcv3 file with sparse3d_data, sparse3d_semantics, "
                                   "cluster3d_pcluster and particle_pcluster; or, with --stats, "
                                   "print the Table I statistics of any larcv file.")
    p.add_argument("-o", "--output", metavar="FILE", help="output larcv3 .h5 file")
    p.add_argument("-n", "--events", type=int, metavar="N", help="number of events")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical arrays")
    p.add_argument("--size", type=int, default=512, help="image side in voxels (default 512)")
    p.add_argument("--voxel-mm", type=float, default=3.0, help="voxel pitch in mm (default 3)")
    p.add_argument("--stats", metavar="FILE", help="print per-class instance and voxel statistics of FILE")
    p.add_argument("--first-event", type=int, default=0, help="event number of the first event")
    p.add_argument("--labels", choices=("pilarnet2020", "spine"), default="pilarnet2020",
                   help="semantic codes to write: pilarnet2020 (0 HIP, 1 MIP, 2 shower, 3 delta, "
                        "4 Michel) or spine (0 shower, 1 track, 2 Michel, 3 delta; read them "
                        "with io.dataset.labels: spine)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")

    p = sub.add_parser("train", parents=[common],
                       help="train a chain from a YAML config",
                       description="Train the chain's stages. Checkpoints and a CSV log go to "
                                   "train.output_dir (default: runs/<config name> in the working "
                                   "directory; logged at the start). Runs on CUDA when present. "
                                   "For several "
                                   "processes: torchrun --nproc_per_node N -m mlreco_spice train ...")
    p.add_argument("-c", "--config", required=True, help="chain config YAML or shipped name (spice_train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.output_dir")
    p.add_argument("--restart-from", metavar="WEIGHTS",
                   help="start a new run from exported weights (or a checkpoint) at the iteration "
                        "they record: schedule and batch order continue, Adam's moments restart "
                        "with a linear warm-up of train.restart_warmup iterations (a long run "
                        "whose run directory was lost)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in train.output_dir (its checkpoints and logs are "
                        "removed); without it or --resume such a directory is refused")

    p = sub.add_parser("average", parents=[common],
                       help="average a run's checkpoints into one weights file (SWA)",
                       description="Average the weights of a run's checkpoints at iterations FIRST, "
                                   "FIRST+EVERY, ... LAST (stochastic weight averaging), recompute "
                                   "the batch-norm statistics over training events with the "
                                   "averaged weights, and write a weights file that loads "
                                   "wherever weights do (predict.weights, --weights, export_run.py "
                                   "--combine; float32). train.keep_checkpoints prunes old "
                                   "checkpoints: set train.keep_grid_from to the first iteration to "
                                   "average before training (and keep train.checkpoint_every "
                                   "unchanged). 200 events of batch-norm statistics: about a minute "
                                   "on 2 CPU cores.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory with checkpoint-<iteration>.pt files")
    p.add_argument("-o", "--output", required=True, metavar="WEIGHTS.pt", help="file to write")
    p.add_argument("--first", type=int, required=True, metavar="ITER",
                   help="first iteration averaged (on the grid of --every)")
    p.add_argument("--last", type=int, metavar="ITER", help="last iteration averaged "
                   "(default: the newest checkpoint on the grid)")
    p.add_argument("--every", type=int, metavar="N", help="iterations between averaged "
                   "checkpoints, a multiple of train.checkpoint_every (default: the run's "
                   "train.checkpoint_every)")
    p.add_argument("--bn-events", type=int, default=200, metavar="N",
                   help="training events for the batch-norm statistics (default: %(default)s)")
    p.add_argument("--bn-files", nargs="+", metavar="FILE",
                   help="files for the batch-norm statistics (default: the run's training files)")
    p.add_argument("--seed", type=int, default=0, help="seed of the event draw (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace WEIGHTS.pt if it exists")

    p = sub.add_parser("predict", parents=[common],
                       help="run the chain over larcv files and write cluster3d_spice",
                       description="Write one <stem>_spice.h5 per input file with the input products, "
                                   "sparse3d_semantics_pred, cluster3d_spice and particle_spice, plus "
                                   "<stem>_timing.csv. Completed outputs are skipped on re-run.")
    _add_run_args(p)

    p = sub.add_parser("evaluate", parents=[common],
                       help="per-event clustering metrics (CSV), summary table and plots",
                       description="Compute ARI, purity and efficiency per event and class. Inputs are "
                                   "predict outputs, or raw files (then the chain runs first). Every "
                                   "column of every CSV, with units: docs/outputs.md in the "
                                   "repository.")
    _add_run_args(p)
    p.add_argument("--plots", action="store_true", help="also write the paper's figures as PNGs")
    p.add_argument("--append", action="store_true", help="add to existing results in OUTDIR instead of refusing")

    p = sub.add_parser("tune", parents=[common],
                       help="grid-search the per-class thresholds s0/p0 on validation events",
                       description="Run the network once per event, then grid-search s0 in [0,1] and "
                                   "p0 in [0,0.6] per class, maximising mean ARI (ties: purity+efficiency), "
                                   "with the config's clusterer steps (at_least_one_seed, refine_iterations, "
                                   "merge_p) applied at every grid point. If the clusterer sets "
                                   "connect_radius_cm, connect_p is then picked per class (with its connect_max_bend veto); if it "
                                   "sets absorb_radius_cm, absorb_p is picked over whole events (with "
                                   "reconnect_after_absorb as set). Writes a YAML "
                                   "block for predict.thresholds. With 200 events on 2 CPU cores: about 2 minutes "
                                   "(chain_configs/predict.yaml), 3.5 minutes "
                                   "(chain_configs/predict_all_steps.yaml: every step on).")
    p.add_argument("-c", "--config", default="predict", help="chain config (default: predict)")
    p.add_argument("-i", "--input", nargs="+", required=True, metavar="FILE_OR_GLOB")
    p.add_argument("-o", "--output", required=True, metavar="THRESHOLDS.yaml")
    p.add_argument("--weights", help="checkpoint or weights file")
    p.add_argument("--events", type=int, default=100, help="validation events to use (paper: 100)")
    p.add_argument("--step", type=float, default=0.05, help="grid step for s0 and p0 (default 0.05)")
    p.add_argument("--metric", default="ari", choices=("ari", "purity", "efficiency"),
                   help="metric to maximise (default ari)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)

    p = sub.add_parser("display", parents=[common],
                       help="event display: interactive HTML and a PNG",
                       description="Draw one event: energy, true classes, true and predicted "
                                   "instances, and the embedding space.")
    p.add_argument("-i", "--input", required=True, metavar="FILE")
    p.add_argument("--entry", type=int, required=True, metavar="N", help="entry in the file (0-based)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("-c", "--config", default="predict", help="chain config (default: predict)")
    p.add_argument("--weights", help="checkpoint or weights file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)

    p = sub.add_parser("import-config", parents=[common],
                       help="translate a SPINE or lartpc_mlreco3d SPICE config into a chain config",
                       description="Read a SPINE (1.4.3) or lartpc_mlreco3d SPICE config, write the "
                                   "equivalent chain config and print the key-by-key mapping. Keys "
                                   "with no equivalent are listed with what to use instead. SPINE "
                                   "checkpoints then load with --weights or model.modules.spice.weights.")
    p.add_argument("peer", metavar="PEER.yaml", help="the SPINE or lartpc_mlreco3d config")
    p.add_argument("-o", "--output", required=True, metavar="CHAIN.yaml", help="chain config to write")
    p.add_argument("--overwrite", action="store_true", help="replace CHAIN.yaml if it exists")
    return parser


def _handler(command: str) -> Callable[[argparse.Namespace], Optional[int]]:
    # Imported lazily: each command pulls in only what it needs.
    from . import commands

    return getattr(commands, f"run_{command.replace('-', '_')}")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``mlreco-spice`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    _setup_logging(args.verbose, args.quiet)
    try:
        code = _handler(args.command)(args)
    except UserError as err:
        if args.traceback:
            raise
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
