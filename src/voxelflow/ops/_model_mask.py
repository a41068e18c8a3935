"""A segmentation model's foreground as a mask (IN -> BS), in 3-D, per plane, or tri-planar.

The plaque pipeline's model-based negative mask (vessels, edges, artefacts, as
the original tool predicts with nnU-Net) runs on the coarse level, which has a
fixed voxel budget. A 3-D model sees the volume in chunks with a halo (see
:func:`voxelflow.ops.predict`); a 2-D model runs on every plane along one axis,
or along each of the three axes with the three probabilities averaged
(*tri-planar*), which smooths out the errors a 2-D model makes across planes.

Foreground probability: for a model with ``C >= 2`` output channels,
``1 - p[0]`` (everything but the background class 0); for one channel, the
channel itself.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from voxelflow.errors import InvalidInputError
from voxelflow.ops._predict import predict

__all__ = ["model_mask", "PerPlane", "MASK_MODES"]

MASK_MODES = ("3d", "planes", "triplanar")


class PerPlane:
    """A 2-D model applied to every plane of a 3-D block along ``axis``.

    Parameters
    ----------
    model : callable
        ``model(plane (Y, X)) -> (C, Y, X)`` (or ``(Y, X)`` when ``channels`` is None).
    axis : int
        0, 1 or 2: the planes are ``block.take(i, axis)``.

    Attributes
    ----------
    channels : int or None
        Copied from ``model.channels``.
    halo : tuple of int
        The 2-D model's halo on the in-plane axes, 0 along ``axis``.
    """

    def __init__(self, model, axis: int = 0):
        if axis not in (0, 1, 2):
            raise InvalidInputError(f"axis must be 0, 1 or 2, got {axis!r}")
        self.model = model
        self.axis = axis
        self.channels = getattr(model, "channels", None)
        inner = getattr(model, "halo", None) or 0
        inner = tuple(np.broadcast_to(np.asarray(inner, int), (2,)).tolist())
        halo = list(inner)
        halo.insert(axis, 0)
        self.halo = tuple(halo)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        planes = [np.take(block, i, axis=self.axis) for i in range(block.shape[self.axis])]
        batch = getattr(self.model, "batch", None)
        planes = [np.asarray(p) for p in (batch(planes) if batch else [self.model(p) for p in planes])]
        # the channel axis (if any) leads, so the plane axis moves one place right
        return np.stack(planes, axis=self.axis + (self.channels is not None))

    def __dask_tokenize__(self):
        inner = getattr(self.model, "__dask_tokenize__", None)
        return ("voxelflow.PerPlane", self.axis, inner() if inner else id(self.model))


def _foreground(probs: da.Array, channels) -> da.Array:
    if channels is None:
        return probs
    if channels == 1:
        return probs[0]
    return 1 - probs[0]


def model_mask(
    image,
    model,
    *,
    mode: str = "3d",
    axis: int = 0,
    threshold: float = 0.5,
    halo=None,
    pad_mode: str = "reflect",
) -> da.Array:
    """Foreground of a segmentation model as a binary mask.

    Parameters
    ----------
    image : dask.array.Array or numpy.ndarray, shape (Z, Y, X)
        Usually the coarse level of a scan (IN).
    model : callable
        A 3-D model for ``mode='3d'``, a 2-D model otherwise (the ``predict``
        protocol: ``channels`` and ``halo`` attributes are used when present).
    mode : {'3d', 'planes', 'triplanar'}
        ``'planes'`` runs the 2-D model on the planes along ``axis``;
        ``'triplanar'`` along each axis and averages the foreground probabilities.
    axis : int
        Plane axis for ``mode='planes'``.
    threshold : float
        Foreground where the probability is at least this.
    halo : int or sequence of int, optional
        Voxels of context per chunk (default: the model's ``halo``).
    pad_mode : str
        Border padding (``numpy.pad`` mode).

    Returns
    -------
    dask.array.Array of bool, shape and chunks of ``image``
    """
    image = da.asarray(image)
    if image.ndim != 3:
        raise InvalidInputError(f"model_mask needs a 3-D image, got shape {image.shape}")
    if mode not in MASK_MODES:
        raise InvalidInputError(f"mode must be one of {MASK_MODES}, got {mode!r}")
    if not 0 <= threshold <= 1:
        raise InvalidInputError(f"threshold must be between 0 and 1, got {threshold!r}")
    channels = getattr(model, "channels", None)
    if mode == "3d":
        runs = [model]
    elif mode == "planes":
        runs = [PerPlane(model, axis)]
    else:
        runs = [PerPlane(model, ax) for ax in range(3)]
    total = None
    for run in runs:
        depth = halo
        if depth is not None and mode != "3d":
            depth = list(np.broadcast_to(np.asarray(depth, int), (2,)))
            depth.insert(run.axis, 0)
        probs = predict(image, run, halo=depth, output="probabilities", dtype="float32", pad_mode=pad_mode)
        fg = _foreground(probs, channels)
        total = fg if total is None else total + fg
    return (total / len(runs)) >= threshold
