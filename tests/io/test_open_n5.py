"""N5 written by tensorstore (an independent N5 implementation) and BigStitcher-style XML."""

from __future__ import annotations

import json

import fsspec.implementations.local as fs_local
import numpy as np
import pytest
import tensorstore as ts
from hypothesis import given, settings
from hypothesis import strategies as st
from io_volumes import lightsheet_volume

from voxelflow.errors import ImageFormatError, InvalidInputError
from voxelflow.io import n5 as n5_module
from voxelflow.io.open import open_image


def ts_write(path, vol, block=(4, 16, 16), compression=None, extra=None):
    """Write ``vol`` (Z, Y, X) as an N5 dataset with tensorstore; N5 lists dimensions x first."""
    store = ts.open({
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {"dimensions": list(vol.shape[::-1]), "blockSize": list(block[::-1]),
                     "dataType": str(vol.dtype), "compression": compression or {"type": "gzip"}},
        "create": True,
    }).result()
    store.write(vol.T).result()
    if extra:
        attrs = json.loads((path / "attributes.json").read_text())
        (path / "attributes.json").write_text(json.dumps(attrs | extra))
    return path


COMPRESSIONS = [{"type": "raw"}, {"type": "gzip"}, {"type": "gzip", "useZlib": True}, {"type": "bzip2"},
                {"type": "xz"}, {"type": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
                {"type": "zstd", "level": 3}]


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=lambda c: c["type"] + ("-zlib" if "useZlib" in c else ""))
def test_dataset_round_trip_every_compression(tmp_path, compression):
    vol = lightsheet_volume((10, 37, 45), seed=21)
    path = ts_write(tmp_path / "vol.n5", vol, compression=compression,
                    extra={"pixelResolution": {"dimensions": [0.8, 0.8, 3.0], "unit": "um"}})
    arr, meta = open_image(str(path))
    assert meta.format == "n5" and meta.axes == ("z", "y", "x") and arr.dtype == vol.dtype
    assert meta.scale == (3.0, 0.8, 0.8) and meta.units == ("micrometer",) * 3
    np.testing.assert_array_equal(arr.compute(), vol)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.float32, np.float64])
def test_dtypes_and_border_blocks(tmp_path, dtype):
    vol = lightsheet_volume((5, 19, 23), dtype=dtype, seed=3)
    path = ts_write(tmp_path / "d.n5", vol, block=(2, 8, 8), extra={"resolution": [1, 1, 2]})
    arr, meta = open_image(str(path))
    assert arr.dtype == np.dtype(dtype) and meta.scale == (2.0, 1.0, 1.0)
    np.testing.assert_array_equal(arr.compute(), vol)


def test_multiscale_group_and_missing_resolution(tmp_path):
    vol = lightsheet_volume((8, 32, 32), seed=22)
    group = tmp_path / "ms.n5"
    group.mkdir()
    (group / "attributes.json").write_text(json.dumps({"n5": "2.5.1"}))
    for k in range(3):
        ts_write(group / f"s{k}", vol[:, :: 2**k, :: 2**k], extra={"downsamplingFactors": [2**k, 2**k, 1]})
    with pytest.raises(InvalidInputError, match=r"no voxel size.*input\.scale_um"):
        open_image(str(group))
    arr, meta = open_image(str(group), level=2, scale_um=(2.0, 0.5, 0.5))
    assert meta.levels == ("s0", "s1", "s2") and meta.version == "2.5.1"
    assert meta.shapes == ((8, 32, 32), (8, 16, 16), (8, 8, 8))
    assert meta.scale == (2.0, 2.0, 2.0) and meta.scales[1] == (2.0, 1.0, 1.0)
    np.testing.assert_array_equal(arr.compute(), vol[:, ::4, ::4])


