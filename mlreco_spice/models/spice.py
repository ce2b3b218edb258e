"""SPICE network (paper section II.B): shared encoder, embedding and seediness decoders.

Outputs per kept voxel ``i``:

* ``embeddings`` = ``tanh(o_i) + x̃_i`` (eq. II.1), ``x̃`` the normalised
  coordinates (see :mod:`.coords` for the ``norm_length`` convention);
* ``margins`` = ``2 sigmoid(·)`` in (0, 2);
* ``seediness`` = ``sigmoid(·)`` in (0, 1).

Class ownership: the stage clusters only the classes in ``network.classes``.
When ``semantics`` are given, voxels of other classes are dropped before the
network runs and ``index`` maps every output row back to its input row.

With coordinate convolution (``coord_conv``, default on) the normalised
coordinates are appended to the input features.

Two-stage training (paper III.A): :meth:`SPICE.set_seediness_frozen` stops
gradients into the seediness decoder and head and keeps their batch norms in
eval mode; while frozen the branch runs without autograd, so no backward pass
goes through it.
"""
from __future__ import annotations

import time

from typing import Any, Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from ..backend import import_minkowski
from ..columns import BATCH_COL, COORD_COLS, FEATURE_START, class_indices
from ..config import ConfigError
from ..losses.spice_loss import SPICELoss
from ..losses.stage_config import stage_block
from ..registry import MODELS
from .blocks import NormAct, configure_batchnorm
from .coords import check_input, normalized_coordinates, to_sparse
from .uresnet import build_unet_parts

__all__ = ["SPICE"]

EMBEDDING_DIM = 3


