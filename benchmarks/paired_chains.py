"""Two chains scored on the same events, compared event by event.

``benchmarks/accuracy.py`` writes per-event scores (``events.csv``: ARI per event and true
class; ``particles.csv``: particle-level ARI per event). Given two of its output folders,
made on the same events (e.g. a candidate model and the shipped one), this prints one
method's change per class and at particle level as the mean of the paired per-event
differences ± its standard error (:func:`step_rule.paired_change`), and writes the table
as ``paired.md`` in ``--out`` (default: the candidate's folder).

The selection rule of BENCHMARKS.md ("Which weights serve the chain") reads the
particle-level row: a candidate whose particle-level ARI is lower than the shipped
model's by more than one standard error is not chosen.

Usage::

    .venv/bin/python benchmarks/paired_chains.py RUN/candidate RUN/shipped --method full_chain
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_rule import Change, paired_change  # noqa: E402

from mlreco_spice.atomic import atomic_write_text  # noqa: E402
from mlreco_spice.columns import CLASS_NAMES  # noqa: E402
from mlreco_spice.errors import UserError  # noqa: E402

PARTICLE = "particle level"
#: Per event, a fingerprint of the event itself (not of the method): its labelled voxels.
SIZE = "particle_n_voxels_true"


def _key(row: Dict[str, str]) -> Tuple[str, str]:
    # Entry within a named file: the same event in both folders whatever their order.
    return Path(row["file"]).name, row["entry"]



def read_scores(folder: Path, method: str) -> Dict[str, Dict[Tuple[str, str], float]]:
    """{class or PARTICLE: {event: ARI}, and SIZE: {event: labelled voxels}} of one method
    in an accuracy.py output folder."""
    scores: Dict[str, Dict[Tuple[str, str], float]] = {
        c: {} for c in CLASS_NAMES + (PARTICLE, SIZE)}
    for name, column in (("events.csv", "ari"), ("particles.csv", "particle_ari")):
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} not found: give a benchmarks/accuracy.py --out folder")
        with open(path, newline="") as stream:
            for row in csv.DictReader(stream):
                if row["method"] != method:
                    continue
                target = scores[PARTICLE] if name == "particles.csv" else scores.get(row["class"])
                if target is not None:
                    value = row[column]
                    target[_key(row)] = float(value) if value not in ("", "nan") else math.nan
                if name == "particles.csv" and row.get(SIZE):
                    scores[SIZE][_key(row)] = float(row[SIZE])
    if not scores[PARTICLE]:
        raise UserError(f"{folder}: no rows of method '{method}'")
    return scores


def compare(candidate: Path, reference: Path, method: str) -> Dict[str, Tuple[Change, float]]:
    """Per class and PARTICLE: (paired change candidate - reference, reference mean)."""
    new, old = read_scores(candidate, method), read_scores(reference, method)
    shared = set(new[PARTICLE]) & set(old[PARTICLE])
    if not shared:
        raise UserError(f"{candidate} and {reference} share no event: score the same events")
    # The same file name and entry but other voxels: a file simulated again differently.
    differ = sorted(k for k in shared if k in new[SIZE] and k in old[SIZE]
                    and new[SIZE][k] != old[SIZE][k])
    if differ:
        raise UserError(f"{len(differ)} events have the same file name and entry but other "
                        f"labelled voxels in the two folders (first: {differ[0]}): not the "
                        "same events")
    out = {}
    for name in CLASS_NAMES + (PARTICLE,):
        ref = [v for k, v in old[name].items() if k in shared and not math.isnan(v)]
        out[name] = (paired_change(new[name], old[name]),
                     float(sum(ref) / len(ref)) if ref else math.nan)
    return out


def markdown(changes: Dict[str, Tuple[Change, float]], candidate: Path, reference: Path,
             method: str) -> str:
    lines = [f"`{method}`: {candidate} against {reference} (paired per event; ± one standard "
             "error of the mean difference; the reference mean over the events both scored "
             "or the reference alone scored)", "",
             "| | reference mean ARI | change | events |", "|---|---|---|---|"]
    for name, (change, mean) in changes.items():
        lines.append(f"| {name} | {mean:.4f} | {change} | {change.n} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("candidate", type=Path, help="accuracy.py --out folder of the candidate")
    p.add_argument("reference", type=Path, help="accuracy.py --out folder it is compared with")
    p.add_argument("--method", default="full_chain", help="method compared (default: %(default)s)")
    p.add_argument("--out", type=Path, help="folder for paired.md (default: the candidate's)")
    args = p.parse_args(argv)
    try:
        changes = compare(args.candidate, args.reference, args.method)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = markdown(changes, args.candidate, args.reference, args.method)
    folder = args.out or args.candidate
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "paired.md", text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
