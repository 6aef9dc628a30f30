#!/usr/bin/env bash
# Device check (needs a real NVIDIA GPU): runbase records GPU model, memory, driver, CUDA,
# and samples per-GPU utilisation, memory, power and temperature (sys/gpu0/*).
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

# -- system metrics: the supervisor samples sys/gpu0/* (runbase run --system-interval 1).
# Holds ~2 GiB of GPU memory and keeps the GPU busy for ~12 s when torch is there;
# without torch, `sleep 12`: the GPU series are still sampled (idle figures).
cat > gpu_load.py <<'PY'
import time, torch
x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")  # 2 GiB held
y = torch.randn(8192, 8192, device="cuda")
t = time.time()
while time.time() - t < 12:
    y = torch.tanh(y @ y / 8192)
    torch.cuda.synchronize()
print("gpu load done")
PY
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  SYS_CMD=(python3 gpu_load.py); SYS_TORCH=1
else
  echo "no torch with CUDA here: sampling the GPU during 'sleep 12'"; SYS_CMD=(sleep 12); SYS_TORCH=0
fi
python3 -m runbase run --name sysmetrics --system-interval 1 -- "${SYS_CMD[@]}"
python3 -m runbase show --json --no-patch > "$OUT/sysmetrics.json"
SYS_TORCH=$SYS_TORCH python3 - "$OUT/sysmetrics.json" <<'PY' | tee "$OUT/sysmetrics.txt"
import json, os, sys
import runbase
rec = json.load(open(sys.argv[1]))
m = rec["metrics"]
run = runbase.get_run(rec["id"])
print("status:", rec["status"])
for k in sorted(m):
    if k.startswith("sys/") and m[k]["count"] == 0:
        print(f"{k} (summary) = {m[k]['value']}")
for k in sorted(k for k in m if k.startswith("sys/gpu0/")):
    print(f"{k}: count {m[k]['count']} min {m[k]['min']} max {m[k]['max']}")
    print("   ", [round(v, 1) for v in run.series(k).values])
need = {"util_percent", "mem_used_bytes", "mem_total_bytes", "temp_c"}
got = {k.rpartition("/")[2] for k in m if k.startswith("sys/gpu0/")}
assert rec["status"] == "finished", rec["status"]
assert need <= got, f"missing sys/gpu0/ series: {sorted(need - got)}"
assert m["sys/gpu0/util_percent"]["count"] >= 8, m["sys/gpu0/util_percent"]
assert m["sys/gpu0/mem_total_bytes"]["value"] > 10 * 2**30
assert 0 < m["sys/gpu0/temp_c"]["max"] < 120
if "power_w" in got:
    assert 0 < m["sys/gpu0/power_w"]["max"] < 2000
if os.environ.get("SYS_TORCH") == "1":
    assert m["sys/gpu0/mem_used_bytes"]["max"] >= 2 * 2**30, "the 2 GiB held were not seen"
    assert m["sys/gpu0/util_percent"]["max"] > 0, "the matmul loop was not seen"
print("SYSMETRICS CHECK OK")
PY
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
