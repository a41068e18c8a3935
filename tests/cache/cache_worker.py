"""A small cached multi-step pipeline, run in child processes by the crash and concurrency tests.

Steps (node paths under ``ROOT/pipeline``; every key chains the upstream keys):

====================  ==============  =================================================
node                  payload         value
====================  ==============  =================================================
``raw``               numpy float32   random (48, 40, 32) image, seed ``gens['raw']``
``smooth``            dask int32      ``int(raw * 1000) + gens['smooth']``, chunks (16, 20, 16)
``table``             DataFrame       per-z-plane total and peak of ``smooth``
``group``             (cdir_commit)   ``manifest.json`` written after its children:
``group/a``           numpy int32     ``smooth.max(axis=0) + gens['group']``
``group/b``           JSON            row count and total of ``table``
====================  ==============  =================================================

Every value read from the cache is compared with :func:`reference` (computed in
memory), so a half-written node that loads without error is still caught. The
run appends events (``compute``, ``begin``/``end`` of each write, ``skip``,
``CORRUPT``, ``done``) to an events file with unbuffered ``os.write`` so a parent
can tell where a SIGKILL landed. Exit code 3 means corrupt data was read.

Run as a script: ``python cache_worker.py ROOT EVENTS [--gens JSON] [--no-container] [--slow S]
[--barrier FILE]`` (logs go to stderr at INFO level).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time

import dask
import dask.array as da
import numpy as np
import pandas as pd

from voxelflow.cache import cdir_commit, cdir_init, cdir_query, load, save

SHAPE = (48, 40, 32)
CHUNKS = (16, 20, 16)
STEPS = ("raw", "smooth", "table", "group/a", "group/b", "group")
DEFAULT_GENS = {"raw": 0, "smooth": 0, "table": 0, "group": 0}


def keys(gens: dict) -> dict:
    raw = {"gen": gens["raw"]}
    smooth = {"gen": gens["smooth"], "raw": raw}
    table = {"gen": gens["table"], "smooth": smooth}
    group = {"gen": gens["group"], "table": table}
    return {"raw": raw, "smooth": smooth, "table": table, "group": group, "group/a": group, "group/b": group}


_CHAIN = ("group", "table", "smooth", "raw")


def gens_from_key(name: str, key: dict) -> dict:
    """Invert :func:`keys`: the generations a node's stored key was made from.

    Generations of downstream steps, which the node does not depend on, are 0.
    """
    gens = dict(DEFAULT_GENS)
    chain = _CHAIN[_CHAIN.index(name.split("/")[0]) :]
    for step, lower in zip(chain, (*chain[1:], None)):
        gens[step] = key["gen"]
        if lower:
            key = key[lower]
    return gens


def reference(gens: dict) -> dict:
    """Every node's value computed in memory with numpy/pandas (cached per generations)."""
    return _reference(tuple(sorted(gens.items())))


@functools.lru_cache(maxsize=64)
def _reference(gens_items: tuple) -> dict:
    gens = dict(gens_items)
    raw = np.random.default_rng(gens["raw"]).random(SHAPE, dtype=np.float32)
    smooth = (raw * 1000).astype(np.int32) + np.int32(gens["smooth"])
    table = pd.DataFrame(
        {
            "z": np.arange(SHAPE[0], dtype=np.int64),
            "total": smooth.sum(axis=(1, 2), dtype=np.int64) + gens["table"],
            "peak": smooth.max(axis=(1, 2)),
            "plane": [f"z{i}" for i in range(SHAPE[0])],
        }
    )
    a = smooth.max(axis=0) + np.int32(gens["group"])
    b = {"rows": len(table), "total": int(table["total"].sum()) + gens["group"]}
    manifest = {"a_sum": int(a.sum(dtype=np.int64)), "b": b}
    return {"raw": raw, "smooth": smooth, "table": table, "group/a": a, "group/b": b, "group": manifest}


