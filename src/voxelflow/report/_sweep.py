"""The parameter sweep of a run folder in the report: ``sweep.csv`` as a table and a plot of counts and scores.

``voxelflow sweep`` writes ``<output.folder>/sweep.csv``: one row per setting,
the varied keys first, then ``objects``, the cache use, the time and, when the
runs were scored against reference points, ``precision``, ``recall`` and ``f1``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["SWEEP_CSV", "read_sweep", "swept_keys", "plot_sweep", "sweep_table_html"]

#: Name of the sweep table in a run folder.
SWEEP_CSV = "sweep.csv"

#: Columns of the sweep table that are results, not varied keys.
RESULT_COLUMNS = ("objects", "steps_cached", "steps", "seconds", "masked_fraction", "run", "precision", "recall",
                  "f1")
SCORES = ("precision", "recall", "f1")


def read_sweep(run: Path) -> pd.DataFrame | None:
    """The sweep table of a run folder, or None when the folder has none.

    Raises
    ------
    InvalidInputError
        If the file has no ``objects`` column or no varied key.
    """
    path = Path(run) / SWEEP_CSV
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if "objects" not in table.columns or not swept_keys(table):
        raise InvalidInputError(f"{str(path)!r} is not a sweep table: expected the varied keys and an 'objects' "
                                f"column, got columns {list(table.columns)}")
    return table


def swept_keys(table: pd.DataFrame) -> list[str]:
    """The varied configuration keys (every column that is not a result)."""
    return [c for c in table.columns if c not in RESULT_COLUMNS]


def _labels(table: pd.DataFrame, keys: list[str]) -> list[str]:
    return [", ".join(f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in keys) for _, row in table.iterrows()]


def plot_sweep(table: pd.DataFrame, path: Path) -> None:
    """Objects found (bars, left axis) and precision / recall / F1 (lines, right axis) for every setting.

    One numeric varied key is the x axis itself; several keys label each setting.
    """
    from matplotlib.figure import Figure

    keys = swept_keys(table)
    numeric = len(keys) == 1 and pd.api.types.is_numeric_dtype(table[keys[0]])
    order = table.sort_values(keys[0]) if numeric else table
    x = np.arange(len(order))
    fig = Figure(figsize=(max(4.0, 0.9 * len(order) + 2.0), 3.4), dpi=100)
    ax = fig.add_axes((0.12, 0.25, 0.72, 0.65))
    ax.bar(x, order["objects"].to_numpy(float), color="#9ab", label="objects")
    ax.set_ylabel("objects")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in order[keys[0]]] if numeric else _labels(order, keys),
                       rotation=0 if numeric else 30, ha="center" if numeric else "right", fontsize=8)
    ax.set_xlabel(keys[0] if numeric else "setting")
    scores = [s for s in SCORES if s in order.columns and order[s].notna().any()]
    if scores:
        right = ax.twinx()
        for name, style in zip(scores, ("o-", "s-", "^-")):
            right.plot(x, order[name].to_numpy(float), style, label=name)
        right.set_ylim(0, 1.05)
        right.set_ylabel("score")
        right.legend(loc="lower right", fontsize=8)
    fig.savefig(path)


def sweep_table_html(table: pd.DataFrame) -> str:
    """The varied keys, objects, scores, cache use and time of every setting, as an HTML table."""
    cols = swept_keys(table) + [c for c in ("objects", *SCORES, "steps_cached", "steps", "seconds")
                                if c in table.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, row in table[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            text = "" if pd.isna(v) else (f"{v:.3f}" if c in SCORES else (f"{v:g}" if isinstance(v, float) else str(v)))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sweep"><tr>{head}</tr>{"".join(body)}</table>'
