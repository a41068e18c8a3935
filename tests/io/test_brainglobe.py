"""BrainGlobe atlas folders and plain atlas files, read without any download."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from voxelflow.errors import AtlasError, InvalidPathError, OrientationError
from voxelflow.io.brainglobe import (
    LEFT,
    RIGHT,
    read_atlas_files,
    read_brainglobe_folder,
    symmetric_hemispheres,
    write_brainglobe_folder,
)
from voxelflow.io.ome_zarr import write_ome_zarr
from voxelflow.synth_atlas import make_synthetic_atlas

# structures.json as brainglobe-atlasapi writes it (Allen ids, nested paths, colours)
STRUCTURES = [
    {"acronym": "root", "id": 997, "name": "root", "structure_id_path": [997], "rgb_triplet": [255, 255, 255]},
    {"acronym": "grey", "id": 8, "name": "Basic cell groups and regions", "structure_id_path": [997, 8],
     "rgb_triplet": [191, 218, 227]},
    {"acronym": "CH", "id": 567, "name": "Cerebrum", "structure_id_path": [997, 8, 567],
     "rgb_triplet": [176, 240, 255]},
    {"acronym": "CB", "id": 512, "name": "Cerebellum", "structure_id_path": [997, 8, 512],
     "rgb_triplet": [240, 240, 128]},
]


def hand_made_folder(path, *, image_shape=(6, 5, 8), symmetric=False, hemispheres=True, orientation="asr", **meta_over):
    """A BrainGlobe folder written with tifffile and json only (not with voxelflow)."""
    shape = image_shape
    path.mkdir()
    rng = np.random.default_rng(0)
    ann = rng.choice(np.array([0, 567, 512, 8], dtype=np.uint32), size=shape)
    ref = rng.integers(0, 4000, size=shape).astype(np.uint16)
    hemi = np.where(np.arange(shape[2]) >= shape[2] // 2, LEFT, RIGHT).astype(np.uint8)
    hemi = np.broadcast_to(hemi, shape).copy()
    meta = {"name": "hand_mouse", "citation": "", "atlas_link": "", "species": "Mus musculus", "symmetric": symmetric,
            "resolution": [25.0, 20.0, 20.0], "orientation": orientation, "version": "1.2", "shape": list(shape),
            "trasform_to_bg": np.eye(4).tolist(), "additional_references": []}
    meta.update(meta_over)
    (path / "metadata.json").write_text(json.dumps(meta))
    (path / "structures.json").write_text(json.dumps(STRUCTURES))
    tifffile.imwrite(path / "reference.tiff", ref, photometric="minisblack")
    tifffile.imwrite(path / "annotation.tiff", ann, photometric="minisblack")
    if hemispheres:
        tifffile.imwrite(path / "hemispheres.tiff", hemi, photometric="minisblack")
    return ref, ann, hemi


def test_reads_a_hand_made_folder(tmp_path):
    ref, ann, hemi = hand_made_folder(tmp_path / "a")
    atlas = read_brainglobe_folder(tmp_path / "a")
    np.testing.assert_array_equal(atlas.reference, ref)
    np.testing.assert_array_equal(atlas.annotation, ann)
    np.testing.assert_array_equal(atlas.hemispheres, hemi)
    assert atlas.resolution == (25.0, 20.0, 20.0) and atlas.orientation == "asr" and atlas.name == "hand_mouse"
    assert atlas.shape == (6, 5, 8)
    parents = dict(zip(atlas.regions["id"], atlas.regions["parent"]))
    assert parents == {997: -1, 8: 997, 567: 8, 512: 8}


def test_symmetric_atlas_without_hemispheres_is_split_like_brainglobe(tmp_path):
    hand_made_folder(tmp_path / "a", symmetric=True, hemispheres=False, image_shape=(3, 4, 9))
    atlas = read_brainglobe_folder(tmp_path / "a")
    # brainglobe-atlasapi: along the left-right axis of an "asr" atlas, indices >= n // 2 + 1 are left (1)
    expect = np.array([2, 2, 2, 2, 2, 1, 1, 1, 1], dtype=np.uint8)
    np.testing.assert_array_equal(atlas.hemispheres[1, 2], expect)
    # an axis that starts on the left is the mirror image
    mirrored = symmetric_hemispheres((3, 4, 9), "asl")
    np.testing.assert_array_equal(mirrored[0, 0], expect[::-1])
    # the left-right axis may be any axis
    lr_first = symmetric_hemispheres((9, 3, 4), "ras")
    np.testing.assert_array_equal(lr_first[:, 0, 0], expect)


def test_synthetic_atlas_round_trips_through_the_folder(tmp_path):
    atlas = make_synthetic_atlas(resolution=800.0)
    write_brainglobe_folder(atlas, tmp_path / "syn")
    back = read_brainglobe_folder(tmp_path / "syn")
    for name in ("reference", "annotation", "hemispheres"):
        np.testing.assert_array_equal(getattr(back, name), getattr(atlas, name))
        # files are plain TIFFs any reader opens
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "syn" / f"{name}.tiff"), getattr(atlas, name))
    assert back.resolution == atlas.resolution and back.orientation == "asr"
    pd.testing.assert_frame_equal(back.regions, atlas.regions)
    paths = {s["id"]: s["structure_id_path"] for s in json.loads((tmp_path / "syn" / "structures.json").read_text())}
    assert paths[549] == [997, 8, 343, 1129, 549]


@pytest.mark.parametrize("missing", ["metadata.json", "structures.json", "reference.tiff", "annotation.tiff"])
def test_missing_files_are_named(tmp_path, missing):
    hand_made_folder(tmp_path / "a")
    (tmp_path / "a" / missing).unlink()
    with pytest.raises(InvalidPathError, match=missing.replace(".", r"\.")):
        read_brainglobe_folder(tmp_path / "a")


def test_missing_folder_and_missing_hemispheres(tmp_path):
    with pytest.raises(InvalidPathError, match="does not exist"):
        read_brainglobe_folder(tmp_path / "nowhere")
    hand_made_folder(tmp_path / "a", hemispheres=False, symmetric=False)
    with pytest.raises(InvalidPathError, match="hemispheres.tiff"):
        read_brainglobe_folder(tmp_path / "a")


@pytest.mark.parametrize("over, match", [
    ({"resolution": [25.0, 25.0]}, "resolution"),
    ({"resolution": [25.0, -1.0, 25.0]}, "resolution"),
    ({"shape": [6, 5, 9]}, "metadata.json says"),
    ({"shape": "6x5x8"}, "shape"),
    ({"orientation": "xyz"}, "orientation"),
    ({"orientation": "aap"}, "orientation"),
])
def test_inconsistent_metadata(tmp_path, over, match):
    hand_made_folder(tmp_path / "a", **over)
    with pytest.raises(AtlasError, match=match):
        read_brainglobe_folder(tmp_path / "a")


def test_metadata_without_orientation(tmp_path):
    hand_made_folder(tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    del meta["orientation"]
    (tmp_path / "a" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(AtlasError, match="'orientation' is missing"):
        read_brainglobe_folder(tmp_path / "a")


def test_bad_images(tmp_path):
    hand_made_folder(tmp_path / "a")
    tifffile.imwrite(tmp_path / "a" / "annotation.tiff", np.zeros((6, 5, 8), np.float32))
    with pytest.raises(AtlasError, match="integers"):
        read_brainglobe_folder(tmp_path / "a")
    hand_made_folder(tmp_path / "b")
    tifffile.imwrite(tmp_path / "b" / "hemispheres.tiff", np.full((6, 5, 8), 3, np.uint8))
    with pytest.raises(AtlasError, match=r"found \[3\]"):
        read_brainglobe_folder(tmp_path / "b")
    hand_made_folder(tmp_path / "c")
    tifffile.imwrite(tmp_path / "c" / "annotation.tiff", np.full((6, 5, 8), 1234, np.uint32))
    with pytest.raises(AtlasError, match=r"\[1234\] are not in the region table"):
        read_brainglobe_folder(tmp_path / "c")
    hand_made_folder(tmp_path / "d")
    (tmp_path / "d" / "reference.tiff").write_bytes(b"not a tiff")
    with pytest.raises(AtlasError, match="readable TIFF"):
        read_brainglobe_folder(tmp_path / "d")


def test_plain_tiff_files(tmp_path):
    ref, ann, _ = hand_made_folder(tmp_path / "a")
    regions = tmp_path / "regions.csv"
    pd.DataFrame({"id": [997, 8, 567, 512], "acronym": ["root", "grey", "CH", "CB"], "name": list("abcd"),
                  "parent_structure_id": [None, 997, 8, 8]}).to_csv(regions, index=False)
    atlas = read_atlas_files(tmp_path / "a" / "reference.tiff", tmp_path / "a" / "annotation.tiff", regions,
                             orientation="ASR", resolution=(25, 20, 20))
    np.testing.assert_array_equal(atlas.annotation, ann)
    assert atlas.resolution == (25.0, 20.0, 20.0) and atlas.orientation == "asr"
    np.testing.assert_array_equal(atlas.hemispheres, symmetric_hemispheres(ann.shape, "asr"))
    with pytest.raises(AtlasError, match="pass resolution"):
        read_atlas_files(tmp_path / "a" / "reference.tiff", tmp_path / "a" / "annotation.tiff", regions,
                         orientation="asr")
    with pytest.raises(OrientationError):
        read_atlas_files(tmp_path / "a" / "reference.tiff", tmp_path / "a" / "annotation.tiff", regions,
                         orientation="abc", resolution=(25, 20, 20))
    with pytest.raises(InvalidPathError, match="does not exist"):
        read_atlas_files(tmp_path / "nope.tiff", tmp_path / "a" / "annotation.tiff", regions, orientation="asr",
                         resolution=(25, 20, 20))


def test_ome_zarr_files_take_the_resolution_from_their_metadata(tmp_path):
    ref, ann, hemi = hand_made_folder(tmp_path / "a")
    write_ome_zarr(ref, tmp_path / "ref.ome.zarr", axes="zyx", scale=(25.0, 20.0, 20.0))
    write_ome_zarr(ann, tmp_path / "ann.ome.zarr", axes="zyx", scale=(25.0, 20.0, 20.0))
    write_ome_zarr(hemi, tmp_path / "hemi.ome.zarr", axes="zyx", scale=(25.0, 20.0, 20.0))
    atlas = read_atlas_files(tmp_path / "ref.ome.zarr", tmp_path / "ann.ome.zarr", tmp_path / "a", orientation="asr",
                             hemispheres=tmp_path / "hemi.ome.zarr")
    assert atlas.resolution == (25.0, 20.0, 20.0)
    np.testing.assert_array_equal(atlas.reference, ref)
    np.testing.assert_array_equal(atlas.hemispheres, hemi)
    with pytest.raises(AtlasError, match="differs from the resolution"):
        read_atlas_files(tmp_path / "ref.ome.zarr", tmp_path / "ann.ome.zarr", tmp_path / "a", orientation="asr",
                         resolution=(50, 50, 50))
