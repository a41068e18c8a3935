"""Bad input: configuration values, CLI arguments and API arguments a user can get wrong.

Every case asserts the ``voxelflow.errors`` class (or the CLI's exit code 2 with a
``voxelflow: error:`` line naming the key) and that the inputs and existing outputs are
byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import os
import zipfile

import dask.array as da
import numpy as np
import pytest
from hardening_helpers import digest, tiny_volume, unchanged, write_tiny_image

import voxelflow
from voxelflow import errors
from voxelflow.cli import main
from voxelflow.pipelines.config import load_config

REQUIRED = ['input.url="scan.ome.zarr"', 'output.folder="run"']


def cli(args, capsys) -> tuple[int, str]:
    """Exit code and stderr of the command line (argparse errors count as exit code 2)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# --- configuration values ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["pipeline.edge_um", "pipeline.threshold", "pipeline.threshold_factor"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-nan"])
def test_non_finite_config_number_names_the_key(key, value):
    with pytest.raises(errors.ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [*REQUIRED, f"{key}={value}"])


@pytest.mark.parametrize("key", ["pipeline.coarse_factors", "pipeline.density_factors", "output.chunks"])
def test_non_finite_in_a_triple_names_the_key(key):
    with pytest.raises(errors.ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [*REQUIRED, f"{key}=[2, nan, 2]"])


@pytest.mark.parametrize("value", ['"lots"', '"-4GB"', '"0"', "5", '"4 parsecs"', '""'])
def test_bad_memory_limit_names_the_key(value):
    with pytest.raises(errors.ConfigError, match=r"compute\.memory_limit"):
        load_config(None, [*REQUIRED, f"compute.memory_limit={value}"])


@pytest.mark.parametrize("value", ["4GB", "512 MiB", "2e9", "auto"])
def test_good_memory_limits_are_accepted(value):
    assert load_config(None, [*REQUIRED, f'compute.memory_limit="{value}"']).compute.memory_limit == value


@pytest.mark.parametrize("address", ["not an address", "tcp://", "tcp://host:port", "tcp://host:99999",
                                     "ftp://host:8786", "tcp://:8786", "tcp://host:8786/path"])
def test_bad_scheduler_address_names_the_key(address):
    with pytest.raises(errors.ConfigError, match=r"compute\.scheduler"):
        load_config(None, [*REQUIRED, f'compute.scheduler="{address}"'])


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tls://scheduler.lab:8786", "tcp://[::1]:8786",
                                     "inproc://10.0.0.1/1234/1", "127.0.0.1:8786"])
def test_good_scheduler_addresses_are_accepted(address):
    assert load_config(None, [*REQUIRED, f'compute.scheduler="{address}"']).compute.scheduler == address


@pytest.mark.parametrize("value", ["0", "-1", "nan", '"3"', "true"])
def test_bad_connect_timeout_names_the_key(value):
    with pytest.raises(errors.ConfigError, match=r"compute\.connect_timeout"):
        load_config(None, [*REQUIRED, f"compute.connect_timeout={value}"])


def test_config_path_that_is_a_folder(tmp_path):
    with unchanged(tmp_path), pytest.raises(errors.ConfigError, match=str(tmp_path)):
        load_config(tmp_path)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x00", b"[pipeline]\nthreshold = \n"])
def test_config_file_that_is_not_toml(tmp_path, content):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with unchanged(path), pytest.raises(errors.ConfigError, match="bad.toml"):
        load_config(path)


