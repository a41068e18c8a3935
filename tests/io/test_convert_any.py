"""``voxelflow convert`` from every input format to OME-Zarr: one pass, resumable, swapped in at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import dask
import numpy as np
import pytest
import skimage.measure
import tifffile
from io_volumes import lightsheet_volume
from test_open_imaris import write_ims
from test_open_planes import write_planes

from ome_zarr_helpers import validate_with_models
from voxelflow.cli import main
from voxelflow.errors import OmeZarrError
from voxelflow.io import convert as convert_module
from voxelflow.io import planes as planes_module
from voxelflow.io.convert import convert_to_ome_zarr
from voxelflow.io.ome_zarr import open_ome_zarr


def mean_pyramid(vol, levels, factors=(2, 2, 2)):
    """Each level: rounded mean of the level above (what the writer stores for 'mean')."""
    out = [vol]
    for _ in range(levels - 1):
        ref = skimage.measure.block_reduce(out[-1].astype(float), factors, np.mean)
        out.append(np.floor(ref + 0.5).astype(vol.dtype))
    return out


def chunk_files(image):
    return {p: p.stat().st_mtime_ns for p in (image / "0" / "c").rglob("*") if p.is_file()}


def fail_at_plane(monkeypatch, plane: str, message: str):
    """Make reading the plane file ending in ``plane`` raise OSError(``message``); returns the real reader."""
    real = planes_module.PlaneStack.read_plane

    def failing(self, name):
        if name.endswith(plane):
            raise OSError(message)
        return real(self, name)

    monkeypatch.setattr(planes_module.PlaneStack, "read_plane", failing)
    return real


def test_planes_to_ome_zarr_with_pyramid(tmp_path, capsys):
    vol = lightsheet_volume((16, 48, 40))
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "scan.ome.zarr"
    code = main(["convert", str(folder), str(out), "--scale-um", "5,1.8,1.8", "--levels", "3", "--chunks", "8,16,16"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    for k, ref in enumerate(mean_pyramid(vol, 3)):
        arr, meta = open_ome_zarr(str(out), level=k)
        np.testing.assert_array_equal(arr.compute(), ref)
    _, meta = open_ome_zarr(str(out))
    assert meta.scale == (5.0, 1.8, 1.8) and meta.units == ("micrometer",) * 3 and meta.written_by_voxelflow
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial folder left
    assert not any(p.name.startswith(".voxelflow-ledger") for p in out.iterdir())
    validate_with_models(str(out))


def test_imaris_channels_to_ome_zarr(tmp_path):
    vols = [[lightsheet_volume((8, 32, 32), seed=s) for s in (1, 2)]]
    ims = write_ims(tmp_path / "s.ims", vols)
    out = convert_to_ome_zarr(str(ims), tmp_path / "s.ome.zarr", levels=2)
    arr, meta = open_ome_zarr(out)
    assert meta.axes == ("c", "z", "y", "x") and meta.channel_names == ("ch0-488nm", "ch1-588nm")
    assert meta.scale == (1.0, 4.0, 0.75, 0.625)
    np.testing.assert_array_equal(arr.compute(), np.stack(vols[0]))
    one = convert_to_ome_zarr(str(ims), tmp_path / "one.ome.zarr", levels=2, channel="ch1-588nm")
    arr1, meta1 = open_ome_zarr(one)
    assert meta1.axes == ("z", "y", "x")
    np.testing.assert_array_equal(arr1.compute(), vols[0][1])


def test_sharded_output(tmp_path):
    vol = lightsheet_volume((16, 32, 32), seed=3)
    tifffile.imwrite(tmp_path / "s.tif", vol, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 4.0, "unit": "um", "axes": "ZYX"})
    out = tmp_path / "s.ome.zarr"
    assert main(["convert", str(tmp_path / "s.tif"), str(out), "--levels", "2", "--chunks", "4,8,8",
                 "--shard", "2", "--quiet"]) == 0
    arr, meta = open_ome_zarr(str(out))
    import zarr

    z = zarr.open_array(str(out / "0"), mode="r")
    assert z.chunks == (4, 8, 8) and z.shards == (8, 16, 16)
    assert meta.scale == (4.0, 0.5, 0.5)
    np.testing.assert_array_equal(arr.compute(), vol)
    assert len(list((out / "0" / "c").rglob("*"))) < 4 * 4 * 4  # one file per shard, not per chunk


def test_interrupted_conversion_resumes_without_rewriting(tmp_path, monkeypatch):
    vol = lightsheet_volume((32, 32, 32), seed=4)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "r.ome.zarr"
    real = fail_at_plane(monkeypatch, "Z0020.tif", "disk went away")
    read = []
    with dask.config.set(scheduler="sync"), pytest.raises(OSError, match="disk went away"):
        convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=3, chunks=(8, 16, 16))
    assert not out.exists()
    partial = tmp_path / ".r.ome.zarr.partial"
    kept = chunk_files(partial)
    done = {tuple(map(int, line.split()[1].split(","))) for line in (partial / ".voxelflow-ledger.done").read_text().splitlines()}
    slabs = {z for z, _, _ in done}  # z-slabs of 8 planes finished before the one holding plane 20
    assert slabs and 2 not in slabs and done == {(z, y, x) for z in slabs for y in (0, 1) for x in (0, 1)}
    assert len(kept) == len(done)

    monkeypatch.setattr(planes_module.PlaneStack, "read_plane",
                        lambda self, name: read.append(int(name[-8:-4])) or real(self, name))
    convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=3, chunks=(8, 16, 16))
    after = chunk_files(out)
    assert all(after[out / p.relative_to(partial)] == t for p, t in kept.items())  # not rewritten
    assert sorted(set(read)) == [z for z in range(32) if z // 8 not in slabs]  # finished slabs are not read again
    for k, ref in enumerate(mean_pyramid(vol, 3)):
        np.testing.assert_array_equal(open_ome_zarr(str(out), level=k)[0].compute(), ref)


def test_killed_process_resumes(tmp_path):
    vol = lightsheet_volume((24, 32, 32), seed=5)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "k.ome.zarr"
    script = textwrap.dedent(f"""
        import os, signal, dask
        from voxelflow.io import planes
        from voxelflow.io.convert import convert_to_ome_zarr
        real = planes.PlaneStack.read_plane
        def dying(self, name):
            if name.endswith("Z0017.tif"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, name)
        planes.PlaneStack.read_plane = dying
        with dask.config.set(scheduler="sync"):
            convert_to_ome_zarr({str(folder)!r}, {str(out)!r}, scale_um=1.0, levels=2, chunks=(8, 16, 16))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    partial = tmp_path / ".k.ome.zarr.partial"
    kept = chunk_files(partial)
    assert len(kept) == 8  # the two z-slabs before plane 17, 4 chunks each
    assert main(["convert", str(folder), str(out), "--scale-um", "1", "--levels", "2", "--chunks", "8,16,16",
                 "--quiet"]) == 0
    after = chunk_files(out)
    assert all(after[out / p.relative_to(partial)] == t for p, t in kept.items())
    np.testing.assert_array_equal(open_ome_zarr(str(out))[0].compute(), vol)