def same(name: str, value, expected) -> bool:
    """True if a value loaded from node ``name`` equals the reference."""
    if name == "smooth":
        return (
            isinstance(value, da.Array)
            and value.chunks == da.empty(SHAPE, chunks=CHUNKS).chunks
            and value.dtype == expected.dtype
            and np.array_equal(value.compute(), np.asarray(expected))
        )
    if isinstance(expected, np.ndarray):
        return isinstance(value, np.ndarray) and value.dtype == expected.dtype and np.array_equal(value, expected)
    if isinstance(expected, pd.DataFrame):
        return isinstance(value, pd.DataFrame) and value.equals(expected) and list(value.dtypes) == list(expected.dtypes)
    return value == expected


def read_node(root: str, name: str):
    """The value stored in node ``name`` (the manifest file for ``group``)."""
    url = f"{root}/pipeline/{name}"
    if name == "group":
        return json.loads((cdir_query(url).path / "manifest.json").read_text())
    return load(url)


class Run:
    def __init__(self, root: str, events: str, gens: dict, container: bool, slow: float = 0.0):
        self.root, self.gens, self.container, self.slow = root, gens, container, slow
        self.fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.ref = reference(gens)
        self.keys = keys(gens)

    def event(self, *words) -> None:
        os.write(self.fd, (" ".join(map(str, words)) + f" @{time.monotonic():.4f}\n").encode())

    def check(self, name: str, value) -> None:
        if not same(name, value, self.ref[name]):
            self.event("CORRUPT", name)
            os._exit(3)
        self.event("verified", name)

    def step(self, name: str, compute):
        url = f"{self.root}/pipeline/{name}"
        node = cdir_init(url, self.keys[name])
        if node.commit is None:
            self.event("compute", name)
            time.sleep(self.slow)
            value = compute()
            self.event("begin", name)
            save(url, value)
            self.event("end", name)
        else:
            self.event("skip", name)
        value = load(url)
        self.check(name, value)
        return value

    def __call__(self) -> None:
        self.event("start", os.getpid())
        if self.container:
            cdir_init(f"{self.root}/pipeline")  # never committed: a crashed run resumes from its children
        raw = self.step("raw", lambda: self.ref["raw"].copy())
        smooth = self.step(
            "smooth", lambda: (da.from_array(raw, chunks=CHUNKS) * 1000).astype(np.int32) + np.int32(self.gens["smooth"])
        )
        table = self.step("table", lambda: self._table(smooth))
        group_url = f"{self.root}/pipeline/group"
        group = cdir_init(group_url, self.keys["group"])
        if group.commit is None:
            self.event("compute", "group")
            a = self.step("group/a", lambda: smooth.max(axis=0).compute() + np.int32(self.gens["group"]))
            b = self.step("group/b", lambda: {"rows": len(table), "total": int(table["total"].sum()) + self.gens["group"]})
            self.event("begin", "group")
            manifest = {"a_sum": int(a.sum(dtype=np.int64)), "b": b}
            (group.path / "manifest.json").write_text(json.dumps(manifest))
            cdir_commit(group_url)
            self.event("end", "group")
        else:
            self.event("skip", "group")
            self.step("group/a", None)
            self.step("group/b", None)
        self.check("group", read_node(self.root, "group"))
        self.event("done")
        os.close(self.fd)

    def _table(self, smooth):
        planes = smooth.astype(np.int64).sum(axis=(1, 2)).compute() + self.gens["table"]
        peaks = smooth.max(axis=(1, 2)).compute()
        return pd.DataFrame(
            {
                "z": np.arange(SHAPE[0], dtype=np.int64),
                "total": planes,
                "peak": peaks,
                "plane": [f"z{i}" for i in range(SHAPE[0])],
            }
        )


def run_child(root: str, events: str, gens: dict, container: bool = True, slow: float = 0.0) -> None:
    """Entry point for multiprocessing children."""
    with dask.config.set(scheduler="threads", num_workers=2):
        Run(root, events, gens, container, slow)()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("events")
    parser.add_argument("--gens", default=json.dumps(DEFAULT_GENS))
    parser.add_argument("--no-container", action="store_true")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds to sleep in each computed step")
    parser.add_argument("--barrier", help="print 'ready' then wait until this file exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(process)d %(name)s %(message)s")
    if args.barrier:
        print("ready", flush=True)
        while not os.path.exists(args.barrier):
            time.sleep(0.01)
    run_child(args.root, args.events, json.loads(args.gens), not args.no_container, args.slow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
