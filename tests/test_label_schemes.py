"""io.dataset.labels: SPINE's shape codes read as our classes, with and without PDG codes."""
import numpy as np
import pytest

from mlreco_spice.columns import DELTA, HIP, MICHEL, MIP, SHOWER, UNLABELED
from parsers.event import ClusterProduct, EventRecord, ImageMeta, Particle, SparseProduct
from parsers.label_schemes import record_in_scheme, relabel_event, semantic_links
from parsers.readers.larcv_shapes import ShapeMapping

META = ImageMeta.cube(16, 3.0)
LINKS = {"semantics": ("pcluster", "pcluster")}


def _record(with_particles=True):
    """Six voxels: a proton track, a muon track sharing voxel 2, a shower, Michel, delta, low-E."""
    coords = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [5, 5, 5], [6, 6, 6],
                       [7, 7, 7], [8, 8, 8]])
    shapes = np.array([1, 1, 1, 1, 0, 2, 3, 4], dtype=np.float32)  # SPINE codes
    clusters = ClusterProduct(
        [coords[[0, 1, 2]], coords[[2, 3]], coords[[4]], coords[[5]], coords[[6]], coords[[7]]],
        [np.array([1.0, 1.0, 0.2]), np.array([5.0, 1.0]), np.ones(1), np.ones(1), np.ones(1),
         np.ones(1)], META)
    record = EventRecord(sparse3d={"semantics": SparseProduct(coords, shapes, META)},
                         cluster3d={"pcluster": clusters}, file="f.h5", entry=3)
    if with_particles:
        pdgs, codes = [2212, 13, 11, 11, 11, 22], [1, 1, 0, 2, 3, 4]
        record.particles["pcluster"] = [
            Particle(id=i, pdg=p, semantic=c, start_cm=(0.0, 0.0, 0.0), energy_init=1.0)
            for i, (p, c) in enumerate(zip(pdgs, codes))]
    return record


def test_tracks_split_by_pdg_codes():
    out = relabel_event(_record(), "spine", ShapeMapping(), LINKS)
    # voxel 2 is shared by the proton (0.2 MeV) and the muon (5 MeV): HIP first, as everywhere
    assert out.sparse3d["semantics"].values.tolist() == [HIP, HIP, HIP, MIP, SHOWER, MICHEL,
                                                          DELTA, UNLABELED]
    assert [p.semantic for p in out.particles["pcluster"]] == [HIP, MIP, SHOWER, MICHEL, DELTA,
                                                              UNLABELED]


def test_without_pdg_codes_tracks_are_one_class():
    out = relabel_event(_record(with_particles=False), "spine", ShapeMapping(),
                        {"semantics": ("pcluster", None)})
    assert out.sparse3d["semantics"].values.tolist()[:4] == [MIP] * 4


def test_low_energy_kept_as_configured_and_input_record_untouched():
    record = _record()
    mapping = ShapeMapping.from_options({"low_energy": "Shower"})
    out = relabel_event(record, "spine", mapping, LINKS)
    assert out.sparse3d["semantics"].values[-1] == SHOWER
    assert record.sparse3d["semantics"].values.tolist() == [1, 1, 1, 1, 0, 2, 3, 4]


def test_low_energy_dropped_from_every_product():
    out = relabel_event(_record(), "spine", ShapeMapping.from_options({"low_energy": "drop"}),
                        LINKS)
    assert len(out.sparse3d["semantics"].coords) == 7
    assert [len(c) for c in out.cluster3d["pcluster"].coords] == [3, 2, 1, 1, 1, 0]


def test_pilarnet2020_and_native_readers_untouched():
    record = _record()
    assert relabel_event(record, "pilarnet2020", ShapeMapping(), LINKS) is record
    assert relabel_event(record, "spine", ShapeMapping(), LINKS,
                         native=("semantics", "particles")) is record


def test_round_trip_of_a_simulated_event():
    from mlreco_spice.sim import simulate_events

    record = next(simulate_events(1, seed=5, size=96))
    spine = record_in_scheme(record, "spine")
    assert set(np.unique(spine.sparse3d["semantics"].values)) <= {0, 1, 2, 3}
    back = relabel_event(spine, "spine", ShapeMapping(), LINKS)
    assert np.array_equal(back.sparse3d["semantics"].values, record.sparse3d["semantics"].values)
    assert [p.semantic for p in back.particles["pcluster"]] == \
        [p.semantic for p in record.particles["pcluster"]]


def test_schema_links():
    schema = {"data": {"parser": "sparse3d", "products": ["sparse3d_data"]},
              "clust_label": {"parser": "cluster3d", "cluster_product": "cluster3d_pcluster",
                              "semantics_product": "sparse3d_semantics",
                              "particle_product": "particle_pcluster"}}
    assert semantic_links(schema) == {"semantics": ("pcluster", "pcluster")}
    del schema["clust_label"]["particle_product"]
    assert semantic_links(schema) == {"semantics": ("pcluster", None)}
    # A segmentation-only schema (uresnet_train.yaml): its label is relabelled too.
    uresnet = {"data": {"parser": "sparse3d", "products": ["sparse3d_data"]},
               "seg_label": {"parser": "sparse3d", "products": ["sparse3d_semantics"]}}
    assert semantic_links(uresnet) == {"semantics": (None, None)}
    out = relabel_event(_record(), "spine", ShapeMapping(), semantic_links(uresnet))
    assert out.sparse3d["semantics"].values.tolist() == [MIP] * 4 + [SHOWER, MICHEL, DELTA,
                                                                      UNLABELED]


def test_unknown_scheme_refused():
    with pytest.raises(ValueError, match="unknown label scheme"):
        relabel_event(_record(), "pilarnet2019", ShapeMapping(), LINKS)


def test_pilarnet_m_low_energy_dropped_from_the_input(tmp_path):
    """`drop`: the low-energy voxels leave the data too, so training and inference agree."""
    import h5py

    from parsers.readers.pilarnet_m import PilarnetMReader

    # One event: a low-energy point, a two-point proton track, a one-point muon track.
    points = [[0, 0, 0, 0.1], [1, 1, 1, 2.0], [1, 1, 2, 2.0], [5, 5, 5, 1.0]]
    clusters = [[1, -1, -1, -1, 4, -1], [2, 3, 3, 0, 1, 4], [1, 4, 4, 0, 1, 2]]
    path = tmp_path / "led.h5"
    with h5py.File(path, "w") as h5:
        for name, rows in (("point", [r + [r[3], 0, 0, 0] for r in points]),
                           ("cluster", clusters)):
            dset = h5.create_dataset(name, (1,), dtype=h5py.vlen_dtype(np.float32))
            dset[0] = np.asarray(rows, np.float32).ravel()
        dset = h5.create_dataset("cluster_extra", (1,), dtype=h5py.vlen_dtype(np.float32))
        dset[0] = np.full(5 * len(clusters), -1, np.float32)

    def event(low_energy):
        return PilarnetMReader([str(path)], grid_size=16,
                               semantic_mapping={"low_energy": low_energy})[0]

    kept, dropped = event("ignore"), event("drop")
    assert kept.sparse3d["semantics"].values.tolist() == [UNLABELED, HIP, HIP, MIP]
    assert dropped.sparse3d["semantics"].values.tolist() == [HIP, HIP, MIP]
    assert dropped.sparse3d["data"].coords.tolist() == [[1, 1, 1], [1, 1, 2], [5, 5, 5]]