@pytest.mark.parametrize("flag, value, key", [
    ("--set", "pipeline.edge_um=nan", "pipeline.edge_um"),
    ("--set", "pipeline.threshold=inf", "pipeline.threshold"),
    ("--scheduler", "tcp://host:port", "compute.scheduler"),
    ("--scheduler", "definitely not", "compute.scheduler"),
    ("--workers", "-1", "compute.workers"),
    ("--set", 'compute.memory_limit="lots"', "compute.memory_limit"),
])
def test_cli_run_bad_values_name_the_key(tmp_path, capsys, flag, value, key):
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{tmp_path / "scan.ome.zarr"}"\n[output]\nfolder = "{tmp_path / "run"}"\n')
    with unchanged(tmp_path):
        code, err = cli(["run", config, "--quiet", flag, value], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and key in err


def test_cli_run_config_that_is_a_folder(tmp_path, capsys):
    with unchanged(tmp_path):
        code, err = cli(["run", tmp_path, "--quiet"], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and str(tmp_path) in err


def test_output_folder_that_is_a_file(tmp_path, capsys):
    url, _ = write_tiny_image(tmp_path)
    out = tmp_path / "run"
    out.write_text("my notes")
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n[output]\nfolder = "{out}"\n')
    with unchanged(tmp_path):
        code, err = cli(["run", config, "--quiet", "--no-report"], capsys)
    assert code == 2 and "output.folder" in err and str(out) in err


def test_output_cache_inside_a_file(tmp_path, capsys):
    url, _ = write_tiny_image(tmp_path)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n[output]\nfolder = "{tmp_path / "run"}"\n'
                      f'cache = "{blocker / "cache"}"\n')
    with unchanged(blocker, url):
        code, err = cli(["run", config, "--quiet", "--no-report"], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and str(blocker) in err


def test_input_that_is_a_plain_file(tmp_path, capsys):
    scan = tmp_path / "scan.ome.zarr"
    scan.write_bytes(b"\x00" * 100)
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{scan}"\n[output]\nfolder = "{tmp_path / "run"}"\n')
    with unchanged(scan):
        code, err = cli(["run", config, "--quiet", "--no-report"], capsys)
    assert code == 2 and str(scan) in err


# --- voxels a pipeline cannot use ---------------------------------------------------------------


def _blob_scan(tmp_path, dtype, special=None):
    """A small 3-D scan with bright cubes on a textured background."""
    rng = np.random.default_rng(2)
    vol = rng.normal(20, 2, (16, 48, 48))
    vol[3:13, 6:42, 6:42] += 40
    for z, y, x in [(5, 12, 12), (8, 30, 20), (10, 20, 34)]:
        vol[z:z + 2, y:y + 3, x:x + 3] += 200
    if np.dtype(dtype).kind == "i":
        vol = np.clip(vol - 140, -128, 127)  # background and tissue below zero, plaques above
    vol = vol.astype(dtype)
    if special is not None:
        vol[7, 24, 24] = special
    url = str(tmp_path / "scan.ome.zarr")
    voxelflow.write_ome_zarr(vol, url, chunks=(8, 24, 24), scale=(4.0, 2.0, 2.0))
    return url


@pytest.mark.parametrize("coarse", ["coarse_factors = [2, 4, 4]", "coarse_um = 16.0"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_raise_naming_the_input(tmp_path, capsys, special, coarse):
    # max pooling (coarse_factors) and block means (coarse_um) both carry every non-finite voxel
    url = _blob_scan(tmp_path, np.float32, special)
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n[output]\nfolder = "{tmp_path / "run"}"\n'
                      f"[pipeline]\nbias = false\nedge_um = 0.0\n{coarse}\n")
    with unchanged(url):
        code, err = cli(["run", config, "--quiet", "--no-report"], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and url in err
    assert "NaN" in err or "inf" in err


def test_signed_input_with_negative_values_runs(tmp_path, capsys):
    url = _blob_scan(tmp_path, np.int8)
    config = tmp_path / "plaque.toml"
    config.write_text(f'[input]\nurl = "{url}"\n'
                      "[pipeline]\nbias = false\nedge_um = 0.0\nthreshold = 50.0\nmin_voxels = 4\n"
                      "coarse_factors = [2, 4, 4]\ndensity_factors = [4, 8, 8]\n"
                      f'[output]\nfolder = "{tmp_path / "run"}"\nlevels = 1\nchunks = [8, 24, 24]\nreport = false\n')
    with unchanged(url):
        code, err = cli(["run", config, "--quiet", "--no-report"], capsys)
    assert code == 0, err
    import pandas as pd

    objects = pd.read_csv(tmp_path / "run" / "objects.csv")
    assert len(objects) == 3 and set(objects.voxels) == {18}


# --- write_ome_zarr / open_ome_zarr arguments ---------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": (np.nan, 1, 1)}, "scale"),
    ({"scale": (1, -1, 1)}, "scale"),
    ({"translation": (np.nan, 0, 0)}, "translation"),
    ({"translation": (0, np.inf, 0)}, "translation"),
    ({"translation": ("a", 0, 0)}, "translation"),
    ({"chunks": (0, 4, 4)}, "chunks"),
    ({"levels": 0}, "levels"),
    ({"levels": 2, "factors": 0}, "factor"),
    ({"axes": ("z", "z", "x")}, "axes"),
    ({"units": (1, 2, 3)}, "units"),
    ({"version": "0.6"}, "version"),
    ({"method": "median"}, "method"),
])
def test_write_bad_arguments_write_nothing(tmp_path, kwargs, message):
    url = str(tmp_path / "out.ome.zarr")
    with unchanged(tmp_path), pytest.raises(errors.InvalidInputError, match=message):
        voxelflow.write_ome_zarr(tiny_volume(), url, **kwargs)


def test_write_object_dtype_writes_nothing(tmp_path):
    with unchanged(tmp_path), pytest.raises(errors.InvalidInputError, match="dtype"):
        voxelflow.write_ome_zarr(np.array([[["a"]]], dtype=object), str(tmp_path / "o.ome.zarr"))


def test_write_existing_image_without_overwrite(image):
    url, data = image
    with unchanged(url), pytest.raises(errors.OmeZarrError, match="already exists"):
        voxelflow.write_ome_zarr(data + 1, url)


def test_write_onto_its_own_source(image):
    url, data = image
    arr, _ = voxelflow.open_ome_zarr(url)
    with unchanged(url), pytest.raises(errors.OmeZarrError, match="computed from it"):
        voxelflow.write_ome_zarr(arr + 1, url, overwrite=True)


@pytest.mark.parametrize("kwargs, error", [
    ({"level": 5}, errors.OmeZarrError), ({"level": "nope"}, errors.OmeZarrError),
    ({"level": 1.5}, errors.OmeZarrError), ({"missing_chunks": "maybe"}, errors.OmeZarrError),
    ({"storage_options": "anon"}, errors.InvalidInputError),
])
def test_open_bad_arguments(image, kwargs, error):
    url, _ = image
    with unchanged(url), pytest.raises(error):
        voxelflow.open_ome_zarr(url, **kwargs)


@pytest.mark.parametrize("suffix", ["?slices=[0:", "?slices=[::0]", "?slices=[99]", "?slices=[0, 0, 0, 0]",
                                    "?slices=[__import__('os')]", "?slices=[5:2]"])
def test_open_bad_slices(image, suffix):
    url, _ = image
    with unchanged(url), pytest.raises(errors.SliceSyntaxError):
        voxelflow.open_ome_zarr(url + suffix)


@pytest.mark.parametrize("what", ["missing", "file", "empty_folder", "int"])
def test_open_something_that_is_not_an_image(tmp_path, what):
    target = tmp_path / "x.ome.zarr"
    if what == "file":
        target.write_text("hello")
    elif what == "empty_folder":
        target.mkdir()
    arg = 42 if what == "int" else str(target)
    with unchanged(tmp_path), pytest.raises((errors.OmeZarrError, errors.InvalidPathError)):
        voxelflow.open_ome_zarr(arg)


# --- cache API arguments ------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path):
    url = str(tmp_path / "node")
    voxelflow.save(url, np.arange(6), key={"v": 1})
    return url


@pytest.mark.parametrize("key", [{"x": float("nan")}, {"x": float("inf")}, {1, 2}, np.arange(3), object()])
def test_bad_key_leaves_the_committed_node(node, key):
    with unchanged(node), pytest.raises(errors.CacheKeyError):
        voxelflow.cdir_init(node, key=key)
    with unchanged(node), pytest.raises(errors.CacheKeyError):
        voxelflow.save(node, np.zeros(3), key=key)
    np.testing.assert_array_equal(voxelflow.load(node), np.arange(6))


@pytest.mark.parametrize("timeout", [-1, float("nan"), "10", True])
def test_bad_timeout_leaves_the_committed_node(node, timeout):
    with unchanged(node), pytest.raises(errors.InvalidInputError, match="timeout"):
        voxelflow.cdir_init(node, key={"v": 2}, timeout=timeout)


@pytest.mark.parametrize("obj", [object(), {1, 2}, np.ma.masked_array([1, 2], mask=[0, 1]),
                                 np.array(["a", None], dtype=object), {"x": float("nan")}, lambda: 1])
def test_unsupported_object_leaves_the_committed_node(node, obj):
    with unchanged(node), pytest.raises(errors.UnsupportedObjectError):
        voxelflow.save(node, obj, key={"v": 1})
    np.testing.assert_array_equal(voxelflow.load(node), np.arange(6))


def test_dask_array_of_strings_is_refused(node):
    with unchanged(node), pytest.raises(errors.UnsupportedObjectError):
        voxelflow.save(node, da.from_array(np.array(["a", "b"])), key={"v": 1})


def test_storage_options_not_a_dict(node):
    with unchanged(node), pytest.raises(errors.InvalidInputError, match="storage_options"):
        voxelflow.cdir_init(node, storage_options=["anon"])


@pytest.mark.parametrize("call", ["init", "save", "load"])
def test_cache_calls_on_a_user_file(tmp_path, call):
    path = tmp_path / "notes.txt"
    path.write_text("my thesis")
    with unchanged(tmp_path), pytest.raises(errors.NotACacheNodeError):
        {"init": lambda: voxelflow.cdir_init(str(path)), "save": lambda: voxelflow.save(str(path), [1]),
         "load": lambda: voxelflow.load(str(path))}[call]()


@pytest.mark.parametrize("call", ["init", "save", "load"])
def test_cache_calls_on_a_user_folder(tmp_path, call):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "scan.tif").write_bytes(b"II*\x00")
    with unchanged(tmp_path), pytest.raises(errors.NotACacheNodeError):
        {"init": lambda: voxelflow.cdir_init(str(folder)), "save": lambda: voxelflow.save(str(folder), [1]),
         "load": lambda: voxelflow.load(str(folder))}[call]()


@pytest.mark.parametrize("url", ["", "nosuchproto://x/y", 3.5, None])
def test_cache_bad_url(url):
    with pytest.raises(errors.InvalidPathError):
        voxelflow.cdir_init(url)


# --- convert arguments and targets ----------------------------------------------------------------


@pytest.fixture
def tif(tmp_path):
    import tifffile

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, tiny_volume((4, 16, 16)), imagej=True, metadata={"axes": "ZYX"})
    return path


