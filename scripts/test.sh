#!/usr/bin/env bash
# Set up onnxviz (./.venv) and a headless Chromium, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_browser.sh || echo "warning: could not install chromium; the browser test will say so"
. .venv/bin/activate
# tests/ includes the notebook tour (tests/test_notebook.py executes notebooks/tour.ipynb on the real MobileNetV2)
python -m pytest -q -p no:cacheprovider "$@"
