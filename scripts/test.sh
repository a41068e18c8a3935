#!/usr/bin/env bash
# Install everything the test suite needs (Debian + Python packages) and run it
# under a virtual X screen so the napari tests draw real frames.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
python -m pip install -q -e '.[test]'
exec xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest "$@"
