"""``[pipeline]``: the workflow kind and the plaque workflow's parameters."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import (
    bias_choice,
    key,
    number,
    optional_index,
    optional_positive_int,
    optional_triple,
    string,
)

#: Workflow kinds ``pipeline.kind`` may name.
KINDS = ("plaque", "cells")


@dataclass
class PlaqueSection:
    """``[pipeline]``: the workflow kind and the plaque parameters."""

    kind: str = key("plaque", string(choices=KINDS), f"one of {', '.join(KINDS)}", "which workflow runs")
    coarse_max_voxels: int | None = key(None, optional_positive_int, "an integer >= 1 (voxels; or unset)",
                                        "voxel budget of the coarse grid for mask, bias field and threshold "
                                        "(unset: 8388608 = 2**23); a stored pyramid level within it is read "
                                        "as it is")
    coarse_um: float | None = key(None, number(lo=1e-9, allow_none=True), "a number > 0 (micrometres; or unset)",
                                  "voxel size of the coarse grid, e.g. 25 (the budget still caps its size)")
    coarse_factors: list[int] | None = key(None, optional_triple, "three integers >= 1 (z, y, x), or unset",
                                           "old setting: max-pooling factors of level 0 for the coarse grid; "
                                           "prefer coarse_max_voxels or coarse_um, which do not grow with the scan")
    bias_max_voxels: int = key(32768, number(lo=1, integer=True), "an integer >= 1 (voxels)",
                               "voxel budget of the N4 fit (block means of the coarse grid); N4 time grows "
                               "with it, not with the scan")
    bias: bool | str = key("auto", bias_choice, "'auto', true or false",
                           "N4 bias correction: auto = when SimpleITK is installed")
    mask: str = key("auto", string(), "'auto', 'none', an OME-Zarr mask path or 'model:PATH'",
                    "negative mask: auto = outside tissue + edge shell from the coarse level; model:PATH = the "
                    "foreground of a segmentation model (.onnx, nnU-Net folder, cellpose:NAME) on the coarse level",
                    path=True)
    mask_mode: str = key("3d", string(choices=("3d", "planes", "triplanar")), "'3d', 'planes' or 'triplanar'",
                         "how a mask model runs: 3-D, 2-D on z planes, or 2-D along z, y and x averaged")
    mask_threshold: float = key(0.5, number(lo=0, hi=1), "a number between 0 and 1",
                                "foreground probability from which a mask model's voxel is masked")
    edge_um: float = key(20.0, number(lo=0), "a number >= 0 (micrometres)",
                         "depth of the tissue edge shell removed by the auto mask")
    threshold: float | None = key(None, number(lo=0, allow_none=True), "a number > 0 (or unset)",
                                  "absolute intensity threshold (after bias correction)")
    threshold_factor: float = key(2.0, number(lo=0), "a number > 0",
                                  "threshold = factor x median tissue intensity, when threshold is unset")
    min_voxels: int = key(8, number(lo=0, integer=True), "an integer >= 0")
    max_voxels: int | None = key(None, optional_index, "an integer >= 0 (or unset)")
    connectivity: int = key(1, number(lo=1, hi=3, integer=True), "1, 2 or 3")
    split: str = key("none", string(choices=("none", "watershed")), "'none' or 'watershed'",
                     "none = exact connected components; watershed = split touching objects")
    split_min_distance: int = key(4, number(lo=1, integer=True), "an integer >= 1 (voxels)",
                                  "watershed: minimum distance between two seeds")
    density_um: float | None = key(None, number(lo=1e-9, allow_none=True), "a number > 0 (micrometres; or unset)",
                                   "edge of a density-map voxel (unset: 25); the map never has more voxels "
                                   "than the coarse grid's budget (coarse_max_voxels)")
    density_factors: list[int] | None = key(None, optional_triple, "three integers >= 1 (z, y, x), or unset",
                                            "old setting: scan voxels per density-map voxel; prefer density_um, "
                                            "whose map does not grow with the scan")
    prefilter: str = key("none", string(choices=("none", "log", "dog", "tophat", "background")),
                         "'none', 'log', 'dog', 'tophat' or 'background'",
                         "filter before the threshold; background = subtract the scaled background channel")
    prefilter_um: float = key(10.0, number(lo=0.01), "a number > 0 (micrometres)",
                              "LoG / DoG sigma or top-hat box half-width")
    threshold_mode: str = key("factor", string(choices=("absolute", "factor", "plane", "tile", "local")),
                              "'absolute', 'factor', 'plane', 'tile' or 'local'",
                              "factor x median tissue (or pipeline.threshold when set), an absolute value, "
                              "mean + k SD per plane / tile inside the tissue, or local mean + k SD")
    threshold_k: float = key(3.0, number(), "a number (standard deviations)", "k of mean + k SD")
    tile_um: float = key(250.0, number(lo=1), "a number > 0 (micrometres)", "tile edge for threshold_mode = 'tile'")
    window_um: float = key(50.0, number(lo=0.1), "a number > 0 (micrometres)",
                           "half-width of the local threshold window")
    split_min_distance_um: float | None = key(None, number(lo=0.01, allow_none=True),
                                              "a number > 0 (micrometres, or unset)",
                                              "watershed seed distance in micrometres (wins over split_min_distance)")
