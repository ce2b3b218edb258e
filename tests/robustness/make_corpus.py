"""Build the robustness corpus: small larcv3 files, each broken in one documented way.

Usage (the tests call :func:`make_corpus` on a temporary directory; nothing
binary is committed)::

    python tests/robustness/make_corpus.py OUTDIR

Every event-level file has two entries: entry 0 is a good simulated event,
entry 1 carries the defect (so a test can check that the good event goes
through and exactly the bad one is reported). Defects the writer cannot
produce (it sorts and de-duplicates voxels) are made by editing the HDF5
tables with h5py after writing. :data:`CASES` lists every case with the
behaviour the tests assert.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Callable, Dict

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parents[1]) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE.parents[1]))

from parsers.event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct  # noqa: E402

__all__ = ["CASES", "SIZE", "make_corpus", "good_records"]

#: Image side in voxels: the size the ``tiny_trained`` checkpoint was trained on.
SIZE = 96
#: Voxels of the "large" event (io.max_voxels tests use a limit between the two events).
LARGE_VOXELS = 6000

#: name -> what is wrong (file-level cases first, then entry 1 of event-level files).
CASES = {
    "good": "two good simulated events",
    "missing": "path that does not exist",
    "empty": "0-byte file",
    "truncated": "first half of a good file",
    "corrupt": "good file whose HDF5 object headers are overwritten with garbage",
    "not_larcv": "HDF5 file without larcv3 groups",
    "no_semantics": "larcv3 file lacking sparse3d_semantics (the training schema needs it)",
    "zero_voxels": "entry 1 has no voxels at all",
    "one_voxel": "entry 1 has a single voxel (valid)",
    "out_of_meta": "entry 1: a sparse3d_data voxel id beyond the image",
    "nan_energy": "entry 1: a NaN energy in sparse3d_data",
    "inf_energy": "entry 1: an inf energy in sparse3d_data",
    "negative_energy": "entry 1: a negative energy in sparse3d_data",
    "duplicate_voxels": "entry 1: one sparse3d_data voxel id repeated",
    "cluster_out_of_meta": "entry 1: a cluster3d_pcluster voxel id beyond the image",
    "cluster_not_in_data": "entry 1: a cluster3d_pcluster voxel absent from sparse3d (valid)",
    "semantic_out_of_range": "entry 1: a sparse3d_semantics value of 7",
    "meta_mismatch": "entry 1: cluster3d_pcluster on another grid than sparse3d_data",
    "large": f"entry 0 has 40 voxels, entry 1 has {LARGE_VOXELS}",
    "nan_first_entry": "entry 0 (not 1) has a NaN energy in sparse3d_data; entry 1 is good",
}


def good_records(n: int = 2, seed: int = 7):
    """Simulated events on the corpus grid (labels, clusters and particles included)."""
    from mlreco_spice.sim import simulate_events

    return list(simulate_events(n=n, seed=seed, size=SIZE, voxel_mm=3.0))


def _write(path: Path, records) -> Path:
    from parsers.writer import write_events

    write_events(str(path), records)
    return path


def _block_record(n_voxels: int, event: int) -> EventRecord:
    """``n_voxels`` voxels filling a block from the origin: one MIP instance."""
    meta = ImageMeta.cube(SIZE, 3.0)
    side = int(np.ceil(n_voxels ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    coords = grid[:n_voxels].astype(np.int64)
    energy = np.full(n_voxels, 0.5, np.float32)
    return EventRecord(
        run=1, subrun=0, event=event,
        sparse3d={"data": SparseProduct(coords, energy, meta),
                  "semantics": SparseProduct(coords, np.ones(n_voxels, np.float32), meta)},
        cluster3d={"pcluster": ClusterProduct([coords], [energy], meta)},
        particles={"pcluster": [Particle(0, 13, 1, (0.15, 0.15, 0.15), 100.0, -1, 0,
                                         float(energy.sum()), 0)]})


def _replace_event(good: EventRecord, bad: EventRecord) -> list:
    bad.run, bad.subrun, bad.event = good.run, good.subrun, good.event + 1
    return [good, bad]


# -- h5py surgery ------------------------------------------------------------------
def _sparse_rows(h5, product: str, entry: int) -> slice:
    """Rows of ``Data/<product>_group/voxels`` holding projection 0 of ``entry``."""
    group = h5[f"Data/{product}_group"]
    first = int(group["extents"][entry]["first"])
    row = group["voxel_extents"][first]
    return slice(int(row["first"]), int(row["first"]) + int(row["N"]))


def _cluster_rows(h5, product: str, entry: int) -> slice:
    """Rows of ``Data/<product>_group/voxels`` of all voxel sets of ``entry`` (projection 0)."""
    group = h5[f"Data/{product}_group"]
    first = int(group["extents"][entry]["first"])
    proj = group["projection_extents"][first]
    sets = group["cluster_extents"][int(proj["first"]):int(proj["first"]) + int(proj["N"])]
    return slice(int(sets["first"].min()), int((sets["first"] + sets["N"]).max()))


def _edit_voxels(path: Path, product: str, edit: Callable[[np.ndarray], None],
                 cluster: bool = False, entry: int = 1) -> None:
    """Apply ``edit`` to the voxel rows (fields ``id``, ``value``) of one entry, in place."""
    import h5py

    with h5py.File(path, "r+") as h5:
        rows = (_cluster_rows if cluster else _sparse_rows)(h5, product, entry)
        table = h5[f"Data/{product}_group/voxels"]
        block = table[rows]
        edit(block)
        table[rows] = block


def _set_last_id_beyond_image(block: np.ndarray) -> None:
    # The last row keeps ids ascending, so only the range check can object.
    block["id"][-1] = SIZE ** 3 + 7


def _set_value(index: int, value: float) -> Callable[[np.ndarray], None]:
    def edit(block: np.ndarray) -> None:
        block["value"][index] = value
    return edit


def _repeat_an_id(block: np.ndarray) -> None:
    block["id"][3] = block["id"][2]


def _corrupt(source: Path, path: Path) -> Path:
    """Overwrite every HDF5 object header signature ("OHDR") and the B-tree/heap ones."""
    data = bytearray(source.read_bytes())
    for signature in (b"OHDR", b"TREE", b"HEAP", b"BTHD", b"FRHP"):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start:start + 4] = b"\xde\xad\xbe\xef"
            start += 4
    path.write_bytes(bytes(data))
    return path


# -- the corpus ----------------------------------------------------------------------
def make_corpus(outdir) -> Dict[str, Path]:
    """Write every case of :data:`CASES` into ``outdir``; return name -> path.

    ``missing`` is a path that is not created.
    """
    import h5py

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    good = good_records()
    paths: Dict[str, Path] = {"good": _write(out / "good.h5", good), "missing": out / "missing.h5"}
    (out / "empty.h5").write_bytes(b"")
    paths["empty"] = out / "empty.h5"
    data = paths["good"].read_bytes()
    (out / "truncated.h5").write_bytes(data[:len(data) // 2])
    paths["truncated"] = out / "truncated.h5"
    paths["corrupt"] = _corrupt(paths["good"], out / "corrupt.h5")
    with h5py.File(out / "not_larcv.h5", "w") as h5:
        h5["weights"] = np.arange(3.0)
    paths["not_larcv"] = out / "not_larcv.h5"

    no_sem = [copy.deepcopy(r) for r in good]
    for record in no_sem:
        del record.sparse3d["semantics"]
    paths["no_semantics"] = _write(out / "no_semantics.h5", no_sem)

    def variant(name: str, mutate: Callable[[EventRecord], None]) -> Path:
        bad = copy.deepcopy(good[1])
        mutate(bad)
        paths[name] = _write(out / f"{name}.h5", [good[0], bad])
        return paths[name]

    meta = good[0].sparse3d["data"].meta

    def zero(record: EventRecord) -> None:
        empty = np.zeros((0, 3), np.int64)
        record.sparse3d = {k: SparseProduct(empty, np.zeros(0, np.float32), meta)
                           for k in record.sparse3d}
        record.cluster3d = {"pcluster": ClusterProduct([], [], meta)}
        record.particles = {"pcluster": []}

    def one(record: EventRecord) -> None:
        voxel = np.array([[40, 50, 60]], np.int64)
        record.sparse3d = {"data": SparseProduct(voxel, np.array([1.2], np.float32), meta),
                           "semantics": SparseProduct(voxel, np.array([1.0], np.float32), meta)}
        record.cluster3d = {"pcluster": ClusterProduct([voxel], [np.array([1.2], np.float32)], meta)}
        record.particles = {"pcluster": [Particle(0, 13, 1, tuple(meta.to_cm(voxel)[0]), 10.0,
                                                  -1, 0, 1.2, 0)]}

    def negative(record: EventRecord) -> None:
        record.sparse3d["data"].values[5] = -1.5

    def extra_cluster_voxel(record: EventRecord) -> None:
        taken = set(map(tuple, record.sparse3d["data"].coords.tolist()))
        free = next((x, 0, 0) for x in range(SIZE) if (x, 0, 0) not in taken)
        clusters = record.cluster3d["pcluster"]
        clusters.coords[0] = np.vstack([clusters.coords[0], np.array([free], np.int64)])
        clusters.values[0] = np.append(clusters.values[0], np.float32(0.3))

    def semantic(record: EventRecord) -> None:
        record.sparse3d["semantics"].values[4] = 7.0

    def other_grid(record: EventRecord) -> None:
        clusters = record.cluster3d["pcluster"]
        shifted = ImageMeta(meta.size, meta.voxel_cm, (10.0, 0.0, 0.0))
        record.cluster3d["pcluster"] = ClusterProduct(clusters.coords, clusters.values, shifted)

    variant("zero_voxels", zero)
    variant("one_voxel", one)
    variant("negative_energy", negative)
    variant("cluster_not_in_data", extra_cluster_voxel)
    variant("semantic_out_of_range", semantic)
    variant("meta_mismatch", other_grid)
    for name, product, edit, cluster in (
            ("out_of_meta", "sparse3d_data", _set_last_id_beyond_image, False),
            ("nan_energy", "sparse3d_data", _set_value(5, np.nan), False),
            ("inf_energy", "sparse3d_data", _set_value(5, np.inf), False),
            ("duplicate_voxels", "sparse3d_data", _repeat_an_id, False),
            ("cluster_out_of_meta", "cluster3d_pcluster", _set_last_id_beyond_image, True)):
        variant(name, lambda record: None)
        _edit_voxels(paths[name], product, edit, cluster=cluster)
    variant("nan_first_entry", lambda record: None)
    _edit_voxels(paths["nan_first_entry"], "sparse3d_data", _set_value(5, np.nan), entry=0)
    paths["large"] = _write(out / "large.h5", [_block_record(40, 0), _block_record(LARGE_VOXELS, 1)])
    missing = set(CASES) - set(paths)
    if missing:
        raise RuntimeError(f"corpus cases without a file: {sorted(missing)}")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/robustness/make_corpus.py OUTDIR")
    for case, file in make_corpus(sys.argv[1]).items():
        print(f"{case:24s} {file}")
