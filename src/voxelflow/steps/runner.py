"""Runs of steps: where they cache, how they store images, what they record, who hears of results.

A :class:`Runner` holds a cache root, storage defaults, the records of the
steps it ran, and ``on_result`` hooks. ``runner.step(op, *args, name=...)`` is
one stage of a workflow: the step's node is ``<cache>/<name>``.

Every finished step call, inside a runner or not, is announced as a
:class:`StepResult` to the hooks of the active runner and to the process-wide
subscribers (:func:`subscribe`). Display is such a subscriber: the napari
viewer package subscribes itself (on import, or through the
``voxelflow.on_result`` entry point when a call carries a viewer), so this
layer never imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from voxelflow.paths import VPath, as_vpath

__all__ = ["Runner", "StepRecord", "StepResult", "record_steps", "subscribe", "unsubscribe"]

#: Entry-point group of result hooks installed packages declare.
HOOK_GROUP = "voxelflow.on_result"


@dataclass
class StepRecord:
    """What happened in one step call: its name, key, whether it was cached, time taken."""

    name: str
    key: str | None
    cached: bool
    seconds: float
    node: str | None = None
    outputs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The record as kept in the run record of a pipeline."""
        return {"name": self.name, "cached": self.cached, "seconds": round(self.seconds, 4), "node": self.node,
                "outputs": self.outputs}


@dataclass(frozen=True)
class StepResult:
    """A finished step call, as handed to ``on_result`` hooks.

    Attributes
    ----------
    record : StepRecord
    value : Any
        The result (arrays lazily read back from the cache when cached).
    kind : str or None
        The step's data types, e.g. ``"BS->OS"``.
    storage : dict
        The storage options of the call (``scale``, ``levels``, ...).
    viewer_args : dict
        The call's ``viewer_args`` (empty when none were given).
    """

    record: StepRecord
    value: Any
    kind: str | None = None
    storage: dict = field(default_factory=dict)
    viewer_args: dict = field(default_factory=dict)

    @property
    def kind_out(self) -> str | None:
        """The output data type (``"OS"`` for ``"BS->OS"``)."""
        return self.kind.replace("→", "->").split("->")[-1].strip() if self.kind else None


_ACTIVE: contextvars.ContextVar[Runner | None] = contextvars.ContextVar("voxelflow_runner", default=None)
_SUBSCRIBERS: list[Callable[[StepResult], None]] = []
_declared_loaded = False


def subscribe(hook: Callable[[StepResult], None]) -> Callable[[StepResult], None]:
    """Call ``hook(result)`` after every step call of this process (once per hook)."""
    if hook not in _SUBSCRIBERS:
        _SUBSCRIBERS.append(hook)
    return hook


def unsubscribe(hook: Callable[[StepResult], None]) -> None:
    """Stop calling ``hook``."""
    if hook in _SUBSCRIBERS:
        _SUBSCRIBERS.remove(hook)


def _load_declared_hooks() -> None:
    global _declared_loaded
    if _declared_loaded:
        return
    _declared_loaded = True
    for ep in entry_points(group=HOOK_GROUP):
        subscribe(ep.load())


def emit(result: StepResult) -> None:
    """Announce a finished step call to the active runner and the subscribers."""
    runner = _ACTIVE.get()
    if runner is not None:
        runner.records.append(result.record)
        for hook in runner.hooks:
            hook(result)
    if result.viewer_args.get("viewer") is not None:
        _load_declared_hooks()
    for hook in list(_SUBSCRIBERS):
        hook(result)


class Runner:
    """Run steps into one cache root and record them.

    Parameters
    ----------
    cache : str or VPath, optional
        Cache root; step ``name`` is cached at ``<cache>/<name>``. None: nothing is cached.
    storage : dict, optional
        Storage options every step gets unless it gives its own (see
        :class:`voxelflow.steps.Step`).
    viewer_args : dict, optional
        ``viewer_args`` of every step (a ``viewer`` and layer options); the
        step's name becomes the layer name.
    on_result : callable, optional
        ``on_result(StepResult)`` after every step call inside the runner.

    Examples
    --------
    >>> import dask.array as da
    >>> from voxelflow.steps import Runner, threshold
    >>> run = Runner(None)
    >>> bs = run.step(threshold, da.arange(10, chunks=5), 6, name="foreground")
    >>> [r.name for r in run.records], int(bs.sum().compute())
    (['foreground'], 3)
    """

    def __init__(self, cache: str | VPath | None = None, *, storage: dict | None = None,
                 viewer_args: dict | None = None, on_result: Callable[[StepResult], None] | None = None):
        self.cache = as_vpath(cache) if cache is not None else None
        self.storage = dict(storage or {})
        self.viewer_args = dict(viewer_args or {})
        self.records: list[StepRecord] = []
        self.hooks: list[Callable[[StepResult], None]] = [on_result] if on_result is not None else []
        self._tokens: list[contextvars.Token] = []

    def on_result(self, hook: Callable[[StepResult], None]) -> Callable[[StepResult], None]:
        """Add a hook called with every :class:`StepResult` of this runner."""
        self.hooks.append(hook)
        return hook

    def node(self, name: str) -> VPath | None:
        """The cache node of step ``name`` (None without a cache root)."""
        return None if self.cache is None else self.cache / name

    def step(self, op, *args, name: str | None = None, storage: dict | None = None,
             viewer_args: dict | None = None, **kwargs):
        """Call ``op`` (a step, or a function made a step here) as stage ``name`` of this run.

        Parameters
        ----------
        op : Step or callable
            A plain function becomes ``Step(op, name=name)`` (declare a
            :class:`~voxelflow.steps.Step` with ``kind`` for typed display and storage).
        *args, **kwargs
            The op's own arguments.
        name : str, optional
            Stage name: cache node, record and layer name (default: the step's name).
        storage : dict, optional
            Storage options, over the runner's defaults.
        viewer_args : dict, optional
            Layer options, over the runner's ``viewer_args`` (used only when the
            runner has them, i.e. shows results).

        Returns
        -------
        The op's result, read back from the cache when cached.
        """
        from voxelflow.steps.step import Step

        if not isinstance(op, Step):
            op = Step(op, name=name)
        name = name or op.name
        node = self.node(name)
        view = {"name": name, **self.viewer_args, **(viewer_args or {})} if self.viewer_args else None
        with self:
            return op(*args, cache_url=None if node is None else node.url,
                      storage_options={**self.storage, **(storage or {})}, viewer_args=view, **kwargs)

    def __enter__(self) -> Runner:
        self._tokens.append(_ACTIVE.set(self))
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._tokens.pop())


@contextlib.contextmanager
def record_steps(on_step: Callable[[StepRecord], None] | None = None):
    """Collect a :class:`StepRecord` for every step called inside the block.

    Parameters
    ----------
    on_step : callable, optional
        Called with each record as the step finishes (e.g. to print progress).

    Yields
    ------
    list of StepRecord
    """
    hook = None if on_step is None else (lambda result: on_step(result.record))
    with Runner(on_result=hook) as runner:
        yield runner.records
