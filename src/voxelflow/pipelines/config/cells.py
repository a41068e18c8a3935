"""``[cells]``: the cell workflow; every length in micrometres."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import BadValue, boolean, key, number, number_or_unset, string


def numbers(v):
    """A non-empty list of numbers (a single number is a list of one)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise BadValue
    return [number()(x) for x in v]


@dataclass
class CellsSection:
    """``[cells]``: the cell pipeline; every length in micrometres, unset ones follow ``diameter_um``."""

    diameter_um: float = key(10.0, number(lo=0.1), "a number > 0 (micrometres)",
                             "expected nucleus diameter; sets the defaults of every length below")
    prefilter: str = key("log", string(choices=("none", "log", "dog", "tophat")),
                         "'none', 'log', 'dog' or 'tophat'", "filter before thresholding")
    per_plane: bool = key(False, boolean, "true or false", "filter each z plane in 2-D")
    sigma_um: float | None = key(None, number_or_unset(0.01), "a number > 0 (micrometres, or unset)",
                                 "filter scale; default 0.9 x diameter / (2 sqrt 3), per plane / (2 sqrt 2)")
    background: str = key("plane", string(choices=("none", "plane", "tile")), "'none', 'plane' or 'tile'",
                          "divide each plane (or tile of it) by its median inside the tissue")
    tile_um: float | None = key(None, number_or_unset(1), "a number > 0 (micrometres, or unset)",
                                "tile size for background / threshold = 'tile'; default 25 x diameter")
    threshold: str = key("plane", string(choices=("absolute", "plane", "tile", "local")),
                         "'absolute', 'plane', 'tile' or 'local'",
                         "absolute value, mean + k SD per plane / per tile (inside the tissue), or local mean + k SD")
    threshold_k: float = key(3.0, number(), "a number (standard deviations)", "k of mean + k SD")
    threshold_value: float | None = key(None, number(allow_none=True), "a number (or unset)",
                                        "threshold on the filtered image when threshold = 'absolute'")
    window_um: float | None = key(None, number_or_unset(0.1), "a number > 0 (micrometres, or unset)",
                                  "half-width of the local threshold window; default 2 x diameter")
    peak_radius_um: float | None = key(None, number_or_unset(0), "a number >= 0 (micrometres, or unset)",
                                       "box half-width in which a cell centre is the maximum; default 0.2 x diameter")
    min_distance_um: float | None = key(None, number_or_unset(0), "a number >= 0 (micrometres, or unset)",
                                        "a weaker maximum this close to a stronger one is dropped; default 0.5 x "
                                        "diameter (up to 0.7 x inside large objects)")
    edge_um: float = key(0.0, number(lo=0), "a number >= 0 (micrometres)",
                         "shell along the tissue edge where no cell is kept")
    shape_filter: bool = key(True, boolean, "true or false",
                             "drop cells whose foreground object is too large or too elongated for a cell")
    min_volume_um3: float | None = key(None, number_or_unset(0), "a number >= 0 (um^3, or unset)",
                                       "shape filter: smallest foreground object")
    max_volume_um3: float | None = key(None, number_or_unset(0), "a number >= 0 (um^3, or unset)",
                                       "shape filter: largest foreground object; default 40 cell volumes")
    max_elongation: float | None = key(None, number_or_unset(1), "a number >= 1 (or unset)",
                                       "shape filter: most elongated foreground object (vessels, fibres); default 6")
    split_touching: bool = key(True, boolean, "true or false",
                               "add a cell for each touching neighbour that shows no maximum of its own "
                               "(distance-transform maxima behind a neck in the foreground at mean + split_k SD)")
    split_k: list[float] = key([0.5, 1.0, 2.0], numbers, "a number or a list of numbers (standard deviations)",
                               "foregrounds at mean + k SD (below threshold_k) in which touching cells are split, "
                               "in turn: a neck shows at one level or another")
    classifier: str = key("", string(allow_empty=True), "a classifier file path or URL (or empty)",
                          "keep only the candidates whose foreground object this classifier (voxelflow "
                          "train-classifier) calls a cell", path=True)
