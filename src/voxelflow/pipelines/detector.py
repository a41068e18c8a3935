"""The plaque pipeline's detector choices: a pre-filter and a threshold rule, every length in micrometres.

``pipeline.prefilter`` (``none`` | ``log`` | ``dog`` | ``tophat`` | ``background``)
and ``pipeline.threshold_mode`` (``absolute`` | ``factor`` | ``plane`` | ``tile`` |
``local``) choose what :func:`detector_foreground` computes; ``none`` with
``factor`` / ``absolute`` is the plain bias-corrected threshold of
:func:`voxelflow.ops.foreground`, which the recipe uses directly.
"""

from __future__ import annotations

import numpy as np

from voxelflow import ops
from voxelflow.errors import ConfigError
from voxelflow.pipelines.config import Config
from voxelflow.pipelines.inputs import background_scan
from voxelflow.steps import Runner, Step

__all__ = ["uses_detector", "check_detector", "detector_foreground", "detector_step"]


def uses_detector(p) -> bool:
    """Whether the ``[pipeline]`` settings ask for more than the plain threshold."""
    return p.prefilter != "none" or p.threshold_mode in ("plane", "tile", "local")


def check_detector(p, has_background: bool) -> None:
    """Refuse settings that contradict each other, naming the keys."""
    if p.prefilter in ("log", "dog", "tophat", "background") and p.threshold_mode == "factor":
        raise ConfigError("pipeline.threshold_mode: 'factor' (x median tissue intensity) needs the unfiltered scan; "
                          f"with pipeline.prefilter = {p.prefilter!r} use 'plane', 'tile', 'local' or 'absolute'")
    if p.threshold_mode == "absolute" and p.threshold is None:
        raise ConfigError("pipeline.threshold: expected a number when pipeline.threshold_mode = 'absolute'")
    if p.prefilter == "background" and not has_background:
        raise ConfigError("pipeline.prefilter = 'background' needs input.background_channel or input.background_url")


def detector_foreground(img, bg, negative, factors, field, spacing, prefilter: str, prefilter_um: float,
                        mode: str, value, k: float, tile_um: float, window_um: float):
    """Binary segmentation (BS): the pre-filtered, bias-corrected scan above the chosen threshold, outside the mask.

    Statistics (``plane`` / ``tile``) are computed inside the tissue (outside
    the negative mask) when this runs; the result stays lazy.
    """
    x = img if field is None else ops.apply_bias_field(img, field)
    keep = ~ops.upsample_mask(negative, factors, img.shape, img.chunks)
    if prefilter == "background":
        factor = ops.estimate_channel_factor(x, bg, mask=keep)
        x = ops.channel_background(x, bg, factor=factor)
    elif prefilter == "log":
        x = ops.log_filter(x, prefilter_um, spacing)
    elif prefilter == "dog":
        x = ops.dog_filter(x, prefilter_um, spacing)
    elif prefilter == "tophat":
        x = ops.white_tophat(x, prefilter_um, spacing)
    if mode in ("plane", "tile"):
        stats = ops.tile_stats(x, spacing, tile_um=tile_um if mode == "tile" else None, mask=keep)
        bs = ops.tile_threshold(x, stats, k)
    elif mode == "local":
        bs = ops.local_threshold(x, window_um, spacing, k=k)
    else:
        bs = ops.threshold(x, float(value))
    return bs & keep


def split_distance_voxels(p, spacing) -> int:
    """Watershed seed distance in voxels: ``split_min_distance_um`` over the finest voxel size, else the voxel setting."""
    if p.split_min_distance_um is None:
        return int(p.split_min_distance)
    return max(1, int(round(p.split_min_distance_um / float(np.min(spacing)))))


_detector_foreground = Step(detector_foreground, kind="IN->BS", name="detector_foreground")


def detector_step(run: Runner, config: Config, img, negative, coarse_scale, field, storage: dict):
    """The recipe's ``foreground`` step in a detector mode: settings checked, background channel opened.

    The coarse negative mask and bias field are up-sampled by whole factors of
    the coarse grid (``coarse_scale`` over the scan's voxel size, rounded).
    """
    p, scale = config.pipeline, storage["scale"]
    bg = background_scan(config, img)
    check_detector(p, bg is not None)
    factors = tuple(max(1, round(c / s)) for c, s in zip(coarse_scale, scale))
    return run.step(_detector_foreground, img, bg, negative, factors, field, scale, p.prefilter, p.prefilter_um,
                    p.threshold_mode, p.threshold, p.threshold_k, p.tile_um, p.window_um, name="foreground",
                    storage=storage)
