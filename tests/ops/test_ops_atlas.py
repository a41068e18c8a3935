"""Region tables (CSV / JSON / BrainGlobe folder), region assignment and rolled-up region counts."""

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import InvalidInputError, InvalidPathError
from voxelflow.io.atlas_files import read_region_table
from voxelflow.io.brainglobe import read_brainglobe_folder
from voxelflow.ops import add_regions, assign_regions, count_by_region, region_volumes

# root 997 -> {8 -> {100, 200 -> {201}}, 300}
REGIONS = pd.DataFrame({
    "id": [997, 8, 100, 200, 201, 300],
    "acronym": ["root", "grey", "A", "B", "B1", "C"],
    "name": ["root", "Grey matter", "Area A", "Area B", "Area B layer 1", "Area C"],
    "parent": [-1, 997, 8, 8, 200, 997],
})


def _ancestors(rid, regions):
    parent = dict(zip(regions["id"], regions["parent"]))
    out = [rid]
    while parent[out[-1]] != -1:
        out.append(parent[out[-1]])
    return out


def test_read_region_table_csv_and_json_agree(tmp_path):
    csv = tmp_path / "regions.csv"
    REGIONS.assign(parent=REGIONS["parent"].astype(object).where(REGIONS["parent"] != -1, "")).to_csv(
        csv, index=False)
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(REGIONS.to_dict("records")))
    nested = {"id": 997, "acronym": "root", "name": "root", "children": [
        {"id": 8, "acronym": "grey", "name": "Grey matter", "children": [
            {"id": 100, "acronym": "A", "name": "Area A"},
            {"id": 200, "acronym": "B", "name": "Area B", "children": [
                {"id": 201, "acronym": "B1", "name": "Area B layer 1"}]}]},
        {"id": 300, "acronym": "C", "name": "Area C"}]}
    allen = tmp_path / "allen.json"
    allen.write_text(json.dumps({"msg": [nested]}))
    for path in (csv, flat, allen):
        got = read_region_table(str(path))
        pd.testing.assert_frame_equal(got, REGIONS, check_dtype=False)
        assert got["id"].dtype == np.int64 and got["parent"].dtype == np.int64


def _write_brainglobe(folder, annotation, resolution):
    folder.mkdir()
    structures = [{"id": int(r.id), "acronym": r.acronym, "name": r.name, "rgb_triplet": [255, 255, 255],
                   "structure_id_path": _ancestors(int(r.id), REGIONS)[::-1]} for r in REGIONS.itertuples()]
    (folder / "structures.json").write_text(json.dumps(structures))
    (folder / "metadata.json").write_text(json.dumps({"name": "toy_25um", "resolution": resolution,
                                                      "shape": list(annotation.shape), "orientation": "asr",
                                                      "symmetric": True}))
    tifffile.imwrite(folder / "annotation.tiff", annotation, photometric="minisblack")
    tifffile.imwrite(folder / "reference.tiff", (annotation % 251).astype(np.uint16), photometric="minisblack")


def test_brainglobe_folder(tmp_path):
    annotation = np.random.default_rng(0).choice([0, 100, 201, 300], size=(4, 5, 6)).astype(np.uint32)
    _write_brainglobe(tmp_path / "toy", annotation, [25, 25, 25])
    atlas = read_brainglobe_folder(tmp_path / "toy")
    np.testing.assert_array_equal(atlas.annotation, annotation)
    assert atlas.resolution == (25.0, 25.0, 25.0) and atlas.name == "toy_25um"
    pd.testing.assert_frame_equal(atlas.regions, REGIONS, check_dtype=False)
    pd.testing.assert_frame_equal(read_region_table(tmp_path / "toy"), REGIONS, check_dtype=False)


