#!/usr/bin/env bash
# Accelerator throughput of the paper protocol: the README Inception-like cell, the paper config
# (stem 128, 3x3 modules, 32x32, global batch 256), synthetic data, all local devices, pmap.
# Prints images/s, achieved FLOP/s (XLA cost analysis of the compiled step) against the card's
# peak, and compile time.
#
#   bench/gpu.sh                 # on a GPU machine (bf16 compute, 50 timed steps)
#   bench/gpu.sh --smoke         # CPU dry run of the same script with the tiny config
#   STEPS=100 DTYPE=float32 PEAK_TFLOPS=494 bench/gpu.sh   # e.g. tf32 dense peak of an H200
#
# Peak default: H200 SXM dense bf16 = 989 TFLOP/s per GPU (NVIDIA datasheet, 1,979 with
# sparsity). With DTYPE=float32 pass the peak that applies to your precision setting.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [[ -x .venv/bin/python && -z "${PYTHON:-}" ]]; then PY=.venv/bin/python; fi
STEPS="${STEPS:-50}"
DTYPE="${DTYPE:-bfloat16}"
BATCH="${BATCH:-256}"
PEAK_TFLOPS="${PEAK_TFLOPS:-989}"
export TF_CPP_MIN_LOG_LEVEL=3
if [[ "${1:-}" == "--smoke" ]]; then
  export JAX_PLATFORMS=cpu
  exec "$PY" bench/bench_train.py --device-report --smoke --steps 3 --batch 64 --dtype float32 \
       --peak-tflops "$PEAK_TFLOPS"
fi
# Needs a CUDA build of jax on the GPU machine: pip install -U "jax[cuda12]"
"$PY" - <<'EOF'
import sys
import jax
print("jax", jax.__version__, "devices:", jax.devices())
if jax.default_backend() != "gpu":
    sys.exit("bench/gpu.sh: no GPU visible to jax (install jax[cuda12]); use --smoke for a CPU dry run")
EOF
exec "$PY" bench/bench_train.py --device-report --steps "$STEPS" --batch "$BATCH" --dtype "$DTYPE" \
     --peak-tflops "$PEAK_TFLOPS"