@MODELS.register("spice", loss=SPICELoss)
class SPICE(nn.Module):
    """The SPICE clustering network.

    Parameters
    ----------
    stage_cfg : dict, optional
        The ``model.modules.spice`` block (missing keys take defaults). Reads
        ``network`` (``uresnet``, ``num_input``, ``coord_conv``, ``classes``,
        ``norm_length``, ``image_size``) and ``clusterer``.

    Raises
    ------
    ConfigError
        For an unknown class name in ``network.classes``.
    """

    def __init__(self, stage_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        ME = import_minkowski()
        block = stage_block("spice", stage_cfg)
        net = block["network"]
        try:
            self.classes = class_indices(net["classes"])
        except ValueError as err:
            raise ConfigError(f"model.modules.spice.network.classes: {err}") from None
        if not self.classes:
            raise ConfigError("model.modules.spice.network.classes is empty: list the classes "
                              "this stage clusters, e.g. [HIP, MIP, Shower, Delta, Michel]")
        self.num_input = int(net["num_input"])
        self.coord_conv = bool(net["coord_conv"])
        if float(net["norm_length"]) <= 0:
            raise ConfigError(f"model.modules.spice.network.norm_length must be > 0, "
                              f"got {net['norm_length']}")
        # A buffer, so the length the weights were trained with travels with them.
        self.register_buffer("norm_length", torch.tensor(float(net["norm_length"])))
        self.image_size = float(net["image_size"] or net["norm_length"])
        self.voxel_cm: Optional[Tuple[float, float, float]] = None  # set per batch by the chain
        self.clusterer_cfg = dict(block["clusterer"])
        from ..cluster import SPICEClusterer  # the clusterer has no ME dependency

        try:  # built now so a bad clusterer block (or thresholds file) fails before any event
            self._clusterer = SPICEClusterer(**self.clusterer_cfg)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"model.modules.spice.clusterer: {err}. A thresholds file tuned with the "
                "connectivity or absorb steps (e.g. weights/thresholds_all_steps.yaml) needs "
                "the clusterer block of chain_configs/predict_all_steps.yaml (connect_radius_cm, "
                "absorb_radius_cm)"
            ) from None

        unet = net["uresnet"]
        filters, slope = int(unet["filters"]), float(unet["leaky_slope"])
        in_channels = self.num_input + (EMBEDDING_DIM if self.coord_conv else 0)
        parts = build_unet_parts(unet, in_channels, 2)
        self.encoder = parts["encoder"]
        self.embedding_decoder, self.seediness_decoder = parts["decoder0"], parts["decoder1"]
        # head_activation false (SPINE's heads): a LeakyReLU of slope 1 is the identity,
        # and the parameter names stay those of the default heads.
        head_slope = slope if net["head_activation"] else 1.0
        self.embedding_head = nn.Sequential(NormAct(filters, head_slope),
                                            ME.MinkowskiLinear(filters, EMBEDDING_DIM + 1))
        self.seediness_head = nn.Sequential(NormAct(filters, head_slope),
                                            ME.MinkowskiLinear(filters, 1))
        configure_batchnorm(self, unet["norm_eps"], unet["norm_momentum"])
        self.seediness_frozen = False

    # ------------------------------------------------------------ settings --
    def set_image_size(self, image_size: float) -> None:
        """Set the image side (voxels) whose centre is the coordinate origin."""
        if float(image_size) <= 0:
            raise ValueError(f"image_size must be > 0, got {image_size}")
        self.image_size = float(image_size)

    def set_voxel_cm(self, voxel_cm: Optional[Tuple[float, float, float]]) -> None:
        """Set the voxel pitch (cm per axis, the batch's ``ImageMeta.voxel_cm``) that the
        clusterer's distances in cm are converted with; None where the batch has no meta."""
        self.voxel_cm = None if voxel_cm is None else tuple(float(v) for v in voxel_cm)

    def seediness_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the seediness decoder and head."""
        yield from self.seediness_decoder.parameters()
        yield from self.seediness_head.parameters()

    def set_seediness_frozen(self, frozen: bool) -> None:
        """Freeze (or release) the seediness branch (paper's two-stage training)."""
        self.seediness_frozen = bool(frozen)
        for param in self.seediness_parameters():
            param.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "SPICE":
        super().train(mode)
        if self.seediness_frozen:
            # Frozen batch norms must not update their running statistics.
            self.seediness_decoder.eval()
            self.seediness_head.eval()
        return self

    # ------------------------------------------------------------- forward --
    def forward(self, data: torch.Tensor,
                semantics: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Run the network on ``data`` ``(N, 4 + num_input)``.

        Parameters
        ----------
        data : torch.Tensor
            ``[batch, x, y, z, features...]`` rows (integer voxel coordinates).
        semantics : torch.Tensor, optional
            (N,) class per row; rows of classes this stage does not own are
            dropped. Without it every row is kept (and no clustering is run,
            since the thresholds are per class).

        Returns
        -------
        dict
            ``embeddings`` (M, 3), ``margins`` (M, 1), ``seediness`` (M, 1),
            ``index`` (M,) input rows kept, and in eval mode with the
            clusterer enabled and semantics given, ``clusters`` (M,).
        """
        check_input(data, self.num_input, "spice")
        if semantics is None:
            index = torch.arange(len(data), device=data.device)
        else:
            if semantics.numel() != len(data):
                raise ValueError(f"spice: {semantics.numel()} semantic labels for {len(data)} rows")
            owned = torch.tensor(self.classes, device=semantics.device)
            index = torch.nonzero(torch.isin(semantics.reshape(-1).long(), owned)).flatten()
            index = index.to(data.device)
        rows = data[index]
        coords = normalized_coordinates(rows[:, list(COORD_COLS)].float(), self.image_size,
                                        self.norm_length)
        if len(rows) == 0:
            out = self._empty_outputs(data, index)
        else:
            out = self._run(rows, coords)
            out["index"] = index
        if not self.training and semantics is not None and self.clusterer_cfg.get("enabled", True):
            kept = semantics.reshape(-1)[index.to(semantics.device)].to(data.device)
            tick = time.perf_counter()
            out["clusters"] = self._cluster(out, kept, rows[:, BATCH_COL].long(),
                                            rows[:, list(COORD_COLS)].float())
            if out["clusters"].is_cuda:
                torch.cuda.synchronize(out["clusters"].device)
            # Wall time of the clustering alone (a float, not a tensor), for timing CSVs.
            out["cluster_time_s"] = time.perf_counter() - tick
        return out

    def _run(self, rows: torch.Tensor, coords: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = rows[:, FEATURE_START:].float()
        if self.coord_conv:
            features = torch.cat([coords, features], dim=1)
        x, inverse = to_sparse(rows, features)
        levels = self.encoder(x)
        # Both decoders run on the same coordinate manager, so the kernel maps
        # the first one computes are reused by the second.
        emb = self.embedding_head(self.embedding_decoder(levels)).F[inverse]
        # A frozen seediness branch runs without autograd: no graph is recorded,
        # so backward never traverses it (its output still feeds the logged seed
        # term and the clusterer).
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.seediness_frozen):
            seed = self.seediness_head(self.seediness_decoder(levels)).F[inverse]
        return {"embeddings": torch.tanh(emb[:, :EMBEDDING_DIM]) + coords,
                "margins": 2.0 * torch.sigmoid(emb[:, EMBEDDING_DIM:]),
                "seediness": torch.sigmoid(seed)}

    def _empty_outputs(self, data: torch.Tensor, index: torch.Tensor) -> Dict[str, torch.Tensor]:
        # Empty, but attached to the parameters so that a loss on it can backpropagate.
        anchor = 0.0 * sum(p.sum() for p in self.embedding_head.parameters())
        return {"embeddings": data.new_zeros(0, EMBEDDING_DIM) + anchor,
                "margins": data.new_zeros(0, 1) + anchor,
                "seediness": data.new_zeros(0, 1) + anchor,
                "index": index}

    def _cluster(self, out: Dict[str, torch.Tensor], semantics: torch.Tensor,
                 batch_ids: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self._clusterer(out["embeddings"], out["margins"], out["seediness"],
                               semantics, batch_ids, coords=coords, voxel_cm=self.voxel_cm)
