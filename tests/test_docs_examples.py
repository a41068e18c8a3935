"""Every ```python block of the README runs as written (in a fresh process, in order)."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    code = "\n".join(blocks).replace("/tmp/vf-readme", str(tmp_path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "CacheDirectory" / "A").is_dir()
    # PLComponents tees the run's output into log files in the working folder, as the seed says
    assert len(list(tmp_path.glob("voxelflow_*_stdout.txt"))) == 1
