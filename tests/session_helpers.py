"""Shared helpers of the runtime tests (logs, session, seed snippets)."""

import copy
import logging
import sys

import dask.config
from distributed import Client


def small_client():
    """An in-process client: one worker thread, no dashboard, fast to start."""
    return Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)


def global_state():
    """Everything PLComponents may touch, in a comparable form."""
    loggers = {"": logging.getLogger()}
    loggers.update(
        (name, lg)
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    )
    def handlers(lg):
        # distributed attaches in-memory DequeHandlers to its loggers the first
        # time a scheduler/worker starts; they are its own, not a tee leftover.
        return tuple(h for h in lg.handlers if type(h).__name__ != "DequeHandler")

    return {
        "stdout": sys.stdout,
        "stderr": sys.stderr,
        "dask_config": copy.deepcopy(dask.config.config),
        "loggers": {
            name: (handlers(lg), lg.level, lg.propagate) for name, lg in loggers.items()
        },
        "handler_streams": {
            id(h): getattr(h, "stream", None) for lg in loggers.values() for h in lg.handlers
        },
    }


def assert_restored(before):
    """Assert the globals captured by :func:`global_state` are back."""
    after = global_state()
    assert after["stdout"] is before["stdout"]
    assert after["stderr"] is before["stderr"]
    assert after["dask_config"] == before["dask_config"]
    for name, state in before["loggers"].items():
        assert after["loggers"][name] == state, name
    for hid, stream in before["handler_streams"].items():
        assert after["handler_streams"].get(hid) is stream
