"""``[mask]``: the automatic tissue mask (both workflows)."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import boolean, key, number


@dataclass
class MaskSection:
    """``[mask]``: how the automatic tissue mask treats the scan (both workflows)."""

    whole_brain: bool = key(False, boolean, "true or false",
                            "the scan is a whole brain: the volume border counts as a tissue edge (false: a crop "
                            "or partial brain, tissue runs on past the border)")
    warn_fraction: float = key(0.8, number(lo=0, hi=1), "a fraction between 0 and 1",
                               "warn when the mask removes more than this fraction of the volume")
