#!/usr/bin/env bash
# The GPU suite on the device machine (one H200, 16 cores), run from the checkout's root by
# the device tool with carry [".whl"]:
#
#   bash benchmarks/gpu/run_on_device.sh            # extra arguments go to suite.sh
#
# The machine has torch, torchvision, timm, h5py, typer, rich, pandas, scikit-learn but no
# keras: .whl/ carries keras and what it needs that the machine lacks (namex, optree; see
# README.md here for the download command). They go into /tmp/site; plantkit itself is
# imported from the checkout (PYTHONPATH; plantkit_cli.py maps commands/ to
# plantkit.commands, which only an install does otherwise). Everything ends within 8 minutes
# (the suite's own budget is 450 s; `timeout` is the backstop). Left under $OUT:
# results.jsonl (the JSON lines), suite.log (JSON lines and progress), env.txt,
# logs.tar.gz (every step's output).
set -uo pipefail
out="${OUT:-/tmp/plantkit-gpu-out}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH="/tmp/site:$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=torch PYTHON=python3 PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    nproc
    python3 -c 'import sys, torch, torchvision, timm, keras, typer, rich, numpy
print(sys.version.split()[0], "torch", torch.__version__, "torchvision", torchvision.__version__,
      "timm", timm.__version__, "keras", keras.__version__, "typer", typer.__version__,
      "numpy", numpy.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$out/env.txt"
timeout -k 10 470 bash benchmarks/gpu/suite.sh --out "$out/results.jsonl" "$@" 2>&1 \
    | tee "$out/suite.log"
rc=${PIPESTATUS[0]}
tar czf "$out/logs.tar.gz" -C /tmp/plantkit-gpu-suite logs 2>/dev/null
exit "$rc"
