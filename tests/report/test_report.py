"""make_report: self-contained HTML, decodable PNGs, projections that put objects where they are."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re

import dask.array as da
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from report_helpers import (
    HALF,
    SHAPE,
    planted_image,
    planted_objects,
    region_counts,
    write_ngff_image,
    write_run_folder,
)

from voxelflow.errors import InvalidInputError, InvalidPathError, OmeZarrError
from voxelflow.report import make_report

CENTRES = [(6, 10, 12), (12, 30, 50), (18, 40, 20)]


def _red(png):
    return (png[..., 0] > 0.7) & (png[..., 1] < 0.35) & (png[..., 2] < 0.35)


def _png_centre(coord, factor, k):
    """PNG pixel (centre-based) of a full-resolution coordinate on a level downsampled by ``factor``."""
    coarse = (coord + 0.5) / factor - 0.5
    return (coarse + 0.5) * k - 0.5


def _check_projection(png, img_shape, centres, axis, factors, half=HALF):
    """Bright at every projected centre, red rings only around them, nowhere else.

    ``factors``: full-resolution voxels per image voxel along (z, y, x).
    """
    rows, cols = [a for a in range(3) if a != axis]
    h, w = img_shape[rows], img_shape[cols]
    k = png.shape[0] // h
    assert k >= 1 and png.shape[:2] == (h * k, w * k)
    red = _red(png)
    rr, cc = np.nonzero(red)
    reach = 2 * (half + 1) * k / min(factors[rows], factors[cols]) + 6
    near_any = np.zeros(rr.shape, bool)
    for centre in centres:
        pr = _png_centre(centre[rows], factors[rows], k)
        pc = _png_centre(centre[cols], factors[cols], k)
        d = np.hypot(rr - pr, cc - pc)
        near_any |= d <= reach
        assert (d <= reach).sum() >= 8, f"no ring drawn around {centre} in the {axis} projection"
        pixel = png[round(pr), round(pc), :3]
        assert pixel.min() > 0.9, f"planted object {centre} is not bright in the projection: {pixel}"
    assert near_any.all(), "red marker pixels far from every planted object"
    gray = ~red
    assert np.median(png[..., 0][gray]) < 0.3, "background should be dark"


def test_report_is_self_contained_and_pngs_decode(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    density = np.zeros((6, 12, 16), np.float32)
    density[1, 2, 3] = 1
    density[4, 10, 5] = 2
    out = make_report(run, image=planted_image(CENTRES), density=density)
    assert out == run / "report.html"
    text = out.read_text()
    links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', text) + re.findall(r"url\(([^)]*)\)", text)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "http:" not in text and "https:" not in text
    for name in ("mip_z", "mip_y", "mip_x", "density", "counts", "sizes"):
        path = run / f"{name}.png"
        assert imread(path).ndim == 3
        assert base64.b64encode(path.read_bytes()).decode() in text, f"{name}.png not embedded"
    assert ">3<" in text  # number of objects
    assert "peak_memory_mb" in text and "321" in text


def test_projections_show_planted_objects(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    make_report(run, image=da.from_array(planted_image(CENTRES), chunks=(8, 16, 16)))
    for axis, name in enumerate("zyx"):
        _check_projection(imread(run / f"mip_{name}.png"), SHAPE, CENTRES, axis, (1, 1, 1))


def test_projection_without_objects_has_no_markers(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, [])
    make_report(run, image=planted_image(CENTRES))
    png = imread(run / "mip_z.png")
    assert not _red(png).any()
    k = png.shape[0] // SHAPE[1]
    for _, y, x in CENTRES:
        assert png[y * k + k // 2, x * k + k // 2, :3].min() > 0.9


@settings(max_examples=6)
@given(
    factor=st.sampled_from([2, 3]),
    centres=st.lists(st.tuples(st.integers(3, 20), st.integers(3, 44), st.integers(3, 60)),
                     min_size=1, max_size=2),
)
def test_coarse_image_markers_follow_factors(tmp_path_factory, factor, centres):
    # A marker ring must not cover another object's centre pixel in any projection.
    for a, b in itertools.combinations(centres, 2):
        for axis in range(3):
            assume(math.dist(np.delete(a, axis), np.delete(b, axis)) >= 16)
    run = tmp_path_factory.mktemp("run")
    write_run_folder(run, centres)
    full = planted_image(centres)
    cut = [s - s % factor for s in SHAPE]
    coarse = full[:cut[0], :cut[1], :cut[2]]
    coarse = coarse.reshape(cut[0] // factor, factor, cut[1] // factor, factor, cut[2] // factor, factor)
    coarse = coarse.max(axis=(1, 3, 5))
    make_report(run, image=coarse, image_factors=(factor,) * 3)
    for axis, name in enumerate("zyx"):
        _check_projection(imread(run / f"mip_{name}.png"), coarse.shape, centres, axis, (factor,) * 3)


def test_image_and_density_read_from_ome_zarr_in_run_folder(tmp_path):
    # Level 1 (8, 80, 300) is the coarsest with a side >= 256: projections are read
    # there, and centroids must be mapped with the factors (1, 2, 2) of the pyramid.
    centres = [(4, 40, 100), (3, 120, 450)]
    run = tmp_path / "run"
    write_run_folder(run, centres, half=3)
    img = planted_image(centres, shape=(8, 160, 600), half=3)
    write_ngff_image(run / "image.ome.zarr", np.stack([np.zeros_like(img), img]), "czyx", 2)
    density = np.zeros((4, 8, 30), np.uint16)
    density[2, 3, 7] = 5
    write_ngff_image(run / "maps.ome.zarr", density, "zyx", 0)
    (run / "run.json").write_text('{"outputs": {"density": "maps.ome.zarr"}}')
    text = make_report(run, channel=1).read_text()
    for axis, name in enumerate("zyx"):
        png = imread(run / f"mip_{name}.png")
        _check_projection(png, (8, 80, 300), centres, axis, (1, 2, 2), half=3)
    assert (run / "density.png").is_file() and "Density map" in text


def test_stale_image_path_in_run_json_becomes_a_note(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    gone = tmp_path / "moved" / "scan.ome.zarr"
    (run / "run.json").write_text(json.dumps({
        "outputs": {"image": str(gone)},
        "steps": [{"name": "threshold", "cached": False, "seconds": 0.5},
                  {"name": "label", "cached": True, "seconds": 0.01}],
    }))
    text = make_report(run).read_text()
    assert "image not shown" in text and "scan.ome.zarr" in text
    assert not (run / "mip_z.png").exists()
    assert "<td>label</td><td>True</td><td>0.01</td>" in text
    with pytest.raises(OmeZarrError):
        make_report(run, image=str(gone))  # an explicit argument must load


def test_absolute_image_url_in_run_json(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    scan = tmp_path / "elsewhere" / "scan.ome.zarr"
    scan.parent.mkdir()
    write_ngff_image(scan, planted_image(CENTRES), "zyx", 1)
    (run / "run.json").write_text(json.dumps({"outputs": {"image": str(scan)}}))
    make_report(run)
    for axis, name in enumerate("zyx"):
        _check_projection(imread(run / f"mip_{name}.png"), SHAPE, CENTRES, axis, (1, 1, 1))


def test_counts_next_to_truth(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    truth = region_counts()[["acronym", "count"]].assign(count=[20, 10, 10])
    text = make_report(run, truth=truth).read_text()
    assert "+10.0%" in text  # 11 detected vs 10 planted in CTX and HPF
    assert imread(run / "counts.png").ndim == 3


def test_counts_truth_by_id_and_missing_region(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    truth = region_counts()[["id", "count"]].iloc[[1]].assign(count=[22])
    text = make_report(run, truth=truth).read_text()
    assert "-50.0%" in text
    assert text.count("%</td>") == 1  # regions without a truth row get no error figure


def test_no_image_no_regions_still_reports_sizes(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES, with_regions=False)
    make_report(run)
    assert (run / "sizes.png").is_file()
    assert not (run / "mip_z.png").exists() and not (run / "counts.png").exists()


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InvalidPathError, match="does not exist"):
        make_report(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidPathError, match="objects.parquet"):
        make_report(empty)
    with pytest.raises(InvalidInputError, match="voxels"):
        make_report(empty, objects=planted_objects(CENTRES).drop(columns="voxels"))
    with pytest.raises(InvalidInputError, match="z, y, x"):
        make_report(empty, objects=planted_objects(CENTRES), image=np.zeros((4, 4)))
    with pytest.raises(InvalidInputError, match="image_factors"):
        make_report(empty, objects=planted_objects(CENTRES), image=np.zeros((4, 4, 4)),
                    image_factors=(1, 0, 1))