def test_absent_blocks_are_zeros_and_a_chunk_opens_only_its_blocks(tmp_path, monkeypatch):
    vol = np.zeros((8, 32, 32), np.uint16)
    vol[4:, 16:, :] = lightsheet_volume((4, 16, 32), seed=5)
    path = tmp_path / "sparse.n5"
    store = ts.open({"driver": "n5", "kvstore": {"driver": "file", "path": str(path)},
                     "metadata": {"dimensions": [32, 32, 8], "blockSize": [16, 16, 4], "dataType": "uint16",
                                  "compression": {"type": "gzip"}}, "create": True}).result()
    store[:, 16:, 4:].write(vol[4:, 16:, :].T).result()  # blocks never written stay absent
    monkeypatch.setattr(n5_module, "CHUNK_BYTES", 4 * 16 * 16 * 2)
    arr, _ = open_image(str(path), scale_um=1.0)
    np.testing.assert_array_equal(arr.compute(), vol)
    opened = []
    real = fs_local.LocalFileSystem._open

    def spy(self, path, *a, **k):
        opened.append(path)
        return real(self, path, *a, **k)

    monkeypatch.setattr(fs_local.LocalFileSystem, "_open", spy)
    np.testing.assert_array_equal(arr.blocks[1, 1, 0].compute(scheduler="sync"), vol[4:8, 16:32, 0:16])
    assert [p.split("sparse.n5/")[1] for p in opened] == ["0/1/1"]  # x/y/z block index


def test_corrupt_and_truncated_blocks_are_named(tmp_path):
    vol = lightsheet_volume((8, 16, 16), seed=6)
    path = ts_write(tmp_path / "c.n5", vol, block=(4, 16, 16), extra={"resolution": [1, 1, 1]})
    block = path / "0" / "0" / "1"
    block.write_bytes(block.read_bytes()[:40])
    arr, _ = open_image(str(path))
    with pytest.raises(ImageFormatError, match=r"c.n5/0/0/1: .*(truncated|corrupt)"):
        arr.compute()
    raw = ts_write(tmp_path / "r.n5", vol, block=(4, 16, 16), compression={"type": "raw"},
                   extra={"resolution": [1, 1, 1]})
    block = raw / "0" / "0" / "0"
    block.write_bytes(block.read_bytes()[:-10])
    arr, _ = open_image(str(raw))
    with pytest.raises(ImageFormatError, match=r"r.n5/0/0/0: N5 block .* holds \d+ bytes"):
        arr.compute()


@settings(max_examples=8, deadline=None)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 21), st.integers(1, 21)),
       block=st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(1, 8)),
       dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32]))
def test_any_block_shape_reads_the_same_voxels(tmp_path_factory, shape, block, dtype):
    vol = lightsheet_volume(shape, dtype=dtype, seed=sum(shape))
    path = ts_write(tmp_path_factory.mktemp("n5") / "h.n5", vol, block=block, extra={"resolution": [1, 1, 1]})
    arr, _ = open_image(str(path))
    assert arr.dtype == vol.dtype
    np.testing.assert_array_equal(arr.compute(), vol)
    np.testing.assert_array_equal(arr[:, 1:, :-1].compute(), vol[:, 1:, :-1])


# --- BigStitcher XML ----------------------------------------------------------------

VOXEL_XYZ = (0.5, 0.5, 2.0)


def _setup_xml(sid, size_xyz, channel, tile=0):
    return f"""
      <ViewSetup><id>{sid}</id><name>setup {sid}</name><size>{' '.join(map(str, size_xyz))}</size>
        <voxelSize><unit>µm</unit><size>{' '.join(map(str, VOXEL_XYZ))}</size></voxelSize>
        <attributes><illumination>0</illumination><channel>{channel}</channel><tile>{tile}</tile>
          <angle>0</angle></attributes></ViewSetup>"""


