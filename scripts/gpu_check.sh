#!/usr/bin/env bash
# Device check (needs a real NVIDIA GPU): runbase records GPU model, memory, driver, CUDA.
# Usage on the device machine: bash scripts/gpu_check.sh [OUTDIR]
set -euo pipefail
OUT=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
WORK=$(mktemp -d); cd "$WORK"; git init -q .
cat > train_gpu.py <<'PY'
import argparse, torch, runbase
p = argparse.ArgumentParser(); p.add_argument("--steps", type=int, default=50); a = p.parse_args()
x = torch.randn(4096, 4096, device="cuda")
for i in range(a.steps):
    x = torch.tanh(x @ x.T / 4096)
    runbase.log(norm=float(x.norm()), step=i)
print("done on", torch.cuda.get_device_name(0))
PY
python3 -m runbase run -- python3 train_gpu.py --steps 50
python3 -m runbase show
python3 -m runbase show --json --no-patch > "$OUT/record.json"
python3 - "$OUT/record.json" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
gpus = rec["env"]["gpus"]
print("status:", rec["status"], "norm points:", rec["metrics"]["norm"]["count"])
print("gpus:", json.dumps(gpus, indent=1))
assert rec["status"] == "finished" and gpus and gpus[0]["memory_total_bytes"] > 10 * 2**30 and gpus[0]["name"]
print("GPU CHECK OK")
PY
