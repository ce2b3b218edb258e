"""benchmarks/train_vs_spine.py: the equal-compute race with SPINE, end to end on tiny settings.

Tiny simulated files (4 events of 128^3), a tiny architecture on both sides
(filters 4, depth 2: SPINE depth 3), 3 iterations of 2 events each. Checks
the outputs, that a rerun skips finished steps, that an interrupted SPINE run
resumes from its checkpoint to the same weights, that SPINE's labels reach its
loss unchanged, and that the fast SPINE tuning gives SPINE's clusterer's own
clusters.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import spine  # noqa: F401  (test extra: this test must never be skipped)
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import train_vs_spine  # noqa: E402
from mlreco_spice.columns import CLASS_NAMES, INSTANCE_COL, SEMANTIC_COL  # noqa: E402
from mlreco_spice.errors import UserError  # noqa: E402

TINY = ["--iterations", "3", "--batch", "2", "--val-events", "4", "--test-events", "4",
        "--checkpoint-every", "2",
        "--set", "model.modules.spice.network.uresnet.filters=4",
        "--set", "model.modules.spice.network.uresnet.depth=2",
        "--set", "model.modules.spice.network.norm_length=128",
        "--set", "train.freeze_seediness_iterations=1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from mlreco_spice.sim import simulate_file

    folder = tmp_path_factory.mktemp("race_data")
    paths = {}
    for name, seed in (("train", 1), ("val", 2), ("test", 3)):
        paths[name] = folder / f"{name}.h5"
        simulate_file(str(paths[name]), n_events=4, seed=seed, size=128)
    return paths


def _argv(files, out):
    return ["--train", str(files["train"]), "--val", str(files["val"]), "--test",
            str(files["test"]), "--out", str(out)] + TINY


@pytest.fixture(scope="module")
def race(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("race")
    assert train_vs_spine.main(_argv(files, out)) == 0
    return out


def _read_csv(path):
    import csv

    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_race_csv_has_every_side_and_class(race, capsys):
    rows = _read_csv(race / "race.csv")
    assert [(r["side"], r["class"]) for r in rows] == \
        [(s, c) for s in ("ours", "spine") for c in CLASS_NAMES]
    for row in rows:
        assert int(row["n_events"]) > 0 and math.isfinite(float(row["ari"])), row
    # The same events and classes were scored for both sides.
    events = _read_csv(race / "events.csv")
    keys = {side: sorted((r["entry"], r["class"]) for r in events if r["side"] == side)
            for side in ("ours", "spine")}
    assert keys["ours"] == keys["spine"] and keys["ours"]


def test_race_md_reports_budget_times_and_goal(race):
    text = (race / "race.md").read_text()
    assert "benchmarks/train_vs_spine.py" in text and "Goal: ours ≥ SPINE" in text
    for side in ("ours", "spine"):
        done = json.loads((race / side / "done.json").read_text())
        assert done["iterations"] == 3 and done["event_passes"] == 6
        assert done["wall_s"] > 0 and done["cpu_s"] > 0
    assert "| ours (mlreco_spice) | 3 | 2 | 6 |" in text and "| SPINE 1.4.3 | 3 | 2 | 6 |" in text
    spine_thresholds = (race / "spine" / "thresholds.yaml").read_text()
    assert "seed_threshold" in spine_thresholds and "probability_threshold" in spine_thresholds


def test_rerun_skips_finished_steps(race, files, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in race.rglob("*") if p.is_file()}
    assert train_vs_spine.main(_argv(files, race)) == 0
    assert "Goal: ours ≥ SPINE" in capsys.readouterr().out
    changed = [p for p in race.rglob("*") if p.is_file() and p.stat().st_mtime_ns != stamps.get(p)]
    assert changed == []


def test_interrupted_spine_run_resumes_to_the_same_weights(race, files):
    from mlreco_spice.checkpoint import load_checkpoint

    final = race / "spine" / "checkpoint-0000003.pt"
    reference = load_checkpoint(final)["model"]
    for name in ("race.csv", "race.md", "spine/done.json", "spine/thresholds.yaml"):
        (race / name).unlink()
    final.unlink()  # the run "died" after its checkpoint at iteration 2
    assert train_vs_spine.main(_argv(files, race)) == 0
    resumed = load_checkpoint(final)["model"]
    for key, value in reference.items():
        assert torch.allclose(value.float(), resumed[key].float(), atol=1e-6), key
    assert len(json.loads((race / "spine" / "attempts.json").read_text())) == 2
    assert len(json.loads((race / "ours" / "attempts.json").read_text())) == 1  # not retrained
    assert (race / "race.csv").is_file()


def test_spine_loss_sees_our_classes_and_instances(files):
    from parsers.collate import collate_events
    from parsers.dataset import SpiceDataset
    from spine_race import spine_batch

    args = train_vs_spine.parse_args(_argv(files, files["train"].parent / "unused"))
    cfg = train_vs_spine.make_config(args)
    batch = collate_events(list(SpiceDataset(cfg["io"]).good_items(2)))
    data, seg, clust = spine_batch(batch)
    label = batch["clust_label"]
    sem, inst = label[:, SEMANTIC_COL].long(), label[:, INSTANCE_COL].long()
    valid = (sem >= 0) & (inst >= 0)
    assert torch.equal(seg.torch_tensor().reshape(-1).long(), sem)
    assert torch.equal(clust.shapes.torch_tensor().long()[valid], sem[valid])
    assert torch.equal(clust.cluster_ids.torch_tensor().long(), inst)
    assert data.batch_size == 2 and data.torch_tensor().shape[1] == 5


def test_spine_network_has_our_architecture(files):
    from mlreco_spice.chain import Chain
    from spine_race import build_spine

    cfg = train_vs_spine.make_config(train_vs_spine.parse_args(_argv(files, files["train"].parent)))
    ours = Chain(cfg["model"]).networks["spice"]
    model, _ = build_spine(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert model.encoder.depth == 3 and model.shapes == (0, 1, 2, 3, 4)
    assert count(ours) - count(model) == 5  # our head biases (3 + 1 embedding, 1 seediness)


def test_fast_tuning_gives_spine_clusterer_labels(race, files):
    from spine_race import load_spine
    from spine_tuning import _segments, _spine_run, prefix_levels

    args = train_vs_spine.parse_args(_argv(files, race))
    cfg = train_vs_spine.make_config(args)
    model = load_spine(cfg, race / "spine" / "checkpoint-0000003.pt")
    segments = _segments(train_vs_spine.spine_events(model, cfg, str(files["val"]), 2), 10)
    s0_grid = np.array([0.0, 0.3, 0.45, 0.5, 0.55, 0.7])
    checked = 0
    for c, segs in segments.items():
        for seg in segs[:1]:
            for p0 in (0.3, 0.6, 0.9):
                levels = prefix_levels(seg, c, s0_grid, p0)
                for s0, derived in zip(s0_grid, levels):
                    direct = np.full(len(seg[0]), -1)
                    for k, members in enumerate(_spine_run(seg, c, float(s0), p0, True)):
                        direct[members] = k
                    assert np.array_equal(direct, derived), (c, p0, s0)
                    checked += 1
    assert checked >= 3 * len(s0_grid)


def test_missing_file_and_changed_settings_are_one_line_errors(race, files, tmp_path):
    argv = _argv(files, tmp_path / "out")
    argv[argv.index("--val") + 1] = str(tmp_path / "missing.h5")
    with pytest.raises(UserError, match="--val: file not found"):
        train_vs_spine.main(argv)
    argv = _argv(files, race)
    argv[argv.index("--iterations") + 1] = "4"
    with pytest.raises(UserError, match="other settings"):
        train_vs_spine.main(argv)
