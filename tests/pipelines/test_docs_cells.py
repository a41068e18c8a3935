"""Every ```python block of docs/cells.md runs as written (in a fresh process, in order)."""

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "cells.md"


def test_cells_doc_python_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 2
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout
