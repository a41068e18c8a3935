"""Shared helpers of the steps / pipeline tests."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from contextlib import contextmanager

import numpy as np
from dask.callbacks import Callback
from scipy import ndimage as ndi


class Killed(Exception):
    """Stands for a SIGKILL in the kill-point resume tests."""


def blobs(shape, seed):
    """A bool volume of smooth random blobs (the top 20 % of smoothed noise)."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(shape), 1.2)
    return img > np.quantile(img, 0.8)


class TaskCounter(Callback):
    """Counts dask tasks executed by the local schedulers while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.count += 1


@contextmanager
def count_tasks():
    counter = TaskCounter()
    with counter:
        yield counter


def import_source(tmp_path, name: str, source: str):
    """Write ``source`` as module ``name`` under ``tmp_path`` and import it fresh."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module
