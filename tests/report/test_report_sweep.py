"""The report shows a parameter sweep written into the run folder: parsed back from the HTML."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from report_helpers import write_run_folder

from voxelflow.errors import InvalidInputError
from voxelflow.report import make_report

CENTRES = [(6, 10, 12), (12, 30, 50), (18, 40, 20)]


class Page(HTMLParser):
    """Section headings, the images and tables under each, as parsed text."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._section = None
        self._table = None
        self._row = None
        self._cell = None
        self._in_h2 = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self._in_h2, self._section = True, ""
        elif tag == "img" and self._section is not None:
            self.sections[self._section]["images"].append(attrs["src"])
        elif tag == "table" and self._section is not None:
            self._table = {"class": attrs.get("class"), "rows": []}
            self.sections[self._section]["tables"].append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table["rows"].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
            self.sections[self._section] = {"images": [], "tables": []}
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._in_h2:
            self._section += data
        elif self._cell is not None:
            self._cell += data


def _sweep_table(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"steps_cached": [7] * n, "steps": [15] * n, "seconds": [1.5] * n, "masked_fraction": [0.1] * n,
            "run": [f"/runs/sweep/{i}" for i in range(n)]}
    return pd.DataFrame({**columns, **base})


def test_a_scored_sweep_appears_as_a_table_and_a_plot(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    table = _sweep_table(**{"cells.threshold_k": [5.0, 2.5, 3.0], "objects": [60, 120, 100],
                            "precision": [0.99, 0.81, 0.95], "recall": [0.52, 0.97, 0.9], "f1": [0.68, 0.88, 0.92]})
    table.to_csv(run / "sweep.csv", index=False)
    page = Page(make_report(run).read_text())
    sweep = page.sections["Parameter sweep"]
    (rows,) = [t["rows"] for t in sweep["tables"] if t["class"] == "sweep"]
    header = rows[0]
    assert header[:5] == ["cells.threshold_k", "objects", "precision", "recall", "f1"] and "run" not in header
    got = pd.DataFrame(rows[1:], columns=header)
    np.testing.assert_allclose(got["cells.threshold_k"].astype(float), table["cells.threshold_k"])
    np.testing.assert_array_equal(got["objects"].astype(int), table["objects"])
    for score in ("precision", "recall", "f1"):
        np.testing.assert_allclose(got[score].astype(float), table[score], atol=5e-4)
    (src,) = sweep["images"]
    png = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
    assert png.ndim == 3 and png.shape[1] > 300
    assert src.split(",", 1)[1] == base64.b64encode((run / "sweep.png").read_bytes()).decode()


def test_several_keys_without_scores_label_each_setting(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES, with_regions=False)
    table = _sweep_table(**{"cells.threshold_k": [2, 2, 4], "cells.prefilter": ["log", "dog", "log"],
                            "objects": [10, 12, 7]})
    table.to_csv(run / "sweep.csv", index=False)
    page = Page(make_report(run).read_text())
    rows = page.sections["Parameter sweep"]["tables"][0]["rows"]
    assert rows[0][:3] == ["cells.threshold_k", "cells.prefilter", "objects"]
    assert [r[:3] for r in rows[1:]] == [["2", "log", "10"], ["2", "dog", "12"], ["4", "log", "7"]]
    assert "precision" not in rows[0]


def test_no_sweep_no_section_and_a_bad_table_names_the_file(tmp_path):
    run = tmp_path / "run"
    write_run_folder(run, CENTRES)
    assert "Parameter sweep" not in Page(make_report(run).read_text()).sections
    pd.DataFrame({"cells.threshold_k": [2, 3]}).to_csv(run / "sweep.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"sweep\.csv.*objects"):
        make_report(run)
