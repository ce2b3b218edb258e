"""CSV logs of a training run: per-iteration loss terms, and skipped events.

The loss log is appended row by row (a crash loses at most the line being
written). On resume, rows after the checkpoint's iteration (and any partial
last line) are dropped first, so a resumed log continues the uninterrupted one.
A loss term first met after the header was written (a per-class term whose
class was absent from the first batches) gets its column: the file is
rewritten once with the wider header, earlier rows empty in that column.
"""
from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

import torch

from .atomic import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["TrainLog", "SkipRecorder", "read_train_log", "scalar_terms", "CPU_KEY", "NO_ROW_KEY"]

_FIXED = ("iteration", "lr", "time_s", "cpu_s", "wall_time")
#: Key of the process CPU time in the dict the ranks average (not a loss term).
CPU_KEY = "_cpu_s"
#: Present in the ranks' averaged dict when rank 0 writes no row (its batch was skipped).
NO_ROW_KEY = "_no_row"


def read_train_log(path: Path) -> List[Dict[str, str]]:
    """Rows of a ``train_log.csv`` as dicts (complete lines only)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # drop a partial last line
    return list(csv.DictReader(io.StringIO(text)))


class TrainLog:
    """``iteration, lr, time_s, cpu_s, wall_time, <loss terms...>`` rows.

    Parameters
    ----------
    path : Path
        CSV file.
    start_iteration : int
        Rows with a larger iteration are removed (resume).
    enabled : bool
        False on DDP ranks other than 0.
    """

    def __init__(self, path: Path, start_iteration: int = 0, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self.columns: Optional[List[str]] = None
        self._stream = None
        if not enabled:
            return
        rows = [r for r in read_train_log(self.path) if int(r["iteration"]) <= start_iteration]
        if rows and start_iteration > 0:
            self._rewrite(list(rows[0].keys()), rows)
        elif self.path.exists():
            self.path.unlink()

    def _rewrite(self, columns: List[str], rows: List[Dict[str, str]]) -> None:
        """Replace the file by ``rows`` under ``columns`` (atomic), then append to it."""
        self.close()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buffer.getvalue())
        self.columns = columns
        self._stream = open(self.path, "a", newline="")

    def write(self, iteration: int, terms: Mapping[str, torch.Tensor], lr: float, seconds: float,
              cpu_seconds: Optional[float] = None) -> None:
        """Append one row; scalar tensors only (per-class vectors are skipped).

        ``seconds`` is the step's wall time, ``cpu_seconds`` the process CPU time since the
        previous row, summed over the ranks (empty when not given).
        """
        if not self.enabled:
            return
        values = scalar_terms(terms)
        if self.columns is None:
            self._rewrite(list(_FIXED) + sorted(values), [])
        elif not set(_FIXED) | set(values) <= set(self.columns):
            # A new loss term, or a log written before a fixed column existed (cpu_s).
            names = (set(self.columns) - set(_FIXED)) | set(values)
            log.info("train_log.csv: new column(s) %s, header rewritten", ", ".join(
                sorted((set(_FIXED) | set(values)) - set(self.columns))))
            self._rewrite(list(_FIXED) + sorted(names), read_train_log(self.path))
        row = {"iteration": iteration, "lr": lr, "time_s": f"{seconds:.4f}",
               "cpu_s": "" if cpu_seconds is None else f"{cpu_seconds:.4f}",
               "wall_time": f"{time.time():.3f}", **values}
        csv.writer(self._stream).writerow([_fmt(row.get(c, "")) for c in self.columns])
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def scalar_terms(terms: Mapping[str, object]) -> Dict[str, float]:
    """The scalar loss terms as floats (tensors with more than one value are left out)."""
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
            for k, v in terms.items() if not isinstance(v, torch.Tensor) or v.numel() == 1}


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class SkipRecorder:
    """``skipped.csv``: file, entry, reason for every event skipped as bad."""

    COLUMNS = ("file", "entry", "reason")

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled, self._stream = Path(path), enabled, None
        self.count = 0

    def record(self, skipped: Iterable[Mapping[str, object]]) -> None:
        if not self.enabled:
            return
        for item in skipped:
            if self._stream is None:
                new = not self.path.exists()
                self._stream = open(self.path, "a", newline="")
                if new:
                    csv.writer(self._stream).writerow(self.COLUMNS)
            csv.writer(self._stream).writerow([item.get(c, "") for c in self.COLUMNS])
            self._stream.flush()
            self.count += 1
            log.warning("skipped %s entry %s: %s", item.get("file"), item.get("entry"), item.get("reason"))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
