"""``[output]``: the run folder and stored intermediates."""

from __future__ import annotations

from dataclasses import dataclass

from voxelflow.pipelines.config.checks import boolean, key, number, string, triple


@dataclass
class OutputSection:
    """``[output]``: the run folder and how intermediates are stored."""

    folder: str = key(None, string(), "a folder path or URL", required=True, path=True)
    cache: str = key("", string(allow_empty=True), "a folder path or URL (default: <folder>/cache)", path=True)
    chunks: list[int] = key([64, 128, 128], triple, "three integers >= 1 (z, y, x)",
                            "chunk shape of stored full-resolution intermediates")
    levels: int = key(3, number(lo=1, integer=True), "an integer >= 1",
                      "pyramid levels of stored intermediates (viewer-friendly)")
    full_res: str = key("auto", string(choices=("auto", "all", "none")), "'auto', 'all' or 'none'",
                        "store the full-resolution foreground (BS) and labels (OS) in the cache: auto = only "
                        "for scans of at most 2**26 voxels (67 MVox); otherwise objects come from one "
                        "streaming pass that stores nothing of full resolution")
    report: bool = key(True, boolean, "true or false", "write report.html when voxelflow.report exists")
