#!/usr/bin/env bash
# The GPU check: the test suite's GPU-marked tests, then timed fits of the default run, configs/cnn.yaml
# and configs/cnn_fast.yaml on the GPU (bench/gpu.py), whose figures go to bench/results/gpu.json
# (then `python bench/report.py` regenerates bench/RESULTS.md).
# At most about 5 minutes; installs nothing and downloads nothing (the MNIST files must be on disk).
#
#   bash bench/gpu.sh [--data-dir DIR] [--results DIR]
#
# Without a GPU it says so, leaves the GPU tests out (they need one) and runs a short CPU smoke run of the same
# fits instead, which writes no GPU figures. PYTHON chooses the interpreter (default: the README's .venv).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null; then
  echo "bench/gpu.sh: no Python at $PYTHON: install as README.md says, or set PYTHON" >&2
  exit 2
fi

if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "GPU: $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))')"
  tests=0
  summary=$(timeout 120 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee /dev/stderr | tail -n 1) || tests=$?
  timeout 200 "$PYTHON" bench/gpu.py --tests-summary "${summary:-no summary}" "$@"
  fits=$?
  [ "$tests" -ne 0 ] && echo "bench/gpu.sh: the GPU-marked tests failed (exit code $tests)" >&2
  exit $((tests != 0 ? tests : fits))
fi

echo "NO GPU: torch sees no CUDA device here. The GPU-marked tests need one and are not run;" \
  "a CPU smoke run of the same fits follows (short, not GPU figures; bench/results/ is left as it is)."
exec timeout 240 "$PYTHON" bench/gpu.py --smoke --tests-summary "not run (no GPU)" "$@"
