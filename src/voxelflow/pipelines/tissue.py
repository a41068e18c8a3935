"""The tissue stages both workflows share, on the coarse grid: finite check, negative mask, masked fraction, bias field.

The negative mask is what ``pipeline.mask`` names: ``"auto"`` (outside the tissue
plus an edge shell, :func:`voxelflow.ops.auto_negative_mask`), ``"none"``, a user
mask OME-Zarr of any resolution, a user function of the coarse image, or
``"model:PATH"`` (a segmentation model's foreground). The bias field is N4 on
block means of the coarse grid (SimpleITK, optional with ``pipeline.bias = "auto"``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import dask.array as da
import numpy as np

from voxelflow import steps
from voxelflow.errors import InvalidInputError, OptionalDependencyError
from voxelflow.io.models import load_model
from voxelflow.ops import bias_fit_factors, model_mask, scale_nearest
from voxelflow.pipelines.coarse import block_translation
from voxelflow.pipelines.config import Config
from voxelflow.pipelines.inputs import open_user_mask
from voxelflow.pipelines.run import Inputs
from voxelflow.steps import Runner, Step

__all__ = ["bias_field", "masked_fraction", "negative_mask", "report_masked_fraction", "require_finite"]

#: Viewer arguments of coarse maps: shown switched off so they do not cover the scan.
HIDDEN = {"visible": False}




def masked_fraction(negative) -> float:
    """Fraction of the volume a (coarse) negative mask removes."""
    neg = np.asarray(negative)
    return float(neg.mean()) if neg.size else 0.0


_masked_fraction = Step(masked_fraction, name="masked_fraction")


def report_masked_fraction(run: Runner, negative, config: Config, inputs: Inputs) -> float:
    """The masked fraction (a cached step, so a rerun reads it), with a warning above ``mask.warn_fraction``."""
    masked = run.step(_masked_fraction, negative, name="masked_fraction")
    if masked > config.mask.warn_fraction and inputs.progress:
        print(f"  warning: the mask removes {masked:.0%} of the volume (more than mask.warn_fraction = "
              f"{config.mask.warn_fraction:.0%}); check pipeline.mask, the edge shell (pipeline.edge_um, "
              "cells.edge_um) and mask.whole_brain (false for a crop or partial brain)", file=inputs.stream)
    return masked


def call_mask_function(fn: Callable, coarse, scale) -> np.ndarray:
    """Run a user mask function ``fn(coarse, scale) -> bool array of coarse's shape``."""
    out = np.asarray(fn(np.asarray(coarse), tuple(scale)))
    if out.shape != tuple(coarse.shape):
        raise InvalidInputError(
            f"mask function {getattr(fn, '__name__', fn)!r} returned shape {out.shape}; "
            f"expected the coarse shape {tuple(coarse.shape)}"
        )
    return out.astype(bool)


def user_mask_on_grid(mask, shape) -> da.Array:
    """A user mask of any resolution over the scan's box, resampled (nearest) onto a grid of ``shape``."""
    return scale_nearest(da.asarray(mask) != 0, output_shape=tuple(shape))


_mask_function = Step(call_mask_function, kind="IN->BS", name="negative_mask")
_user_mask = Step(user_mask_on_grid, kind="BS->BS", name="negative_mask")
_model_mask = Step(model_mask, kind="IN->BS", name="negative_mask")


def require_finite(coarse, url: str) -> None:
    """Refuse a scan with NaN or +inf voxels (max pooling carries them into the coarse level).

    Thresholds, Otsu's method and intensity statistics are meaningless on them; a
    clear error beats a mask or a table computed from NaN.
    """
    if np.dtype(coarse.dtype).kind != "f":
        return
    bad = int(da.count_nonzero(~da.isfinite(da.asarray(coarse))).compute())
    if bad:
        raise InvalidInputError(
            f"input {url!r} has NaN or inf voxels (in {bad} coarse blocks of the scan); replace them "
            "(e.g. by 0) before running the pipeline"
        )


def negative_mask(run: Runner, setting, coarse, coarse_scale, p, store: dict, *, whole_brain: bool = False):
    kwargs = {}
    if setting in (None, "none"):
        return da.zeros(coarse.shape, dtype=bool, chunks=coarse.chunks)
    if setting == "auto":
        op, args = steps.auto_negative_mask, (coarse, coarse_scale, p.edge_um)
        kwargs = {"whole_brain": whole_brain}
    elif callable(setting):
        op, args = _mask_function, (setting, coarse, coarse_scale)
    elif str(setting).startswith("model:"):
        op, args = _model_mask, (coarse, load_model(setting))
        kwargs = {"mode": p.mask_mode, "threshold": p.mask_threshold}
    else:
        op, args = _user_mask, (open_user_mask(str(setting)), coarse.shape)
    return run.step(op, *args, name="negative_mask", storage=store, viewer_args=HIDDEN, **kwargs)


def _bias_available() -> bool:
    """Whether SimpleITK can be imported, without importing it (0.5 s) on fully cached runs."""
    if "SimpleITK" in sys.modules:
        return sys.modules["SimpleITK"] is not None
    return importlib.util.find_spec("SimpleITK") is not None


def field_storage(store: dict, shape, max_voxels: int) -> dict:
    """Storage of the bias field: fitted on block means of the coarse grid when that grid exceeds ``max_voxels``
    (:func:`voxelflow.ops.estimate_bias_field`), so its voxel size and position are those blocks'."""
    factors = bias_fit_factors(shape, store["scale"], max_voxels)
    if all(f == 1 for f in factors):
        return store
    out = dict(store, scale=tuple(s * f for s, f in zip(store["scale"], factors)))
    if "translation" in store:
        out["translation"] = block_translation(store["translation"], store["scale"], factors)
    return out


def bias_field(run: Runner, p, coarse, negative, store: dict, inputs: Inputs):
    skipped = "  bias correction skipped: SimpleITK is not installed"
    bias = p.bias
    if bias is True or (bias == "auto" and _bias_available()):
        try:
            return run.step(steps.estimate_bias_field, coarse, mask=~negative, spacing=store["scale"],
                            max_voxels=p.bias_max_voxels, name="bias_field",
                            storage=field_storage(store, coarse.shape, p.bias_max_voxels), viewer_args=HIDDEN)
        except OptionalDependencyError:
            if bias is True:
                raise
            print(skipped, file=inputs.stream)
    elif inputs.progress and bias == "auto":
        print(skipped, file=inputs.stream)
    return None
