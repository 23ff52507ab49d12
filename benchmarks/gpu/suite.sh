#!/usr/bin/env bash
# plantkit's GPU throughput suite: one JSON line per measurement on stdout, then a summary.
#
#   bash benchmarks/gpu/suite.sh [--dry-run] [--out FILE] [--budget SECONDS] [--work DIR]
#
# --dry-run: tiny sizes on this CPU machine (every code path but the CUDA-only ones, ~3 min).
# Without it: sized for one H200 with 16 cores, under 8 minutes (default budget 450 s).
# Progress goes to stderr; each step's output to WORK/logs/ (default
# /tmp/plantkit-gpu-suite[-dry]/logs). benchmarks/gpu/README.md says what is measured.
# Python: $PYTHON, else the checkout's .venv, else python3 (the GPU machine's).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then
    py="$root/.venv/bin/python"
else
    py="python3"
fi
export PYTHONUNBUFFERED=1 KERAS_BACKEND=torch
exec "$py" "$here/suite.py" "$@"
