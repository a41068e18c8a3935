"""Every ```python block of every page in docs/ runs as written (each page in a fresh process, in order).

A block that cannot run on a test machine (a SLURM cluster, an interactive napari
window) says so on its first line with ``# not run by the tests: <reason>``; every
other block runs. Paths under ``/tmp/`` and ``TMP_PATH`` point into the test's folder.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SKIP_MARK = "# not run by the tests:"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_most_blocks_run():
    blocks = [b for p in PAGES for b in python_blocks(p.read_text())]
    skipped = [b for b in blocks if b.startswith(SKIP_MARK)]
    assert len(blocks) >= 40 and len(skipped) <= 5, (len(blocks), len(skipped))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_examples_of_a_page_run(tmp_path, page):
    blocks = [b for b in python_blocks(page.read_text()) if not b.startswith(SKIP_MARK)]
    code = f"TMP_PATH = {str(tmp_path)!r}\n" + "\n".join(blocks).replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=850,
                            cwd=tmp_path)
    assert result.returncode == 0, f"{page.name}:\n{result.stderr[-4000:]}"
