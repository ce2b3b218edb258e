"""Every configuration default, in one place.

The tree below is both the defaults and the schema that
:mod:`mlreco_spice.config` validates against: a plain value implies its type;
a :class:`Spec` states types, choices, path-ness and required-ness
explicitly. Mappings listed in :data:`OPEN_MAPPINGS` take user-chosen keys
(stage names, schema entry names) and are validated per entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

__all__ = ["Spec", "DEFAULTS", "STAGE_DEFAULTS", "OPEN_MAPPINGS", "PATH_KEYS",
           "PAPER_THRESHOLDS", "BEND_WINDOW_CM", "RENAMED_KEYS"]


@dataclass(frozen=True)
class Spec:
    """Schema entry for a key whose default does not say everything.

    Attributes
    ----------
    default : Any
        Default value (``None`` allowed).
    types : tuple of type
        Accepted Python types (``int`` is also accepted where ``float`` is).
    choices : tuple, optional
        Allowed values.
    path : bool
        Resolve relative to the config file that sets it.
    doc : str
        One line shown in validation errors.
    """

    default: Any = None
    types: Tuple[type, ...] = (object,)
    choices: Optional[Tuple[Any, ...]] = None
    path: bool = False
    doc: str = ""


#: Radius (cm; 15 voxels at 3 mm) of the window in which the bend veto takes each
#: fragment's direction (mlreco_spice/cluster/bend.py): long enough for a straight fit
#: of a track, short enough to stay local.
BEND_WINDOW_CM = 4.5

# The paper's Table II thresholds (s0, p0) per class.
PAPER_THRESHOLDS = {
    "HIP": {"s0": 0.65, "p0": 0.29},
    "MIP": {"s0": 0.5, "p0": 0.087},
    "Shower": {"s0": 0.25, "p0": 0.036},
    "Delta": {"s0": 0.85, "p0": 0.27},
    "Michel": {"s0": 0.0, "p0": 0.087},
}

_UNET = {
    "filters": 16,       # F: channels grow F, 2F, 3F, ... with depth
    "depth": 5,          # number of down-samplings (paper convention)
    "reps": 2,           # residual blocks per level
    "input_kernel": 3,
    "leaky_slope": 0.33,
    # Batch norm settings (SPINE configs set eps 1e-4, momentum 0.01; eps changes
    # eval outputs, so an imported checkpoint needs its own).
    "norm_eps": 1e-5,
    "norm_momentum": 0.1,
}

STAGE_DEFAULTS = {
    "uresnet": {
        "network": {
            "name": "uresnet",
            "uresnet": dict(_UNET),
            "num_input": 1,
            "num_classes": 5,
            "logit_offsets": Spec(None, (list, dict, type(None)),
                                  doc="per-class offsets added to the logits before the "
                                      "argmax that gives the classes (semantics): a prior "
                                      "shift after training; the logits and the loss keep "
                                      "none (benchmarks/class_offsets.py reads what they "
                                      "reach)"),
        },
        "loss": {
            "class_weights": Spec(None, (list, dict, type(None)),
                                  doc="per-class cross-entropy weights"),
            "detached_weight": Spec(1.0, (int, float, list, dict),
                                    doc="cross-entropy weight of voxels outside their true "
                                        "instance's largest touching piece: one number, or "
                                        "per class as class_weights (needs clust_label in "
                                        "loss_input unless all 1)"),
        },
    },
    "spice": {
        "network": {
            "name": "spice",
            "uresnet": dict(_UNET),
            "num_input": 1,
            "coord_conv": True,
            "classes": ["HIP", "MIP", "Shower", "Delta", "Michel"],
            # eq. II.1 length L in voxels; stored with the weights. Coordinates
            # are centred on the image and divided by L/2.
            "norm_length": 512,
            "image_size": Spec(None, (int, type(None)),
                               doc="image side in voxels (default: read from the data meta, else norm_length)"),
            # false: heads are batch norm then linear, as SPINE's and lartpc_mlreco3d's
            # (what `import-config` writes, so their checkpoints give their outputs).
            "head_activation": Spec(True, (bool,), doc="LeakyReLU between head norm and linear"),
        },
        "loss": {
            # The names of losses/masks.py's MASK_LOSSES (tests/test_losses.py checks).
            "mask_loss": Spec("lovasz", (str,),
                              choices=("lovasz", "lovasz_logit", "bce", "dice", "focal"),
                              doc="lovasz (on 2p-1), lovasz_logit, bce, dice or focal"),
            # Score the Lovász hinge sees: 2p-1 (SPINE's choice; never saturates,
            # so embeddings collapse onto their centroid, which seed-based
            # clustering needs) or the logit log(p/(1-p)).
            "lovasz_score": Spec("linear", (str,), choices=("linear", "logit"),
                                 doc="Lovász hinge input: linear = 2p-1, logit = log(p/(1-p))"),
            "seed_loss": Spec("l2", (str,), choices=("l2", "l1")),
            "delta_d": 0.2,           # inter-cluster margin (eq. II.7)
            "gamma1": 1.0,            # seediness weight (eq. II.11)
            "gamma2": 1.0,            # embedding weight
            "mask_weight": 1.0,
            "smoothing_weight": 1.0,
            "inter_weight": 1.0,
            "min_voxels": 2,          # instances smaller than this are ignored
            "focal_gamma": 2.0,
        },
        "clusterer": {
            "enabled": True,
            "s0": Spec(None, (dict, list, float, int, type(None)),
                       doc="seediness threshold per class (default: paper Table II)"),
            "p0": Spec(None, (dict, list, float, int, type(None)),
                       doc="probability threshold per class (default: paper Table II)"),
            "min_cluster_size": 1,
            "assign_leftovers": True,
            "mode": Spec("fast", (str,), choices=("fast", "spine")),
            # Steps beyond the paper (mlreco_spice/cluster/postprocess.py); the
            # defaults give the paper's procedure.
            "at_least_one_seed": Spec(False, (bool,),
                                      doc="most seedy voxel of each class seeds even below s0"),
            "refine_iterations": Spec(0, (int,), doc="re-centre kernels on members, reassign"),
            "merge_p": Spec(None, (dict, list, float, int, type(None)),
                            doc="merge clusters whose centroids overlap at p > merge_p"),
            # Distances are in cm; the clusterer converts them with the voxel pitch of
            # each event's ImageMeta (0.9 cm = 3 voxels of 3 mm).
            "connect_radius_cm": Spec(None, (dict, list, float, int, type(None)),
                                      doc="cm: voxels this close touch (connectivity step)"),
            "connect_p": Spec(None, (dict, list, float, int, type(None)),
                              doc="re-join touching fragments at p > connect_p (null: off)"),
            "absorb_radius_cm": Spec(None, (float, int, type(None)),
                                     doc="cm: voxels this close touch (cross-class absorb step)"),
            "absorb_p": Spec(None, (float, int, type(None)),
                             doc="absorb smaller clusters of other classes at p > absorb_p"),
            "connect_max_bend": Spec(None, (float, int, type(None)),
                                     doc="degrees: touching fragments bending more stay apart"),
            "bend_window_cm": Spec(BEND_WINDOW_CM, (float, int),
                                   doc="cm: each fragment's direction is fitted within this "
                                       "distance of the contact (bend veto)"),
            "reconnect_after_absorb": Spec(False, (bool,),
                                           doc="connectivity step again after the absorb step"),
        },
        # None: true classes in training, the semantic stage's prediction at
        # inference. True/False force one source everywhere.
        "use_true_semantics": Spec(None, (bool, type(None)),
                                   doc="null (train: true, infer: predicted), true or false"),
    },
}

#: Clusterer keys renamed when its distances moved from voxels to cm (issue 18): a
#: number there meant voxels, so it is refused (:mod:`mlreco_spice.config` says what
#: to write instead); null (step off) has no unit and is still accepted.
RENAMED_KEYS = {
    ("model", "modules", "spice", "clusterer"): {
        "connect_radius": "connect_radius_cm", "absorb_radius": "absorb_radius_cm"},
}

_STAGE_COMMON = {
    "network": {},
    "loss": {},
    "weights": Spec(None, (str, type(None)), path=True, doc="pretrained weights for this stage"),
    "freeze": False,
    "network_input": {},
    "loss_input": {},
}

DEFAULTS = {
    "include": Spec(None, (str, list, type(None)), doc="other YAML files merged under this one"),
    "io": {
        "dataset": {
            "files": Spec([], (list, str), path=True, doc="list of paths or globs"),
            "format": Spec("auto", (str,), choices=("auto", "larcv3", "larcv2", "pilarnet_m")),
            "schema": {},
            "max_events": Spec(None, (int, type(None))),
            # Meaning of semantic codes in larcv files (parsers/label_schemes.py).
            "labels": Spec("pilarnet2020", (str,), choices=("pilarnet2020", "spine"),
                           doc="pilarnet2020: 0 HIP 1 MIP 2 shower 3 delta 4 Michel; spine: "
                               "0 shower 1 track 2 Michel 3 delta 4 low-energy"),
            # Format-specific reader options, e.g. for pilarnet_m
            # {grid_size: 768, semantic_mapping: {low_energy: Shower}}.
            "reader_options": {},
        },
        "loader": {
            "batch_size": 4,
            "num_workers": 0,
            "shuffle": True,
        },
        "on_bad_event": Spec("skip", (str,), choices=("skip", "raise")),
        "max_voxels": 2_000_000,
    },
    "model": {
        "stages": ["spice"],
        "modules": {},
    },
    "train": {
        "iterations": 1000,
        "epochs": Spec(None, (int, type(None)), doc="train for epochs instead of iterations"),
        "checkpoint_every": 100,
        # Also every N minutes of wall time (None: iterations only): a hard stop of a
        # long run then loses at most N minutes, whatever the machine's load.
        "checkpoint_minutes": Spec(None, (int, float, type(None)),
                                   doc="also checkpoint every N minutes of wall time"),
        "keep_checkpoints": 3,
        # Weight averaging (`mlreco-spice average`) reads every checkpoint_every-grid
        # checkpoint of the run's tail: those are spared by keep_checkpoints' pruning.
        "keep_grid_from": Spec(None, (int, type(None)),
                               doc="never prune checkpoints on the checkpoint_every grid at or "
                                   "after this iteration (weight averaging reads them)"),
        # None: runs/<config name> in the working directory (config.default_output_dir).
        "output_dir": Spec(None, (str, type(None)), path=True,
                           doc="default: runs/<config name> in the working directory"),
        "seed": 0,
        # Bit-reproducible CPU training: `mlreco-spice train` then runs the CPU
        # kernels on one OpenMP thread (multi-threaded reductions sum in a
        # varying order). Costs up to 2x on 2 cores; set false for speed.
        "deterministic": True,
        "device": Spec("auto", (str,), doc="auto, cpu, cuda or cuda:N"),
        "optimizer": {
            "name": Spec("adam", (str,), choices=("adam", "adamw", "sgd")),
            "lr": 0.005,
            "weight_decay": 0.0,
        },
        "lr_schedule": Spec(None, (dict, type(None)), doc="{name: step|cosine|exponential, ...}"),
        # Paper's two-stage schedule: seediness frozen for the first N iterations.
        "freeze_seediness_iterations": 0,
        # A run restarted from exported weights (`train --restart-from`) has no
        # Adam moments: the learning rate ramps up linearly over these iterations.
        "restart_warmup": 100,
        "log_every": 1,
    },
    "predict": {
        "weights": Spec(None, (str, type(None)), path=True),
        "thresholds": Spec(None, (str, dict, type(None)), path=True,
                           doc="YAML from `mlreco-spice tune`, or an inline mapping"),
        "save_embeddings": False,
        "input_products": ["sparse3d_data"],
    },
    "analysis": {
        "min_true_size": 10,
        "ari_threshold": 0.92,
    },
}

#: Mappings whose keys the user names; each value is checked against the
#: schema given here (None: free-form).
OPEN_MAPPINGS = {
    ("io", "dataset", "schema"): None,
    ("model", "modules"): "stage",
}

#: Key paths ("*" matches any key) whose string values are file paths.
PATH_KEYS = (
    ("io", "dataset", "files"),
    ("model", "modules", "*", "weights"),
    ("train", "output_dir"),
    ("predict", "weights"),
    ("predict", "thresholds"),
)


def stage_schema(stage: str) -> dict:
    """Schema (with defaults) of one ``model.modules.<stage>`` block."""
    schema = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _STAGE_COMMON.items()}
    for key, value in STAGE_DEFAULTS.get(stage, {}).items():
        schema[key] = value
    return schema


__all__.append("stage_schema")