def test_bad_region_tables(tmp_path):
    with pytest.raises(InvalidPathError):
        read_region_table(tmp_path / "missing.csv")
    cyc = tmp_path / "cycle.json"
    cyc.write_text(json.dumps([{"id": 1, "acronym": "a", "name": "a", "parent": 2},
                               {"id": 2, "acronym": "b", "name": "b", "parent": 1}]))
    with pytest.raises(InvalidInputError, match="cycle"):
        read_region_table(cyc)
    orphan = tmp_path / "orphan.json"
    orphan.write_text(json.dumps([{"id": 1, "acronym": "a", "name": "a", "parent": 5}]))
    with pytest.raises(InvalidInputError, match="parent ids"):
        read_region_table(orphan)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_assign_regions_matches_brute_force(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    atlas = rng.choice(REGIONS["id"].to_numpy(), size=(5, 6, 4)).astype(np.int32)
    atlas_scale = (20.0, 25.0, 30.0)
    f = data.draw(st.sampled_from([(4, 5, 6), (2.5, 2.5, 2.5), (10.0, 5.0, 3.0)]))  # image voxel size
    image_shape = tuple(int(round(n * a / o)) for n, a, o in zip(atlas.shape, atlas_scale, f))
    n = data.draw(st.integers(0, 30))
    lc = pd.DataFrame({a: rng.uniform(-0.5, m - 0.5, n) for a, m in zip("zyx", image_shape)})
    chunks = data.draw(st.sampled_from([2, 3, (5, 6, 4)]))
    for atlas_arg in (atlas, da.from_array(atlas, chunks=chunks)):
        got = assign_regions(lc, atlas_arg, atlas_scale, f, image_shape)
        assert got.name == "region_id" and got.dtype == np.int64
        for i, row in enumerate(lc.itertuples()):
            # physical position of the centroid (um), then the atlas voxel whose box contains it
            phys = [(row.z + 0.5) * f[0], (row.y + 0.5) * f[1], (row.x + 0.5) * f[2]]
            cell = [int(p // s) for p, s in zip(phys, atlas_scale)]
            assert got.iloc[i] == atlas[tuple(cell)]


def test_assign_regions_rejects_mismatched_extent():
    atlas = np.ones((10, 10, 10), np.uint16)
    lc = pd.DataFrame({"z": [1.0], "y": [1.0], "x": [1.0]})
    with pytest.raises(InvalidInputError, match="extent"):
        assign_regions(lc, atlas, (25, 25, 25), (1, 1, 1), image_shape=(250, 250, 400))
    # within one atlas voxel is fine (e.g. a partial last block when the atlas was down-sampled)
    assert assign_regions(lc, atlas, (25, 25, 25), (1, 1, 1), image_shape=(250, 240, 260)).iloc[0] == 1
    with pytest.raises(InvalidInputError, match="atlas_scale"):
        assign_regions(lc, atlas, (25, 25), (1, 1, 1))


def test_count_by_region_rolls_up_against_independent_computation():
    rng = np.random.default_rng(5)
    atlas = rng.choice([0, 100, 200, 201, 300], size=(6, 7, 8)).astype(np.uint32)
    scale = (25.0, 20.0, 10.0)
    lc = pd.DataFrame({"id": np.arange(1, 41), "region_id": rng.choice([0, 100, 200, 201, 300, 8], 40)})
    got = count_by_region(lc, da.from_array(atlas, chunks=(4, 3, 5)), scale, REGIONS)
    assert list(got.columns) == ["id", "acronym", "name", "parent", "count", "count_self", "volume_mm3",
                                 "density_per_mm3"]
    voxel_mm3 = 25 * 20 * 10 * 1e-9
    for row in got.itertuples():
        # independent roll-up: an object counts for region r when r is on its ancestor path
        members = [rid for rid in lc["region_id"] if rid != 0 and row.id in _ancestors(rid, REGIONS)]
        voxels = sum(int((atlas == v).sum()) for v in np.unique(atlas)
                     if v != 0 and row.id in _ancestors(int(v), REGIONS))
        assert row.count == len(members)
        assert row.count_self == int((lc["region_id"] == row.id).sum())
        assert row.volume_mm3 == pytest.approx(voxels * voxel_mm3)
        if voxels:
            assert row.density_per_mm3 == pytest.approx(len(members) / (voxels * voxel_mm3))
        else:
            assert np.isnan(row.density_per_mm3)
    assert got.set_index("id").loc[997, "count"] == int((lc["region_id"] != 0).sum())


def test_region_volumes_numpy_and_dask_agree():
    atlas = np.random.default_rng(1).integers(0, 5, (9, 8, 7)).astype(np.uint16)
    a = region_volumes(atlas, (2, 3, 4))
    b = region_volumes(da.from_array(atlas, chunks=4), (2, 3, 4))
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    assert a.loc[3] == pytest.approx((atlas == 3).sum() * 24e-9)


def test_unknown_region_ids():
    atlas = np.full((2, 2, 2), 100, np.uint16)
    lc = pd.DataFrame({"region_id": [100, 555]})
    with pytest.raises(InvalidInputError, match="555"):
        count_by_region(lc, atlas, (1, 1, 1), REGIONS)
    got = count_by_region(lc, atlas, (1, 1, 1), REGIONS, unknown="ignore")
    assert got.set_index("id").loc[997, "count"] == 1


def test_add_regions_names_the_atlas_voxel_under_each_centroid():
    # atlas at 2x the object voxel size: object voxel (z, y, x) lies in atlas voxel (z // 2, y // 2, x // 2)
    atlas = np.zeros((3, 4, 5), dtype=np.int32)
    atlas[:, :2] = 100
    atlas[:, 2:, :3] = 201
    atlas[2, 3, 4] = 999  # an id the region table does not know
    lc = pd.DataFrame({"z": [0.0, 3.0, 5.0, 5.2, 1.0], "y": [1.0, 5.0, 7.0, 7.4, 2.0], "x": [0.0, 2.0, 9.0, 9.0, 30.0],
                       "voxels": [4, 5, 6, 7, 8]})
    got = add_regions(lc, atlas, (2.0, 2.0, 2.0), (1.0, 1.0, 1.0), REGIONS, image_shape=(6, 8, 10))
    idx = np.floor((lc[["z", "y", "x"]].to_numpy() + 0.5) / 2).astype(int)
    inside = (idx < np.array(atlas.shape)).all(axis=1)
    want = [int(atlas[tuple(i)]) if ok else 0 for i, ok in zip(idx, inside)]
    assert got["region_id"].tolist() == want == [100, 201, 999, 999, 0]
    assert got["region_acronym"].tolist() == ["A", "B1", "", "", ""]
    pd.testing.assert_frame_equal(got[list(lc.columns)], lc)
