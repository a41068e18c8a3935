"""Every ```python block of docs/io.md runs as written and prints what its comments say."""

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "io.md"


def test_io_doc_examples_run(tmp_path):
    text = DOC.read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S)).replace("/tmp/doc_", f"{tmp_path}/doc_")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = [line.strip() for line in result.stdout.splitlines()]
    promised = [c.strip() for c in re.findall(r"print\(.*?\)\s*#\s*(.*)", code)]
    promised += [c.strip() for c in re.findall(r"^# (tiff-planes .*)$", code, flags=re.M)]
    for claim in promised:
        assert any(claim in line for line in printed), (claim, printed)
