"""Whole workflows as short recipes of :mod:`voxelflow.steps`.

* :mod:`voxelflow.pipelines.config`: the typed configuration tree read from TOML.
* :mod:`voxelflow.pipelines.plaque`: the plaque-counting pipeline.
* :mod:`voxelflow.pipelines.progress`: progress display of a run on a cluster.
"""
