"""Run a trained chain on events: the shared core of predict, tune, evaluate and display.

:class:`InferenceEngine` builds the chain from a config, loads
``predict.weights``, applies ``predict.thresholds`` to the clusterer, and turns
one parsed event into an :class:`EventPrediction` of numpy arrays aligned row
for row with the event's data voxels.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

from .columns import COORD_COLS, FEATURE_START, INSTANCE_COL, SEMANTIC_COL, UNLABELED
from .errors import UserError

log = logging.getLogger(__name__)

__all__ = ["EventPrediction", "InferenceEngine", "load_thresholds", "iter_event_outputs"]


#: Clusterer settings a thresholds file may set (``mlreco-spice tune`` writes them).
THRESHOLD_KEYS = ("s0", "p0", "connect_p", "absorb_p")


def load_thresholds(value: Any) -> Dict[str, Any]:
    """``predict.thresholds`` (a YAML path or an inline mapping) -> ``{s0: ..., p0: ..., connect_p: ...}``."""
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise UserError(f"predict.thresholds: file not found: {path}")
        try:
            value = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"predict.thresholds: {path} is not valid YAML ({err})") from None
    if not isinstance(value, dict) or not set(value) & {"s0", "p0"}:
        raise UserError("predict.thresholds must hold 's0' and/or 'p0' per class "
                        "(as written by `mlreco-spice tune`)")
    return {k: value[k] for k in THRESHOLD_KEYS if k in value}


@dataclass
class EventPrediction:
    """Chain outputs for one event, aligned with its data voxels (N rows).

    Per-voxel arrays of voxels SPICE did not process (classes it does not
    own) hold NaN (floats) or -1 (labels).
    """

    file: str
    entry: int
    run: int
    subrun: int
    event: int
    meta: Any
    coords: np.ndarray              # (N, 3) int64 voxel indices
    features: np.ndarray            # (N, C) input features (energy first)
    semantics: np.ndarray           # (N,) class SPICE clustered on
    clusters: np.ndarray            # (N,) predicted instance, -1 unclustered
    embeddings: np.ndarray          # (N, 3)
    margins: np.ndarray             # (N,)
    seediness: np.ndarray           # (N,)
    semantics_pred: Optional[np.ndarray] = None   # (N,) segmentation stage argmax
    semantics_logits: Optional[np.ndarray] = None  # (N, classes) its scores before the argmax
    truth_instance: Optional[np.ndarray] = None   # (N,) when labels were parsed
    truth_semantic: Optional[np.ndarray] = None
    forward_time_s: float = math.nan
    cluster_time_s: float = math.nan
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return len(self.coords)

    @property
    def voxel_cm(self) -> Optional[Tuple[float, float, float]]:
        """The voxel pitch (cm per axis) from the image meta; what re-clustering
        :attr:`coords` needs (the clusterer's distances are in cm). None without meta."""
        return None if self.meta is None else tuple(self.meta.voxel_cm)


class InferenceEngine:
    """A chain in eval mode with its weights and thresholds, ready for events.

    Parameters
    ----------
    cfg : dict
        Complete config. ``predict.weights`` (a checkpoint of the whole chain)
        is loaded when set; ``predict.thresholds`` replaces the clusterer's
        ``s0``/``p0``.
    device : str, optional
        Default: ``train.device`` (``auto``: CUDA when available).
    """

    def __init__(self, cfg: Dict[str, Any], device: Optional[str] = None):
        from .chain import Chain
        from .checkpoint import config_hint, load_checkpoint, load_state_into
        from .distributed import pick_device
        from .interop.spine_checkpoint import SPINE_FORMAT, spine_chain_state

        cfg = copy.deepcopy(cfg)
        thresholds = load_thresholds(cfg["predict"].get("thresholds"))
        for name, stage_cfg in cfg["model"]["modules"].items():
            if "clusterer" in stage_cfg:
                stage_cfg["clusterer"].update(thresholds)
                if stage_cfg.get("use_true_semantics") is True and \
                        stage_cfg["clusterer"].get("absorb_p") is not None:
                    # The absorb step undoes segmentation errors; true classes have none.
                    log.info("%s: true semantics, absorb step off", name)
                    stage_cfg["clusterer"]["absorb_p"] = None
        self.cfg = cfg
        self.device = pick_device(device or cfg["train"]["device"])
        self.chain = Chain(cfg["model"])
        weights = cfg["predict"].get("weights")
        if weights:
            payload = load_checkpoint(weights)
            if payload["format"] == SPINE_FORMAT:  # SPICE only: other stages keep theirs
                payload["model"] = spine_chain_state(self.chain, payload["model"], weights)
            load_state_into(self.chain, payload["model"], f"predict.weights ({weights})",
                            hint=config_hint(weights, payload))
        elif not all(cfg["model"]["modules"][name].get("weights")
                     for name in cfg["model"]["stages"]):
            # Stage-wise training joins its stages by model.modules.<stage>.weights.
            log.warning("predict.weights is not set and not every stage has "
                        "model.modules.<stage>.weights: some stages run with random weights")
        from .models import fold_batchnorm

        # An inference-only chain: batch norms after convolutions fold into them.
        fold_batchnorm(self.chain)
        self.chain.to(self.device).eval()
        self.spice_stage, _ = self.chain.find_stage("set_seediness_frozen")

    @torch.inference_mode()
    def run(self, item: Dict[str, Any]) -> EventPrediction:
        """Run the chain on one parsed event (a :class:`parsers.dataset.SpiceDataset` item)."""
        from parsers.collate import collate_events

        batch = collate_events([item])
        batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        tick = time.perf_counter()
        outputs = self.chain(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - tick
        data = batch["data"]
        n = len(data)
        pred = self._spice_arrays(outputs, n)
        if self.spice_stage is not None:
            pred["semantics"] = self.chain.semantics_for(self.spice_stage, batch, outputs).cpu().numpy()
        cluster_time = float(pred.pop("cluster_time_s"))
        result = EventPrediction(
            file=item["file"], entry=int(item["entry"]), run=int(item["run"]),
            subrun=int(item["subrun"]), event=int(item["event"]), meta=item.get("meta"),
            coords=data[:, list(COORD_COLS)].long().cpu().numpy(),
            features=data[:, FEATURE_START:].cpu().numpy(),
            forward_time_s=elapsed - (cluster_time if math.isfinite(cluster_time) else 0.0),
            cluster_time_s=cluster_time, **pred)
        seg = next((o for name, o in outputs.items()
                    if name != self.spice_stage and "semantics" in o), None)
        if seg is not None:
            result.semantics_pred = seg["semantics"].long().cpu().numpy()
            result.semantics_logits = seg["logits"].float().cpu().numpy()
        label = batch.get("clust_label")
        if label is not None:
            result.truth_instance = label[:, INSTANCE_COL].long().cpu().numpy()
            result.truth_semantic = label[:, SEMANTIC_COL].long().cpu().numpy()
        return result

    def _spice_arrays(self, outputs: Dict[str, Dict[str, Any]], n: int) -> Dict[str, Any]:
        out = {"embeddings": np.full((n, 3), np.nan, np.float32),
               "margins": np.full(n, np.nan, np.float32),
               "seediness": np.full(n, np.nan, np.float32),
               "clusters": np.full(n, UNLABELED, np.int64),
               "semantics": np.full(n, UNLABELED, np.int64),
               "cluster_time_s": math.nan}
        if self.spice_stage is None:
            return out
        spice = outputs[self.spice_stage]
        index = spice["index"].long().cpu().numpy()
        out["embeddings"][index] = spice["embeddings"].float().cpu().numpy()
        out["margins"][index] = spice["margins"].reshape(-1).float().cpu().numpy()
        out["seediness"][index] = spice["seediness"].reshape(-1).float().cpu().numpy()
        if "clusters" in spice:
            out["clusters"][index] = spice["clusters"].long().cpu().numpy()
        out["cluster_time_s"] = float(spice.get("cluster_time_s", math.nan))
        return out


def iter_event_outputs(cfg: Dict[str, Any], files: Sequence[str], max_events: Optional[int] = None,
                       engine: Optional[InferenceEngine] = None,
                       progress: bool = True) -> Iterator[Dict[str, np.ndarray]]:
    """Per-event network outputs with truth, for threshold tuning.

    Yields dicts with ``coords``, ``voxel_cm`` (the pitch, for the clusterer's
    distances in cm), ``embeddings``, ``margins``, ``seediness``,
    ``semantics`` (the classes clustered on), ``truth_instance`` and
    ``truth_semantic``. Needs labelled inputs (``clust_label`` in the schema).
    """
    from tqdm import tqdm

    from parsers.dataset import SpiceDataset

    engine = engine or InferenceEngine(cfg)
    dataset = SpiceDataset(cfg["io"], files=list(files))
    if "clust_label" not in dataset.schema:
        raise UserError("tuning needs labels: io.dataset.schema must have a clust_label entry")
    total = len(dataset) if max_events is None else min(len(dataset), max_events)
    for item in tqdm(dataset.good_items(total), total=total, disable=not progress, desc="network"):
        pred = engine.run(item)
        yield {"coords": pred.coords, "voxel_cm": pred.voxel_cm,
               "embeddings": pred.embeddings, "margins": pred.margins, "seediness": pred.seediness,
               "semantics": pred.semantics, "truth_instance": pred.truth_instance,
               "truth_semantic": pred.truth_semantic}
