"""Pipeline configuration: a typed tree read from TOML, ``--set key=value`` overrides, validation.

A configuration file has one ``[section]`` per dataclass of :class:`Config`
(``input``, ``atlas``, ``pipeline``, ``mask``, ``cells``, ``output``, ``compute``),
each in the module of the same name in this package. Every key has a
type, a default and a check; errors name the dotted key and what was expected,
e.g. ``pipeline.threshold: expected a number > 0, got 'high'``. Numbers must
be finite (TOML's ``nan`` and ``inf`` are refused).

``pipeline.kind`` picks the workflow: ``"plaque"`` (parameters in
``[pipeline]``) or ``"cells"`` (parameters in ``[cells]``, every length in
micrometres with defaults from ``cells.diameter_um``). ``[mask]`` holds what
both share about the tissue mask. A workflow of another kind adds its own
section module here, its dataclass to :class:`Config` (``tree.py``) and its recipe to
:data:`voxelflow.pipelines.run.RECIPES`.

Paths
-----
Relative paths written in a configuration file (``input.url``, ``atlas.url``,
``atlas.regions``, ``pipeline.mask``, ``output.folder``, ``output.cache``) are
resolved against the folder of that file, so a configuration can be run from
any working directory. Paths given as overrides (``--set``, ``--out``) are
resolved against the working directory. URLs (``s3://...``) are kept as they are.

Examples
--------
>>> from voxelflow.pipelines.config import load_config
>>> cfg = load_config(None, overrides=["input.url=scan.ome.zarr", "output.folder=run", "pipeline.min_voxels=10"])
>>> cfg.pipeline.min_voxels, cfg.pipeline.bias
(10, 'auto')
"""

from voxelflow.pipelines.config.load import load_config, parse_override, to_toml
from voxelflow.pipelines.config.pipeline import KINDS
from voxelflow.pipelines.config.tree import Config

__all__ = ["Config", "KINDS", "load_config", "parse_override", "to_toml"]
