"""Every ```python block of docs/models.md runs as written (in a fresh process, in order)."""

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def test_models_page_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 5
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "3"  # the stitched touching balls
    assert lines[1] == "2 (1, 1, 1)"
    assert lines[2].startswith("cross-validated balanced accuracy 0.")
    assert (tmp_path / "cells.classifier").is_file() and (tmp_path / "tiny.onnx").is_file()
