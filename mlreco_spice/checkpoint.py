"""Checkpoints: atomic writes, keep-last-K, latest-complete lookup, clear load errors.

A checkpoint is a ``torch.save`` dict::

    {"format": "mlreco_spice-checkpoint", "version": __version__,
     "iteration": int, "model": state_dict, "optimizer": state_dict | None,
     "scheduler": state_dict | None, "config": dict, "rng": {...}}

It is written to a temporary file in the same directory, flushed and fsynced,
then renamed, so a killed process never leaves a half-written checkpoint
under a checkpoint name.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .atomic import atomic_write
from .errors import UserError

log = logging.getLogger(__name__)

__all__ = ["CheckpointError", "save_checkpoint", "checkpoint_iteration", "list_checkpoints",
           "latest_checkpoint",
           "load_checkpoint", "load_state_into", "weights_digest", "export_weights",
           "config_hint"]

_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
FORMAT = "mlreco_spice-checkpoint"


class CheckpointError(UserError):
    """A checkpoint is unreadable or does not fit the model; the message says which."""


def list_checkpoints(directory: Path) -> List[Path]:
    """Checkpoints in ``directory``, oldest first (by iteration)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def remove_stale_temps(directory: Path) -> List[Path]:
    """Delete temporary checkpoint files a killed run left in ``directory``.

    :func:`save_checkpoint` writes ``.checkpoint-<it>.pt.<random>.tmp.pt`` and
    renames it; a kill in between leaves the temporary file, which never
    matches a checkpoint name. Call only when no other process trains into
    ``directory``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(directory.glob(".checkpoint-*.pt.*.tmp.pt"))
    for path in stale:
        log.info("removing %s left by an interrupted run", path.name)
        path.unlink(missing_ok=True)
    return stale


def checkpoint_iteration(path: Path) -> int:
    """The iteration in a ``checkpoint-<iteration>.pt`` name."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise CheckpointError(f"{path} is not named checkpoint-<iteration>.pt")
    return int(match.group(1))


