"""``PLComponents``: the one-line session set-up of a pipeline script.

It bundles what every voxelflow script needs — a Dask temporary directory, a
Dask client, log files of ``stdout``/``stderr``, a cache root and, on demand, a
napari viewer — and undoes all of it on :meth:`PLComponents.close`.

Examples
--------
>>> import tempfile
>>> from dask.distributed import Client
>>> import voxelflow as qsetup
>>> tmp = tempfile.mkdtemp()
>>> with qsetup.PLComponents(tmp, log_dir=tmp,
...         get_client=lambda: Client(processes=False, n_workers=1,
...                                   threads_per_worker=1, dashboard_address=None)) as plc:
...     plc.cache_root.endswith("CacheDirectory")
True
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxelflow.errors import InvalidInputError, InvalidPathError, OptionalDependencyError
from voxelflow.paths import VPath
from voxelflow.runtime.compute import start_local_cluster
from voxelflow.runtime.logs import LogFiles, tee_logs

__all__ = ["PLComponents", "default_cluster_shape"]

log = logging.getLogger(__name__)


def default_cluster_shape(cpu_count: int, total_memory: int) -> tuple[int, int, int]:
    """Worker layout of the default local cluster for a machine.

    Numpy/scipy kernels release the GIL, so threads scale well inside one
    process; a few processes on big machines keep any single GIL from
    becoming the bottleneck. About ``sqrt(cpu_count)`` workers share the cores
    evenly and 90 % of the RAM is split between them (the rest is left to the
    main process and the OS).

    Parameters
    ----------
    cpu_count : int
        Usable cores, >= 1.
    total_memory : int
        Bytes of RAM, >= 1.

    Returns
    -------
    n_workers, threads_per_worker, memory_limit : int
        ``n_workers * threads_per_worker <= cpu_count`` and
        ``n_workers * memory_limit <= total_memory``; ``memory_limit`` is per worker in bytes.

    Examples
    --------
    >>> default_cluster_shape(2, 8 * 2**30)
    (1, 2, 7730941132)
    >>> default_cluster_shape(64, 256 * 2**30)[:2]
    (8, 8)
    """
    if not isinstance(cpu_count, int) or cpu_count < 1:
        raise InvalidInputError(f"cpu_count must be a positive int, got {cpu_count!r}")
    if not isinstance(total_memory, int) or total_memory < 1:
        raise InvalidInputError(f"total_memory must be a positive int of bytes, got {total_memory!r}")
    n_workers = 1 if cpu_count <= 4 else round(math.sqrt(cpu_count))
    threads = cpu_count // n_workers
    memory_limit = int(total_memory * 0.9) // n_workers
    return n_workers, threads, max(memory_limit, 1)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _default_client():
    """A process-based local cluster sized by :func:`default_cluster_shape`."""
    import psutil

    n_workers, threads, memory = default_cluster_shape(_usable_cpus(), psutil.virtual_memory().total)
    # Without bokeh the dashboard cannot render; starting it anyway only
    # leaves a "missing bokeh" route behind in the global Dask config.
    dashboard = ":8787" if importlib.util.find_spec("bokeh") is not None else None
    return start_local_cluster(n_workers, threads, memory, dashboard_address=dashboard)


class PLComponents:
    """Set up (and later tear down) the shared pieces of a pipeline run.

    On construction, in this order:

    1. ``tmp_path`` is created and set as Dask's ``temporary_directory``
       (spilled data and worker scratch space go there);
    2. ``stdout``/``stderr`` are teed into timestamped log files in ``log_dir``
       (see :func:`voxelflow.runtime.logs.tee_logs`);
    3. the Dask client is created by ``get_client()`` (it becomes Dask's
       default scheduler);
    4. the cache root ``tmp_path/cachedir_name`` is created.

    :meth:`close` (or leaving the ``with`` block, or interpreter exit if
    neither happened) closes the viewer and the client and restores
    ``sys.stdout``, ``sys.stderr``, the logging handlers and the Dask config.

    Parameters
    ----------
    tmp_path : str or os.PathLike
        Local folder for Dask temporary files and the cache root. Created if missing.
    cachedir_name : str, default 'CacheDirectory'
        Name of the cache root folder inside ``tmp_path``.
    get_client : callable, optional
        Zero-argument factory returning a ``distributed.Client``. Default: a
        process-based ``LocalCluster`` sized to this machine
        (:func:`default_cluster_shape`). The client is closed by :meth:`close`.
    log_dir : str or os.PathLike, optional
        Folder of the log files; default: the current working directory.
    tee : bool, default True
        Whether to tee ``stdout``/``stderr`` into log files.
    log_prefix : str, default 'voxelflow'
        Start of the log file names.
    viewer_kwargs : dict, optional
        Keyword arguments of ``napari.Viewer`` for :attr:`viewer`
        (default ``{'ndisplay': 2}``).

    Attributes
    ----------
    tmp_path : str
        Absolute path of the temporary folder.
    cache_root : str
        URL (absolute local path) of the cache root folder; pass it, or
        sub-paths of it, to :func:`voxelflow.cdir_init`.
    dask_client : distributed.Client
        The client (closed after :meth:`hand_threads_to_viewer` or :meth:`close`).
    log_files : LogFiles or None
        Paths of this run's log files (None when ``tee=False``).

    Raises
    ------
    InvalidPathError
        If ``tmp_path`` or ``log_dir`` is not a local path, or is an existing file.
    InvalidInputError
        If ``cachedir_name`` is not a plain folder name, ``get_client`` is not
        callable or does not return a client.

    Notes
    -----
    **napari and Dask compete for threads.** napari computes the visible
    chunks of a dask-backed layer with Dask's default scheduler. While the
    client is alive it *is* that scheduler, so every chunk makes a round trip
    through the distributed scheduler to worker threads that already hold the
    cores, instead of running on the viewer process's own threads; browsing a
    large image stays slow whatever ``threads_per_worker`` is. Add the layers,
    then call :meth:`hand_threads_to_viewer`: it closes the client (and a
    cluster this object created), after which Dask computations — napari's
    chunk loads included — run on Dask's local threaded scheduler with all the
    cores. Do the heavy computing before the hand-off.

    Examples
    --------
    As in the seed script (closed automatically at exit)::

        plc = PLComponents(TMP_PATH, get_client=lambda: Client(threads_per_worker=12, n_workers=1))

    As a context manager::

        with PLComponents("/scratch/me/tmp") as plc:
            result = run_pipeline(plc.cache_root)
            plc.viewer.add_image(result)
            plc.hand_threads_to_viewer()
            napari.run()
    """

    def __init__(
        self,
        tmp_path: str | os.PathLike,
        cachedir_name: str = "CacheDirectory",
        get_client: Callable[[], Any] | None = None,
        *,
        log_dir: str | os.PathLike | None = None,
        tee: bool = True,
        log_prefix: str = "voxelflow",
        viewer_kwargs: dict | None = None,
    ):
        self.tmp_path = _local_dir(tmp_path, "tmp_path")
        if not isinstance(cachedir_name, str) or not cachedir_name or cachedir_name in (".", ".."):
            raise InvalidInputError(f"cachedir_name must be a folder name, got {cachedir_name!r}")
        if "/" in cachedir_name or "\\" in cachedir_name:
            raise InvalidInputError(f"cachedir_name must be a single folder name, got {cachedir_name!r}")
        if get_client is not None and not callable(get_client):
            raise InvalidInputError(
                f"get_client must be a zero-argument callable returning a Client, got {get_client!r}"
            )
        if not isinstance(tee, bool):
            raise InvalidInputError(f"tee must be True or False, got {tee!r}")
        if viewer_kwargs is not None and not isinstance(viewer_kwargs, dict):
            raise InvalidInputError(f"viewer_kwargs must be a dict, got {viewer_kwargs!r}")
        log_dir = os.getcwd() if log_dir is None else _local_dir(log_dir, "log_dir")
        cache_root = VPath(self.tmp_path) / cachedir_name
        if cache_root.exists() and not cache_root.isdir():
            raise InvalidPathError(f"cache root {cache_root.url} exists and is not a directory")

        self._viewer_kwargs = {"ndisplay": 2} if viewer_kwargs is None else dict(viewer_kwargs)
        self._viewer = None
        self._client = None
        self._owned_cluster = None
        self._threads_handed = False
        self.log_files: LogFiles | None = None
        self._stack = contextlib.ExitStack()
        try:
            Path(self.tmp_path).mkdir(parents=True, exist_ok=True)
            import dask.config

            self._stack.enter_context(dask.config.set({"temporary_directory": self.tmp_path}))
            if tee:
                self.log_files = self._stack.enter_context(tee_logs(log_dir, log_prefix))
            self._stack.callback(self._close_client)
            self._client, self._owned_cluster = self._make_client(get_client)
            cache_root.mkdirs()
            self.cache_root: str = cache_root.url
        except BaseException:
            self._stack.close()
            raise
        # The seed never closes its PLComponents; closing at exit shuts the
        # cluster down before its log streams and files disappear.
        atexit.register(self.close)
        log.info(
            "PLComponents ready: tmp_path=%s cache_root=%s client=%s",
            self.tmp_path, self.cache_root, self._client,
        )

    @staticmethod
    def _make_client(get_client):
        if get_client is None:
            return _default_client()
        client = get_client()
        from distributed import Client

        if not isinstance(client, Client):
            with contextlib.suppress(Exception):
                client.close()
            raise InvalidInputError(
                f"get_client() must return a distributed.Client, got {type(client).__name__}"
            )
        return client, None

    # --- public -------------------------------------------------------------

    @property
    def dask_client(self):
        """The ``distributed.Client`` of this session."""
        return self._client

    @property
    def viewer(self):
        """A napari viewer, created on first access (needs the ``viewer`` extra).

        Raises
        ------
        OptionalDependencyError
            If napari is not installed.
        """
        if self._viewer is None:
            try:
                import napari
            except ImportError as exc:
                raise OptionalDependencyError(
                    "PLComponents.viewer needs napari: pip install 'voxelflow[viewer]'"
                ) from exc
            self._viewer = napari.Viewer(**self._viewer_kwargs)
            self._stack.callback(self._close_viewer)
        return self._viewer

    def hand_threads_to_viewer(self) -> None:
        """Close the Dask client so napari's chunk-loading threads get the CPU.

        The client (and the cluster, if this object created it) is closed;
        later Dask computations use the local threaded scheduler. Call it after
        adding the layers and before browsing them. Calling it again does
        nothing.
        """
        if self._threads_handed:
            return
        self._threads_handed = True
        self._close_client()
        log.info("Dask client closed: the viewer now has the CPU threads")

    def close(self) -> None:
        """Close viewer and client; restore streams, logging and Dask config. Idempotent."""
        atexit.unregister(self.close)
        self._stack.close()

    def __enter__(self) -> PLComponents:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PLComponents(tmp_path={self.tmp_path!r}, cache_root={getattr(self, 'cache_root', None)!r})"

    # --- teardown -----------------------------------------------------------

    def _close_client(self) -> None:
        client, cluster = self._client, self._owned_cluster
        self._owned_cluster = None
        if client is not None and client.status not in ("closed", "closing"):
            client.close()
        if cluster is not None:
            cluster.close()

    def _close_viewer(self) -> None:
        viewer, self._viewer = self._viewer, None
        if viewer is not None:
            viewer.close()


def _local_dir(path: Any, what: str) -> str:
    """Absolute local folder path of ``path``, refusing URLs and existing files."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise InvalidPathError(f"{what} must be a local path (str or os.PathLike), got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise InvalidPathError(f"{what} must be a non-empty local path, got {path!r}")
    if "://" in text:
        raise InvalidPathError(f"{what} must be a local folder (Dask writes temporary files there), got URL {text!r}")
    resolved = os.path.abspath(os.path.expanduser(text))
    if os.path.exists(resolved) and not os.path.isdir(resolved):
        raise InvalidPathError(f"{what} {resolved} exists and is not a directory")
    return resolved