def write_bigstitcher(folder, volumes, channel_names=("488", "561"), tiles_per_channel=1):
    """``volumes[t][c]`` as ``dataset.n5`` (tensorstore) plus a BigStitcher ``dataset.xml``."""
    n5 = folder / "dataset.n5"
    n5.mkdir(parents=True)
    (n5 / "attributes.json").write_text(json.dumps({"n5": "2.5.1"}))
    size_xyz = volumes[0][0].shape[::-1]
    setups, regs, sid = [], [], 0
    for c in range(len(volumes[0])):
        for tile in range(tiles_per_channel):
            setups.append(_setup_xml(sid, size_xyz, c, tile))
            sdir = n5 / f"setup{sid}"
            sdir.mkdir()
            (sdir / "attributes.json").write_text(json.dumps(
                {"downsamplingFactors": [[1, 1, 1], [2, 2, 1]], "dataType": "uint16"}))
            for t, per_c in enumerate(volumes):
                ts_write(sdir / f"timepoint{t}" / "s0", per_c[c])
                ts_write(sdir / f"timepoint{t}" / "s1", per_c[c][:, ::2, ::2])
                regs.append(f"""
      <ViewRegistration timepoint="{t}" setup="{sid}">
        <ViewTransform type="affine"><Name>Translation to Regular Grid</Name>
          <affine>1.0 0.0 0.0 100.0 0.0 1.0 0.0 -50.0 0.0 0.0 1.0 8.0</affine></ViewTransform>
        <ViewTransform type="affine"><Name>calibration</Name>
          <affine>1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 4.0 0.0</affine></ViewTransform>
      </ViewRegistration>""")
            sid += 1
    channels = "".join(f"<Channel><id>{c}</id><name>{n}</name></Channel>" for c, n in enumerate(channel_names))
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<SpimData version="0.2">
  <BasePath type="relative">.</BasePath>
  <SequenceDescription>
    <ImageLoader format="bdv.n5" version="1.0"><n5 type="relative">dataset.n5</n5></ImageLoader>
    <ViewSetups>{''.join(setups)}
      <Attributes name="channel">{channels}</Attributes>
    </ViewSetups>
    <Timepoints type="range"><first>0</first><last>{len(volumes) - 1}</last></Timepoints>
  </SequenceDescription>
  <ViewRegistrations>{''.join(regs)}
  </ViewRegistrations>
</SpimData>"""
    (folder / "dataset.xml").write_text(xml)
    return folder / "dataset.xml"


def test_bigstitcher_channels_timepoints_scale_and_origin(tmp_path):
    vols = [[lightsheet_volume((6, 24, 20), seed=10 * t + c) for c in range(2)] for t in range(2)]
    xml = write_bigstitcher(tmp_path, vols)
    arr, meta = open_image(str(xml))
    assert meta.axes == ("t", "c", "z", "y", "x") and meta.channel_names == ("488", "561")
    assert arr.shape == (2, 2, 6, 24, 20) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr.compute(), np.array(vols))
    assert meta.scale == (1.0, 1.0, 2.0, 0.5, 0.5)
    # registration: world = calibration then translation (100, -50, 8) in x-voxel units of 0.5 um
    assert meta.translation == (0.0, 0.0, 4.0, -25.0, 50.0)
    assert meta.levels == ("s0", "s1") and meta.shapes[1] == (2, 2, 6, 12, 10)
    low, lmeta = open_image(str(xml), level=1, channel="561")
    assert lmeta.axes == ("t", "z", "y", "x") and lmeta.scale == (1.0, 2.0, 1.0, 1.0)
    np.testing.assert_array_equal(low.compute(), np.array([v[1][:, ::2, ::2] for v in vols]))


def test_bigstitcher_single_view(tmp_path):
    vols = [[lightsheet_volume((5, 16, 16), seed=1)]]
    xml = write_bigstitcher(tmp_path, vols, channel_names=("647",))
    arr, meta = open_image(str(xml))
    assert meta.axes == ("z", "y", "x") and meta.scale == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(arr.compute(), vols[0][0])


def test_bigstitcher_unfused_tiles_are_refused(tmp_path):
    vols = [[lightsheet_volume((4, 8, 8), seed=2)]]
    xml = write_bigstitcher(tmp_path, vols, channel_names=("488",), tiles_per_channel=2)
    with pytest.raises(ImageFormatError, match=r"channel 0 has 2 view setups .*tile.*fuse"):
        open_image(str(xml))


def test_bigstitcher_size_mismatch_and_missing_dataset(tmp_path):
    vols = [[lightsheet_volume((4, 8, 8), seed=2)]]
    xml = write_bigstitcher(tmp_path, vols, channel_names=("488",))
    text = xml.read_text()
    xml.write_text(text.replace("<size>8 8 4</size>", "<size>8 8 5</size>"))
    with pytest.raises(ImageFormatError, match=r"shape \(8, 8, 4\) \(x, y, z\) but setup 0 declares size \(8, 8, 5\)"):
        open_image(str(xml))
    xml.write_text(text.replace("<last>0</last>", "<last>1</last>"))
    with pytest.raises(ImageFormatError, match="timepoint1/s0 of setup 0 time point 1 is missing"):
        open_image(str(xml))
