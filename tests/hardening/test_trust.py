"""Trust boundaries: what a cache marker, an image's metadata or a configuration may make voxelflow do.

A marker edited by hand must not make ``load`` read outside its node, a marker of a
newer format must not be read (or wiped) by this version, ``cache rm`` must remove
exactly what it says, and a scheduler connection takes TLS security settings.
Every case asserts the ``voxelflow.errors`` class and that nothing outside changed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hardening_helpers import edit_json, group_meta_file, multiscale, unchanged, write_tiny_image

import voxelflow
from voxelflow import errors
from voxelflow.cli import main

MARKER = ".voxelflow_commit.json"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text('{"password": "hunter2"}')
    return path


def _node(root, name="cache/node", obj=None):
    url = f"{root}/{name}"
    voxelflow.save(url, {"a": 1} if obj is None else obj, key={"k": 1})
    return url


def _set_payload(url, **fields):
    if "://" in url:
        import fsspec

        fs, path = fsspec.core.url_to_fs(f"{url}/{MARKER}")
        doc = json.loads(fs.cat_file(path))
        doc["payload"].update(fields)
        fs.pipe_file(path, json.dumps(doc).encode())
    else:
        edit_json(Path(url) / MARKER, lambda d: d["payload"].update(fields))


@pytest.mark.parametrize("name", ["../../secret.json", "../secret.json", "sub/../../../secret.json",
                                  "ABSOLUTE", "", ".", "..", MARKER, ".voxelflow_lock.json"])
def test_payload_name_outside_the_node_is_refused(tmp_path, secret, name):
    url = _node(tmp_path)
    _set_payload(url, name=str(secret) if name == "ABSOLUTE" else name)
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="payload") as info:
        voxelflow.load(url)
    assert "hunter2" not in str(info.value)


def test_payload_symlink_out_of_the_node_is_refused(tmp_path, secret):
    url = _node(tmp_path)
    os.unlink(Path(url) / "result.json")
    os.symlink(secret, Path(url) / "result.json")
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="outside"):
        voxelflow.load(url)


@pytest.mark.parametrize("name", ["../../other/result.json", "/other/result.json"])
def test_remote_payload_name_outside_the_node_is_refused(mem_root, name):
    other = _node(mem_root, "other")
    url = _node(mem_root)
    _set_payload(url, name=name if not name.startswith("/") else f"/{other.split('://', 1)[1]}/result.json")
    with unchanged(mem_root), pytest.raises(errors.CacheError, match="payload"):
        voxelflow.load(url)


@pytest.mark.parametrize("kind", ["pickle", "", "NUMPY", "../numpy", "children "])
def test_unknown_payload_kind_is_refused(tmp_path, kind):
    url = _node(tmp_path)
    _set_payload(url, kind=kind)
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="kind"):
        voxelflow.load(url)


@pytest.mark.parametrize("version", [2, 99])
def test_marker_of_a_newer_format_is_not_read(tmp_path, version):
    url = _node(tmp_path)
    edit_json(Path(url) / MARKER, lambda d: d.update(version=version))
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match=f"version {version}"):
        voxelflow.load(url)


def test_cache_ls_lists_a_node_of_a_newer_format(tmp_path, capsys):
    old = _node(tmp_path, "cache/old")
    newer = _node(tmp_path, "cache/newer")
    edit_json(Path(newer) / MARKER, lambda d: d.update(version=7))
    with unchanged(tmp_path):
        assert main(["cache", "ls", str(tmp_path / "cache")]) == 0
        rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
        # the other node is still listed as usual; the newer one is listed, flagged, not read
        assert rows["old/"][1] == "committed"
        assert rows["newer/"][1:3] == ["newer", "-"] and "version" in rows["newer/"] and "7:" in rows["newer/"]
        entries = {e.path.name: e for e in voxelflow.cache.iter_tree(tmp_path / "cache")}
        assert entries["newer"].node.status == "newer" and entries["newer"].node.marker == {"version": 7}
        assert voxelflow.load(old) == {"a": 1}
        with pytest.raises(errors.NewerFormatError, match="version 7") as info:
            voxelflow.load(newer)
        assert newer in str(info.value) and "newer voxelflow" in str(info.value)
        assert main(["cache", "info", newer]) == 2


@pytest.mark.parametrize("call", ["init_same_key", "init_other_key", "save"])
def test_node_of_a_newer_format_is_never_wiped(tmp_path, call):
    url = _node(tmp_path)
    edit_json(Path(url) / MARKER, lambda d: d.update(version=2))
    action = {"init_same_key": lambda: voxelflow.cdir_init(url, key={"k": 1}),
              "init_other_key": lambda: voxelflow.cdir_init(url, key={"k": 2}),
              "save": lambda: voxelflow.save(url, [1], key={"k": 2})}[call]
    with unchanged(tmp_path), pytest.raises(errors.CacheError, match="version 2"):
        action()


@pytest.mark.parametrize("version", ["1", None, 1.5, -1])
def test_marker_with_a_malformed_version_is_not_a_commit(tmp_path, version):
    url = _node(tmp_path)
    edit_json(Path(url) / MARKER, lambda d: d.update(version=version))
    with unchanged(tmp_path), pytest.raises((errors.NotCommittedError, errors.CacheError)):
        voxelflow.load(url)


# --- cache rm and links -----------------------------------------------------------------------


def test_cache_rm_of_a_symlink_removes_the_link_and_says_so(tmp_path, capsys):
    url = _node(tmp_path)
    link = tmp_path / "shortcut"
    os.symlink(url, link)
    with unchanged(url):
        assert main(["cache", "rm", str(link)]) == 0
    out = capsys.readouterr().out
    assert not os.path.lexists(link) and "link" in out and url in out
    assert voxelflow.load(url) == {"a": 1}


def test_cache_rm_does_not_follow_links_inside_the_node(tmp_path, capsys):
    data = tmp_path / "raw"
    data.mkdir()
    (data / "scan.tif").write_bytes(b"II*\x00precious")
    url = _node(tmp_path)
    os.symlink(data, Path(url) / "raw-link")
    with unchanged(data):
        assert main(["cache", "rm", url]) == 0
    assert not os.path.lexists(url)


def test_recomputing_a_node_does_not_follow_links_inside_it(tmp_path):
    data = tmp_path / "raw"
    data.mkdir()
    (data / "scan.tif").write_bytes(b"II*\x00precious")
    url = _node(tmp_path)
    os.symlink(data, Path(url) / "raw-link")
    with unchanged(data):
        voxelflow.save(url, [2], key={"k": 2})
    assert voxelflow.load(url) == [2]


def test_cache_rm_of_a_link_to_a_non_node_is_refused(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "a.tex").write_text("x")
    link = tmp_path / "link"
    os.symlink(folder, link)
    with unchanged(tmp_path):
        assert main(["cache", "rm", str(link)]) == 2
    assert capsys.readouterr().err.startswith("voxelflow: error:")


def test_lock_with_a_heartbeat_far_in_the_future_is_stale(tmp_path):
    url = str(tmp_path / "node")
    lock = {"host": "another-host", "pid": 1, "pid_created": 0.0, "token": "t", "started": 0.0,
            "heartbeat": time.time() + 10 * 365 * 86400, "key": None, "key_hash": None}
    os.makedirs(url)
    Path(url, ".voxelflow_node.json").write_text('{"format": "voxelflow-cache-node", "version": 1}')
    Path(url, ".voxelflow_lock.json").write_text(json.dumps(lock))
    voxelflow.save(url, [3], timeout=2)
    assert voxelflow.load(url) == [3]


# --- image metadata pointing elsewhere ------------------------------------------------------------


@pytest.mark.parametrize("path", ["../other.ome.zarr/0", "/etc", "0/../../other.ome.zarr/0", "0/../0"])
def test_dataset_path_outside_the_image_is_refused(image, tmp_path, path):
    url, _ = image
    write_tiny_image(tmp_path, name="other.ome.zarr")
    edit_json(group_meta_file(url), lambda doc: multiscale(doc)["datasets"][0].__setitem__("path", path))
    with unchanged(tmp_path), pytest.raises(errors.OmeZarrError, match="path"):
        voxelflow.open_ome_zarr(url)


def test_label_name_outside_the_image_is_refused(image, tmp_path):
    url, data = image
    with unchanged(tmp_path), pytest.raises(errors.InvalidInputError):
        voxelflow.write_labels(np.zeros(data.shape, np.uint8), url, "../../evil")


# --- schedulers: TLS security settings ------------------------------------------------------------


@pytest.fixture
def certs(tmp_path):
    """Certificate files (their contents are only read when a connection is made)."""
    files = {}
    for key, name in (("tls_ca_file", "ca.pem"), ("tls_client_cert", "cert.pem"), ("tls_client_key", "key.pem")):
        path = tmp_path / "tls" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        files[key] = str(path)
    return files


def test_security_table_in_the_config_builds_a_security_object(tmp_path, certs):
    from distributed.security import Security

    from voxelflow.pipelines.config import load_config, to_toml

    table = ", ".join(f'{k} = "{v}"' for k, v in certs.items())
    path = tmp_path / "c.toml"
    path.write_text(f'[input]\nurl = "a"\n[output]\nfolder = "b"\n[compute]\nscheduler = "tls://h:8786"\n'
                    f"security = {{{table}, require_encryption = true}}\n")
    config = load_config(path)
    assert isinstance(config.compute.security, Security)
    assert config.compute.security.tls_ca_file == certs["tls_ca_file"]
    assert config.compute.security.require_encryption is True
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    assert load_config(again).compute.security.tls_client_key == certs["tls_client_key"]


def test_security_object_passes_through_to_the_client(monkeypatch, certs):
    from distributed.security import Security

    from voxelflow.pipelines.config import load_config
    from voxelflow.runtime.compute import compute_context

    security = Security(**certs)
    config = load_config(None, ['input.url="a"', 'output.folder="b"'],
                         values={"compute.scheduler": "tls://10.9.8.7:8786", "compute.security": security})
    seen = {}

    class Recorder:
        def __init__(self, address, **kwargs):
            seen.update(kwargs)
            raise OSError("no scheduler in this test")

    monkeypatch.setattr("distributed.Client", Recorder)
    with pytest.raises(errors.SchedulerError, match="tls://10.9.8.7:8786"), compute_context(
            config.compute.scheduler, connect_timeout=1, security=config.compute.security):
        pass
    assert seen["security"] is security


@pytest.mark.parametrize("value", ['{tls_ca_file = "/no/such/ca.pem"}', '{password = "x"}', '"tls please"',
                                   "{require_encryption = \"yes\"}", "[1, 2]"])
def test_bad_security_settings_name_the_key(tmp_path, value):
    from voxelflow.pipelines.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(f'[input]\nurl = "a"\n[output]\nfolder = "b"\n[compute]\nsecurity = {value}\n')
    with unchanged(tmp_path), pytest.raises(errors.ConfigError, match=r"compute\.security"):
        load_config(path)


def test_docs_say_to_use_trusted_schedulers_only():
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = " ".join(p.read_text() for p in docs.glob("*.md"))
    assert "trusted" in text and "distributed.security.Security" in text and "tls://" in text
