"""The typed configuration: TOML, overrides on the typed tree, relative paths, validation."""

import math

import pytest

from voxelflow.errors import ConfigError
from voxelflow.pipelines.config import Config, load_config, parse_override, to_toml

ODD = 'my "scans" folder/brain one.ome.zarr'


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_typed_tree_with_defaults():
    cfg = load_config(None, ["input.url=s3://bucket/scan.ome.zarr", "output.folder=/runs/a"])
    assert isinstance(cfg, Config)
    assert cfg.input.url == "s3://bucket/scan.ome.zarr" and cfg.input.channel is None
    assert cfg.pipeline.kind == "plaque" and cfg.pipeline.threshold_factor == 2.0
    assert cfg.pipeline.coarse_factors is None and cfg.pipeline.coarse_max_voxels is None and cfg.output.levels == 3
    assert cfg.get("pipeline.min_voxels") == 8
    assert cfg.as_dict()["compute.memory_limit"] == "4GB"


def test_values_with_quotes_and_spaces_are_kept_exactly(tmp_path):
    odd_folder = str(tmp_path / 'run "one" here')
    cfg = load_config(None, [f"input.url={ODD}"], values={"output.folder": odd_folder, "compute.workers": 2})
    assert cfg.input.url == ODD and cfg.output.folder == odd_folder and cfg.compute.workers == 2
    # and they survive a TOML round trip
    path = _write(tmp_path / "c.toml", to_toml(cfg))
    again = load_config(path)
    assert again.output.folder == odd_folder and again.compute.workers == 2


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    path = _write(tmp_path / "project" / "conf" / "run.toml", """
[input]
url = "../data/scan.ome.zarr?slices=[0]"
[atlas]
url = "s3://bucket/atlas.ome.zarr"
regions = "/abs/regions.csv"
[pipeline]
mask = "masks/neg.ome.zarr"
[output]
folder = "out"
""")
    cfg = load_config(path, ["output.cache=rel/cache"])
    assert cfg.input.url == str(tmp_path / "project" / "data" / "scan.ome.zarr?slices=[0]")
    assert cfg.atlas.url == "s3://bucket/atlas.ome.zarr" and cfg.atlas.regions == "/abs/regions.csv"
    assert cfg.pipeline.mask == str(tmp_path / "project" / "conf" / "masks" / "neg.ome.zarr")
    assert cfg.output.folder == str(tmp_path / "project" / "conf" / "out")
    assert cfg.output.cache == "rel/cache"  # given on the command line: the working directory's
    auto = load_config(_write(tmp_path / "a.toml", '[input]\nurl = "x"\n[output]\nfolder = "o"\n[pipeline]\nmask = "auto"\n'))
    assert auto.pipeline.mask == "auto"


@pytest.mark.parametrize("text, key", [
    ("[pipeline]\nedge_um = nan", "pipeline.edge_um"),
    ("[pipeline]\nthreshold = inf", "pipeline.threshold"),
    ("[pipeline]\nthreshold_factor = -inf", "pipeline.threshold_factor"),
    ("[output]\nchunks = [64, inf, 2]", "output.chunks"),
])
def test_numbers_must_be_finite(tmp_path, text, key):
    path = _write(tmp_path / "c.toml", '[input]\nurl = "x"\n' + text + ('\n[output]\nfolder = "o"' if "[output]" not in text else '\nfolder = "o"'))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)
    dotted, value = parse_override(f"{key}={text.split('= ')[1]}")
    assert dotted == key and (isinstance(value, list) or math.isinf(value) or math.isnan(value))


@pytest.mark.parametrize("overrides, message", [
    (["pipeline.threshold=high"], "'pipeline.threshold': expected a number"),
    (["nosuch.key=1"], "unknown key 'nosuch.key'"),
    (["pipeline.nosuch=1"], "unknown key 'pipeline.nosuch'"),
    (["pipeline.min_voxels"], "key=value"),
    (["pipeline.kind=spines"], "'pipeline.kind': expected one of plaque, cells"),
])
def test_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["input.url=x", "output.folder=o", *overrides])


def test_missing_required_key_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="'input.url'"):
        load_config(None, ["output.folder=o"])
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path / "bad.toml", "[input\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"\[section\] table"):
        load_config(_write(tmp_path / "flat.toml", "url = 1\n"))
