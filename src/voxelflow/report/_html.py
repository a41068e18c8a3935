"""The HTML page of the report: figures as data URIs, the run summary and the region table."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    text = json.dumps(value) if not isinstance(value, str) else value
    return [(prefix, text if len(text) <= 200 else text[:197] + "...")]


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def region_table_html(merged: pd.DataFrame) -> str:
    cols = [c for c in ("acronym", "name", "count", "count_self", "truth", "rel_error",
                        "volume_mm3", "density_per_mm3") if c in merged.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, row in merged[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "rel_error":
                text = "" if pd.isna(v) else f"{100 * v:+.1f}%"
            elif isinstance(v, float):
                text = "" if pd.isna(v) else f"{v:.4g}"
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 90%; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; image-rendering: pixelated; }
"""


def _steps_table(steps: list) -> str:
    rows = [s for s in steps if isinstance(s, dict)]
    cols = [c for c in ("name", "cached", "seconds") if any(c in r for r in rows)]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def registration_table_html(qc: dict, part: dict | None = None) -> str:
    """The registration QC figures (metrics, Jacobian range, folding, rotation) and the atlas part, as a table."""
    rows = [(k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in qc.items()
            if not k.startswith(("seconds", "stop"))]
    if part:
        rows.append(("atlas part", f"{part.get('side', 'whole')}, voxels from {part.get('origin')}, "
                                   f"shape {part.get('shape')}"))
    return '<table class="registration-qc">' + _kv_table(rows)[len("<table>"):]


def render_html(title: str, objects: pd.DataFrame, meta: dict, figures, table_html: str, notes,
                tables: dict[str, str] | None = None) -> str:
    """The report page; ``table_html`` follows the counts figure, ``tables[heading]`` that section's figures."""
    summary = [("objects", str(len(objects)))]
    if len(objects):
        summary.append(("median size (voxels)", f"{objects['voxels'].median():.4g}"))
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _kv_table(summary),
        *(f"<p><em>{html.escape(note)}</em></p>" for note in notes),
    ]
    after = dict(tables or {})
    if table_html:
        after["Counts per region"] = table_html
    section = None
    for heading, caption, path in figures:
        if heading != section:
            if after.get(section):
                parts.append(after[section])
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            section = heading
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if after.get(section):
        parts.append(after[section])
    if isinstance(meta.get("steps"), list):
        parts += ["<h2>Steps</h2>", _steps_table(meta["steps"])]
    rest = {k: v for k, v in meta.items() if k != "steps"}
    if rest:
        parts += ["<h2>Run</h2>", _kv_table(_flatten(rest))]
    parts.append("</body></html>")
    return "\n".join(parts)
