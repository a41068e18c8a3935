"""``voxelflow cache``: list, inspect and remove cache nodes.

Examples
--------
::

    voxelflow cache ls /data/tmp/CacheDirectory
    voxelflow cache info /data/tmp/CacheDirectory/plaque/threshold
    voxelflow cache rm /data/tmp/CacheDirectory/plaque/threshold
"""

from __future__ import annotations

import json

from voxelflow.cache import cdir_query, iter_tree, read_lock, remove_node
from voxelflow.errors import NotACacheNodeError


def register(subparsers) -> None:
    """Add the ``cache`` command and its ``ls``/``info``/``rm`` sub-commands."""
    parser = subparsers.add_parser("cache", help="list, inspect and remove cached results")
    sub = parser.add_subparsers(dest="cache_command", required=True)
    ls = sub.add_parser("ls", help="print the cache tree with status, key, size and commit time")
    ls.add_argument("path", help="cache folder or node (local path or fsspec URL)")
    ls.set_defaults(func=_ls)
    info = sub.add_parser("info", help="print the commit marker and lock of one node")
    info.add_argument("node")
    info.set_defaults(func=_info)
    rm = sub.add_parser("rm", help="delete a node and its children (refuses folders that are not nodes)")
    rm.add_argument("node")
    rm.set_defaults(func=_rm)


def _ls(args) -> int:
    rows = []
    for entry in iter_tree(args.path):
        name = "  " * entry.depth + (entry.path.name or entry.path.url) + "/"
        node = entry.node
        if node is None:
            rows.append((name, "folder", "", _human(entry.size), ""))
            continue
        key = ""
        when = ""
        if node.status == "newer":
            when = f"format version {node.marker['version']}: written by a newer voxelflow, unreadable here"
        elif node.marker is not None:
            key = (node.marker.get("key_hash") or "")[:8]
            when = node.commit.strftime("%Y-%m-%d %H:%M:%S UTC")
            wall = node.marker.get("wall_seconds")
            if wall is not None:
                when += f"  ({wall:.2f} s)"
        elif node.status in ("locked", "computing"):
            lock = read_lock(node.path)
            if lock:
                when = f"by {lock.describe()}"
        rows.append((name, node.status, key or "-", _human(entry.size), when))
    width = max(len(r[0]) for r in rows)
    print(f"{'NODE':<{width}}  {'STATUS':<10} {'KEY':<8}  {'SIZE':>9}  TIME")
    for name, status, key, size, when in rows:
        print(f"{name:<{width}}  {status:<10} {key:<8}  {size:>9}  {when}".rstrip())
    return 0


def _info(args) -> int:
    node = cdir_query(args.node)
    if node.status == "missing":
        raise NotACacheNodeError(f"{args.node} is not a voxelflow cache node")
    print(f"node:    {node.url}")
    print(f"status:  {node.status}")
    if node.marker is not None:
        print("marker:")
        print(json.dumps(node.marker, indent=2))
    lock = read_lock(node.path)
    if lock:
        print(f"lock:    {lock.describe()}")
    elif lock is False:
        print("lock:    unreadable lock file (stale; the next cdir_init takes it over)")
    return 0


def _rm(args) -> int:
    print(f"removed {remove_node(args.node)}")
    return 0


def _human(n: int) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    size, i = float(n), 0
    while size >= 1024 and i < len(units) - 1:
        size, i = size / 1024, i + 1
    return f"{n} B" if i == 0 else f"{size:.1f} {units[i]}"
