"""Crash-safe CSV output: one part file per input, a done marker, one merge.

Layout inside ``OUTDIR``::

    parts/<stem>.<table>.csv     rows of one input file, one per table
    parts/<stem>.done            JSON marker, written LAST: source path, run id, row counts
    <table>.csv                  merge: header + rows of every complete input

Rules, so that a killed, re-run or sharded ``evaluate`` never duplicates or
loses rows and never leaves a half-written file:

* every file is written atomically (:mod:`mlreco_spice.atomic`);
* an input is complete when its done marker exists; its parts are written
  before the marker, so a crash between them leaves parts without a marker,
  which the merge ignores and the next run rewrites;
* the merge concatenates the parts of complete inputs in sorted stem order
  under a lock file, so concurrent shard jobs writing into one ``OUTDIR``
  leave the merge of whichever finishes last, holding every complete input.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from mlreco_spice.atomic import atomic_write_text

__all__ = ["PartWriter", "csv_text", "read_table", "format_value"]

PARTS_DIR = "parts"
DONE_SUFFIX = ".done"


def format_value(value: Any) -> str:
    """CSV text of a value: floats to 6 significant digits, NaN and None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], header: bool = True) -> str:
    """CSV text of dict rows restricted and ordered by ``columns`` (a missing key is an error)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise KeyError(f"row lacks columns {missing}: {row}")
        writer.writerow([format_value(row[c]) for c in columns])
    return buffer.getvalue()


def read_table(path: Path) -> List[Dict[str, str]]:
    """Rows of a CSV file as dicts of strings (empty list when it has only a header)."""
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


class PartWriter:
    """Part files and done markers of the tables of one output directory.

    Parameters
    ----------
    outdir : path
        Output directory (created).
    tables : mapping of str to column tuples
        Table name (``<table>.csv``) -> its columns.
    """

    def __init__(self, outdir: Path, tables: Mapping[str, Sequence[str]]):
        self.outdir = Path(outdir)
        self.parts = self.outdir / PARTS_DIR
        self.parts.mkdir(parents=True, exist_ok=True)
        self.tables = dict(tables)

    def marker_path(self, stem: str) -> Path:
        return self.parts / f"{stem}{DONE_SUFFIX}"

    def part_path(self, stem: str, table: str) -> Path:
        return self.parts / f"{stem}.{table}.csv"

    def marker(self, stem: str) -> Optional[Dict[str, Any]]:
        """The done marker of ``stem`` (None when the input is not complete)."""
        path = self.marker_path(stem)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def markers(self) -> Dict[str, Dict[str, Any]]:
        """Every done marker in the directory, by stem."""
        out = {}
        for path in sorted(self.parts.glob(f"*{DONE_SUFFIX}")):
            stem = path.name[:-len(DONE_SUFFIX)]
            out[stem] = json.loads(path.read_text())
        return out

    def discard(self, stem: str) -> None:
        """Forget a complete input (its marker first, so it is never half-complete)."""
        self.marker_path(stem).unlink(missing_ok=True)

    def write(self, stem: str, rows: Mapping[str, Sequence[Mapping[str, Any]]],
              info: Mapping[str, Any]) -> None:
        """Write the parts of one input, then its done marker.

        Parameters
        ----------
        stem : str
            Part name of the input (unique within the directory).
        rows : mapping
            Table name -> rows (dicts keyed by the table's columns). Every
            table gets a part, empty tables a header-only one.
        info : mapping
            JSON-serialisable facts stored in the marker (source path, run id).
        """
        unknown = set(rows) - set(self.tables)
        if unknown:
            raise KeyError(f"unknown tables {sorted(unknown)}; known: {sorted(self.tables)}")
        self.discard(stem)
        counts = {}
        for table, columns in self.tables.items():
            table_rows = rows.get(table, ())
            atomic_write_text(self.part_path(stem, table), csv_text(columns, table_rows))
            counts[table] = len(table_rows)
        atomic_write_text(self.marker_path(stem), json.dumps({**info, "rows": counts}, indent=1))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of the directory (merge and what reads the merge)."""
        with open(self.parts / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def merge(self) -> Dict[str, int]:
        """Concatenate the parts of every complete input into ``<table>.csv``.

        Call inside :meth:`lock` when other processes may write the directory.

        Returns
        -------
        dict
            Table name -> number of merged rows.
        """
        stems = sorted(self.markers())
        counts = {}
        for table, columns in self.tables.items():
            chunks = [",".join(columns) + "\n"]
            n_rows = 0
            for stem in stems:
                text = self.part_path(stem, table).read_text()
                header, _, body = text.partition("\n")
                if header != ",".join(columns):
                    raise RuntimeError(f"{self.part_path(stem, table)} has columns {header!r}, "
                                       f"expected {','.join(columns)!r}: it was written by "
                                       f"another version; re-run with --overwrite")
                chunks.append(body)
                n_rows += sum(1 for _ in csv.reader(io.StringIO(body)))
            atomic_write_text(self.outdir / f"{table}.csv", "".join(chunks))
            counts[table] = n_rows
        return counts