@pytest.mark.parametrize("args, name", [
    (["--levels", "0"], "levels"), (["--levels", "-2"], "levels"), (["--factors", "0"], "factor"),
    (["--chunks", "0,4,4"], "chunks"), (["--scale", "nan"], "scale"), (["--scale", "-1"], "scale"),
    (["--scale", "inf,1,1"], "scale"), (["--shards", "3,3,3"], "shard"), (["--units", ""], "units"),
])
def test_convert_bad_options_write_nothing(tmp_path, tif, capsys, args, name):
    out = tmp_path / "out.ome.zarr"
    with unchanged(tmp_path):
        code, err = cli(["convert", tif, out, "--scale-um", "2,1,1", *args], capsys)
    assert code == 2 and name in err.lower() and not out.exists()


def test_convert_overwrite_refuses_a_user_zip(tmp_path, tif, capsys):
    out = tmp_path / "thesis.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("chapter1.tex", "\\section{Intro}")
    with unchanged(out):
        code, err = cli(["convert", tif, out, "--overwrite", "--scale-um", "2,1,1"], capsys)
    assert code == 2 and str(out) in err and "not an" in err


def test_convert_overwrite_refuses_a_corrupt_zip(tmp_path, tif, capsys):
    out = tmp_path / "old.ome.zarr.zip"
    out.write_bytes(b"PK\x03\x04 this is not really a zip")
    with unchanged(out):
        code, err = cli(["convert", tif, out, "--overwrite", "--scale-um", "2,1,1"], capsys)
    assert code == 2 and str(out) in err


