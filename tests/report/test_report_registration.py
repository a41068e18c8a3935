"""report.html of a run that registered an atlas: the QC pictures (checkerboard, edges, 3 planes) and metrics,
the atlas-space density map; the HTML is parsed and every picture checked against its file."""

import base64
import json
from html.parser import HTMLParser

import pytest
from matplotlib.image import imread

from voxelflow.cli import main
from voxelflow.synth_atlas import write_synthetic_experiment

pytest.importorskip("SimpleITK")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Report(HTMLParser):
    """Sections (h2 text), their images (alt, src) and the cells of the registration QC table."""

    def __init__(self):
        super().__init__()
        self.images, self.qc_rows, self._section, self._in, self._qc, self._row = [], [], None, None, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self._in = "h2"
        elif tag == "img":
            self.images.append((self._section, attrs.get("alt", ""), attrs.get("src", "")))
        elif tag == "table":
            self._qc = attrs.get("class") == "registration-qc"
        elif tag in ("th", "td") and self._qc:
            self._in = "cell"

    def handle_endtag(self, tag):
        if tag in ("h2", "th", "td"):
            self._in = None
        if tag == "tr" and self._qc and self._row:
            self.qc_rows.append(tuple(self._row))
            self._row = []
        if tag == "table":
            self._qc = False

    def handle_data(self, data):
        if self._in == "h2":
            self._section = data.strip()
        elif self._in == "cell":
            self._row.append(data.strip())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    exp = write_synthetic_experiment(root, resolution=300.0, seed=4, n_objects=40, orientation="psl")
    exp["config"].write_text(exp["config"].read_text() + "\n[atlas.registration]\ndeformable_iterations = 10\n")
    assert main(["run", str(exp["config"]), "--quiet"]) == 0
    run = root / "run"
    parser = _Report()
    parser.feed((run / "report.html").read_text())
    return run, parser


def test_report_holds_the_registration_pictures_of_the_run_folder(report):
    run, parser = report
    shown = [(alt, src) for section, alt, src in parser.images if section == "Atlas registration"]
    assert len(shown) == 6
    for kind, words in (("checker", "Checkerboard"), ("edges", "Edges")):
        for axis in range(3):
            matches = [src for alt, src in shown if alt.startswith(words) and alt.endswith(f"axis {axis}")]
            assert len(matches) == 1, (kind, axis)
            assert matches[0].startswith("data:image/png;base64,")
            embedded = base64.b64decode(matches[0].split(",", 1)[1])
            on_disk = run / "registration" / f"qc_{kind}_axis{axis}.png"
            assert on_disk.is_file() and embedded == on_disk.read_bytes()
            assert embedded[:8] == PNG_SIGNATURE
            picture = imread(on_disk)
            assert picture.ndim == 3 and max(picture.shape[:2]) >= 256 and picture.std() > 0


def test_report_lists_the_registration_qc_metrics(report):
    run, parser = report
    rows = dict(r for r in parser.qc_rows if len(r) == 2)
    qc = json.loads((run / "registration" / "registration.json").read_text())["qc"]
    for name in ("metric_start", "metric_affine", "metric_final", "jacobian_min", "jacobian_max", "folded_fraction",
                 "rotation_deg"):
        assert float(rows[name]) == pytest.approx(qc[name], rel=1e-5, abs=1e-12), name
    assert rows["atlas part"].startswith("whole")


def test_report_shows_the_atlas_space_density_map(report):
    run, parser = report
    shown = [src for section, _, src in parser.images if section == "Atlas-space density map"]
    assert len(shown) == 1
    embedded = base64.b64decode(shown[0].split(",", 1)[1])
    assert embedded == (run / "atlas_density.png").read_bytes() and embedded[:8] == PNG_SIGNATURE