def save_checkpoint(directory: Path, iteration: int, state: Dict[str, Any], keep: int = 3,
                    spare: Optional[Tuple[int, int]] = None) -> Path:
    """Write ``checkpoint-<iteration>.pt`` atomically and prune to the last ``keep``.

    ``spare = (first, every)``: checkpoints at iterations ``>= first`` that are a
    multiple of ``every`` are never pruned, nor counted in ``keep``.
    """
    path = Path(directory) / f"checkpoint-{iteration:07d}.pt"
    payload = {"format": FORMAT, "iteration": int(iteration), **state}
    atomic_write(path, lambda stream: torch.save(payload, stream))
    if keep > 0:
        prunable = list_checkpoints(directory)
        if spare is not None:
            first, every = spare
            prunable = [p for p in prunable if not (checkpoint_iteration(p) >= first
                                                    and checkpoint_iteration(p) % every == 0)]
        for old in prunable[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a checkpoint or a bare state dict; raise CheckpointError with the file named.

    A SPINE SPICE checkpoint comes back with ``format`` ``"spine-spice"`` and
    our parameter names (:mod:`mlreco_spice.interop.spine_checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint/weights file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated zip, pickle error, wrong file type
        size = path.stat().st_size
        raise CheckpointError(f"cannot read checkpoint {path} ({size} bytes): it is truncated "
                              f"or not a torch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(payload, Mapping) and payload.get("format") == FORMAT:
        return dict(payload)
    from .interop.spine_checkpoint import SPINE_FORMAT, spine_state_dict, spine_to_ours

    spine = spine_state_dict(payload)
    if spine is not None:  # SPINE's SPICE: our names, for the SPICE stage alone
        return {"format": SPINE_FORMAT, "model": spine_to_ours(spine),
                "iteration": payload.get("global_step") if "state_dict" in payload else None}
    if isinstance(payload, Mapping) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return {"format": "state_dict", "model": dict(payload), "iteration": None}
    raise CheckpointError(f"{path} is neither an mlreco_spice checkpoint nor a state dict")


def latest_checkpoint(directory: Path) -> Optional[Path]:
    """Newest checkpoint in ``directory`` that loads; unreadable ones are skipped with a warning."""
    for path in reversed(list_checkpoints(directory)):
        try:
            load_checkpoint(path)
            return path
        except CheckpointError as err:
            log.warning("skipping unreadable checkpoint: %s", err)
    return None


def config_hint(path: Path, payload: Mapping[str, Any]) -> str:
    """How to build the architecture the checkpoint at ``path`` was trained with.

    A training run writes ``config.yaml`` beside its checkpoints: then the
    hint is ``-c`` that file. Otherwise (exported weights) the hint gives the
    network blocks of the config the checkpoint stores, as ``--set`` options.
    Empty when the checkpoint stores no config.
    """
    import yaml

    beside = Path(path).resolve().parent / "config.yaml"
    if beside.is_file():
        return f"it was trained with {beside}: run with -c {beside}"
    modules = ((payload.get("config") or {}).get("model") or {}).get("modules") or {}
    sets = []
    for stage, block in modules.items():
        if isinstance(block, Mapping) and block.get("network"):
            flow = yaml.safe_dump(block["network"], default_flow_style=True, width=10**6).strip()
            sets.append(f"--set 'model.modules.{stage}.network={flow}'")
    if not sets:
        return ""
    return "it stores the config it was trained with; its networks: " + " ".join(sets)


def load_state_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str,
                    prefix: str = "", hint: str = "") -> None:
    """Load ``state`` into ``module`` strictly, naming every mismatching layer.

    Parameters
    ----------
    prefix : str
        Only keys starting with it are used (stripped), e.g. ``"stages.spice."``
        to take one stage out of a full-chain checkpoint.
    hint : str
        Added to a mismatch error (e.g. :func:`config_hint`).
    """
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f"{source} holds no weights under '{prefix}'")
    own = module.state_dict()
    # Buffers the model declares non-persistent (config, e.g. class weights) but an older
    # checkpoint saved: the config's value wins, so they are dropped, not an error.
    transient = _non_persistent_buffers(module)
    state = {k: v for k, v in state.items() if k not in transient}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        lines = [f"{source} does not fit this model (another architecture or config?)"]
        if wrong:
            lines.append("  shape mismatch: " + "; ".join(
                f"{k} checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in wrong[:10]) + (f" (+{len(wrong) - 10} more)" if len(wrong) > 10 else ""))
        if missing:
            lines.append(f"  missing in checkpoint: {', '.join(missing[:10])}"
                         + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""))
        if unexpected:
            lines.append(f"  not in model: {', '.join(unexpected[:10])}"
                         + (f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else ""))
        if hint:
            lines.append(f"  {hint}")
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(state, strict=True)


def _non_persistent_buffers(module: torch.nn.Module) -> set:
    """Dotted names of every non-persistent buffer in ``module``."""
    return {f"{name}.{buffer}" if name else buffer
            for name, sub in module.named_modules()
            for buffer in getattr(sub, "_non_persistent_buffers_set", ())}


def weights_digest(path: Path) -> str:
    """SHA-256 of a weights file (provenance)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_weights(checkpoint: Path, target: Path, half: bool = False) -> Path:
    """Write a checkpoint's model weights and config only (no optimiser state).

    The result loads anywhere a checkpoint does (``predict.weights``) and is
    about a third of the size. ``half`` stores floating-point tensors as
    float16 (half again; loading casts them back to the model's float32), so
    that shipped files stay under the repository's 25 MB per-file limit.
    """
    payload = load_checkpoint(checkpoint)
    # The iteration and the run's length place the weights in their schedule
    # (`train --restart-from` continues from there).
    slim = {key: payload[key] for key in ("model", "config", "iteration", "total_iterations",
                                          "version") if key in payload}
    if half:
        slim["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in slim["model"].items()}
    slim["format"] = FORMAT
    atomic_write(Path(target), lambda stream: torch.save(slim, stream))
    return Path(target)