def test_convert_overwrite_refuses_a_user_folder(tmp_path, tif, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "table.csv").write_text("a,b\n1,2\n")
    with unchanged(out):
        code, err = cli(["convert", tif, out, "--overwrite", "--scale-um", "2,1,1"], capsys)
    assert code == 2 and str(out) in err


def test_convert_overwrite_refuses_a_user_file(tmp_path, tif, capsys):
    out = tmp_path / "notes.ome.zarr"
    out.write_text("not an image")
    with unchanged(out):
        code, err = cli(["convert", tif, out, "--overwrite", "--scale-um", "2,1,1"], capsys)
    assert code == 2 and str(out) in err


def test_convert_onto_existing_image_without_overwrite(tmp_path, tif, capsys):
    url, _ = write_tiny_image(tmp_path)
    with unchanged(url):
        code, err = cli(["convert", tif, url, "--scale-um", "2,1,1"], capsys)
    assert code == 2 and "already exists" in err


def test_convert_onto_its_own_input(tmp_path, tif, capsys):
    with unchanged(tif):
        code, err = cli(["convert", tif, tif, "--overwrite", "--scale-um", "2,1,1"], capsys)
    assert code == 2 and str(tif) in err


# --- cache command-line targets -----------------------------------------------------------------


def test_cache_rm_dot_refuses_a_cache_root(tmp_path, capsys, monkeypatch):
    root = tmp_path / "cache"
    voxelflow.save(str(root / "a"), [1])
    voxelflow.save(str(root / "b"), [2])
    monkeypatch.chdir(root)
    with unchanged(root):
        code, err = cli(["cache", "rm", "."], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and str(root) in err


@pytest.mark.parametrize("what", ["missing", "file", "user_folder"])
def test_cache_rm_refuses_what_is_not_a_node(tmp_path, capsys, what):
    target = tmp_path / "thing"
    if what == "file":
        target.write_text("data")
    elif what == "user_folder":
        target.mkdir()
        (target / "a.txt").write_text("data")
    with unchanged(tmp_path):
        code, err = cli(["cache", "rm", target], capsys)
    assert code == 2 and err.startswith("voxelflow: error:") and str(target) in err


def test_cache_ls_does_not_follow_a_symlink_loop(tmp_path, capsys):
    root = tmp_path / "cache"
    voxelflow.save(str(root / "a"), [1])
    os.symlink(root, root / "a" / "loop")
    with unchanged(root):
        assert main(["cache", "ls", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["cache/", "a/"]


@pytest.mark.parametrize("command", ["ls", "info"])
def test_cache_listing_of_a_file(tmp_path, capsys, command):
    path = tmp_path / "f.txt"
    path.write_text("x")
    with unchanged(tmp_path):
        code, err = cli(["cache", command, path], capsys)
    assert code == 2 and err.startswith("voxelflow: error:")


def test_every_case_checks_with_a_real_digest(tmp_path):
    (tmp_path / "a").write_text("1")
    before = digest(tmp_path)
    (tmp_path / "a").write_text("2")
    assert digest(tmp_path) != before