def test_changed_source_starts_afresh(tmp_path, monkeypatch):
    vol = lightsheet_volume((16, 16, 16), seed=6)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "c.ome.zarr"
    real = fail_at_plane(monkeypatch, "Z0012.tif", "stop")
    with pytest.raises(OSError):
        convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(4, 16, 16))
    monkeypatch.setattr(planes_module.PlaneStack, "read_plane", real)
    vol[:8] += 1000  # the planes of the finished chunks change
    write_planes(folder, vol)
    convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(4, 16, 16))
    np.testing.assert_array_equal(open_ome_zarr(str(out))[0].compute(), vol)


def test_overwrite_swaps_and_refuses_foreign_folders(tmp_path):
    vol = lightsheet_volume((8, 16, 16), seed=7)
    tifffile.imwrite(tmp_path / "a.tif", vol)
    out = tmp_path / "o.ome.zarr"
    convert_to_ome_zarr(str(tmp_path / "a.tif"), out, scale_um=1.0, levels=2)
    with pytest.raises(OmeZarrError, match="already exists"):
        convert_to_ome_zarr(str(tmp_path / "a.tif"), out, scale_um=1.0, levels=2)
    tifffile.imwrite(tmp_path / "b.tif", vol[::-1].copy())
    convert_to_ome_zarr(str(tmp_path / "b.tif"), out, scale_um=2.0, levels=2, overwrite=True)
    arr, meta = open_ome_zarr(str(out))
    np.testing.assert_array_equal(arr.compute(), vol[::-1])
    assert meta.scale == (2.0, 2.0, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif", "o.ome.zarr"]
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(OmeZarrError, match="not an OME-Zarr image"):
        convert_to_ome_zarr(str(tmp_path / "a.tif"), foreign, scale_um=1.0, levels=2, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "precious"


def test_convert_on_a_local_cluster(tmp_path):
    vol = lightsheet_volume((16, 32, 32), seed=8)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "d.ome.zarr"
    assert main(["convert", str(folder), str(out), "--scale-um", "2,1,1", "--levels", "2", "--chunks", "8,16,16",
                 "--workers", "1", "--quiet"]) == 0
    np.testing.assert_array_equal(open_ome_zarr(str(out))[0].compute(), vol)


def test_default_chunks_bound_the_input_slab():
    chunks = convert_module.convert_chunks((3000, 4096, 4096), np.uint16, ("z", "y", "x"), (2, 2, 2))
    assert chunks[0] * 4096 * 4096 * 2 <= convert_module.SLAB_BYTES and chunks[0] >= 2
    assert np.prod(chunks) * 2 <= convert_module.CHUNK_BYTES
    assert all(c % 2 == 0 for c in chunks)


def test_progress_bar_on_the_threaded_scheduler(tmp_path, monkeypatch, capsys):
    import time

    vol = lightsheet_volume((16, 16, 16), seed=9)
    folder = write_planes(tmp_path / "planes", vol)
    real = planes_module.PlaneStack.read_plane
    monkeypatch.setattr(planes_module.PlaneStack, "read_plane",
                        lambda self, name: time.sleep(0.12) or real(self, name))
    assert main(["convert", str(folder), str(tmp_path / "p.ome.zarr"), "--scale-um", "1", "--levels", "2",
                 "--chunks", "4,16,16"]) == 0
    assert "100% Completed" in capsys.readouterr().err


def test_bigstitcher_channel_named_by_number(tmp_path):
    from test_open_n5 import write_bigstitcher

    vols = [[lightsheet_volume((4, 16, 16), seed=c) for c in range(2)]]
    xml = write_bigstitcher(tmp_path / "bs", vols, channel_names=("1", "0"))  # names that look like indexes
    out = tmp_path / "c.ome.zarr"
    assert main(["convert", str(xml), str(out), "--channel", "0", "--levels", "2", "--quiet"]) == 0
    arr, meta = open_ome_zarr(str(out))
    assert meta.axes == ("z", "y", "x") and meta.scale == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(arr.compute(), vols[0][1])  # the channel named "0", not index 0


def test_tasks_finishing_after_a_failure_mark_no_chunk_done(tmp_path, monkeypatch):
    """Chunks whose tasks were still running when another chunk failed are neither stored nor recorded.

    Recording a chunk the failed write did not store would make the resumed write
    read it back as zeros.
    """
    import threading

    from voxelflow.io.ome_zarr import levels as levels_module

    vol = lightsheet_volume((16, 16, 16), seed=9)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "c.ome.zarr"
    real_task = levels_module._write_and_reduce
    all_running, release, ended = threading.Barrier(4, timeout=30), threading.Event(), []

    def task(*args, block_info=None, **kwargs):
        all_running.wait()  # the four slab tasks run at once
        if block_info[0]["chunk-location"][0] == 0:
            raise OSError("first slab failed")
        release.wait(30)  # the others go on after the failure has been raised
        try:
            return real_task(*args, block_info=block_info, **kwargs)
        finally:
            ended.append(1)

    monkeypatch.setattr(levels_module, "_write_and_reduce", task)
    with dask.config.set(scheduler="threads", num_workers=4), pytest.raises(OSError, match="first slab"):
        convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(4, 16, 16))
    release.set()
    pause = threading.Event()
    for _ in range(3000):
        if len(ended) == 3:
            break
        pause.wait(0.01)
    assert len(ended) == 3
    monkeypatch.setattr(levels_module, "_write_and_reduce", real_task)
    convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(4, 16, 16))
    np.testing.assert_array_equal(open_ome_zarr(str(out))[0].compute(), vol)


def test_a_finished_chunk_lost_before_the_resume_is_an_error(tmp_path, monkeypatch):
    from voxelflow.errors import MissingChunkError

    vol = lightsheet_volume((32, 32, 32), seed=8)
    folder = write_planes(tmp_path / "planes", vol)
    out = tmp_path / "r.ome.zarr"
    real = fail_at_plane(monkeypatch, "Z0020.tif", "disk went away")
    with dask.config.set(scheduler="sync"), pytest.raises(OSError, match="disk went away"):
        convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(8, 16, 16))
    monkeypatch.setattr(planes_module.PlaneStack, "read_plane", real)
    partial = tmp_path / ".r.ome.zarr.partial"
    first = (partial / ".voxelflow-ledger.done").read_text().splitlines()[0].split()[1].replace(",", "/")
    (partial / "0" / "c" / first).unlink()  # a finished chunk, recorded in the ledger
    with pytest.raises(MissingChunkError, match=f"0/c/{first}"):
        convert_to_ome_zarr(str(folder), out, scale_um=1.0, levels=2, chunks=(8, 16, 16))
    assert not out.exists()
