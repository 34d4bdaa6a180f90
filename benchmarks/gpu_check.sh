#!/usr/bin/env bash
# GPU check for jaxbell: the GPU-marked tests, the grid throughput benchmark, the batched
# searches' and qubit solver's throughput, then the batched certified solver's points/s (issue
# 20), in under 5 minutes (at most 20 + 120 + 100 + 55 + 60 s by the timeouts with
# TIMEOUT_TESTS=60; set it so when the device time is short).
#
#   benchmarks/gpu_check.sh            # on a GPU machine, from anywhere (uses PYTHONPATH=repo)
#   benchmarks/gpu_check.sh --cpu      # dry run of every step on the CPU, with small grids
#
# Needs python with jax (CUDA build), numpy, scipy, numba, xarray, optax, tqdm and pytest; not
# zarr, dask, h5netcdf or cvxpy. Nothing is installed or downloaded. Prints the machine, the test results,
# for each grid measurement points/s and the ratio to the device's own floors (writing arrays of
# the output's size on the device; copying them to the host), and the problems/s of the batched
# search and the (slopes x starts)/s of the qubit solver, with their ratio to the host CPU.
# Writes gpu_check.json and gpu_batched.json beside the log.
# Environment: TIMEOUT_TESTS (s, default 120), TIMEOUT_BENCH (s, default 100), TIMEOUT_BATCHED
# (s, default 55), TIMEOUT_CERTIFIED (s, default 60), CERTIFIED_POINTS (default 4096), N (grid points per axis, default 512), HOST_N (default 256), OUT (folder for
# the JSON, default /tmp).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning}"
PY="${PYTHON:-python3}"
TIMEOUT_TESTS="${TIMEOUT_TESTS:-120}"
TIMEOUT_BENCH="${TIMEOUT_BENCH:-100}"
TIMEOUT_BATCHED="${TIMEOUT_BATCHED:-55}"
TIMEOUT_CERTIFIED="${TIMEOUT_CERTIFIED:-60}"
CERTIFIED_POINTS="${CERTIFIED_POINTS:-4096}"
N="${N:-512}"
HOST_N="${HOST_N:-256}"
OUT="${OUT:-/tmp}"
BUDGET=$((TIMEOUT_BENCH - 30))
BATCHED_BUDGET=$((TIMEOUT_BATCHED - 20))
BATCHED_SIZE=""
CHUNKS="20,22,24"

if [[ "${1:-}" == "--cpu" ]]; then
    echo "gpu_check: dry run on the CPU (small grids; ratios are not GPU numbers)"
    export JAX_PLATFORMS=cpu JAXBELL_GPU_TESTS_ON_CPU=1
    N=48 HOST_N=32 CHUNKS="14,16" BUDGET=60 BATCHED_SIZE="--small" CERTIFIED_POINTS=16
fi

t0=$SECONDS
echo "== machine ($(date -u +%Y-%m-%dT%H:%M:%SZ), repo $REPO)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv || true
fi
timeout 20 "$PY" - <<'EOF' || echo "gpu_check: could not describe the machine (continuing)"
import platform, jax, numpy, xarray
print(f"python {platform.python_version()}, jax {jax.__version__}, numpy {numpy.__version__}, "
      f"xarray {xarray.__version__}")
print(f"backend {jax.default_backend()}: {jax.devices()}")
for d in jax.local_devices():
    stats = d.memory_stats() or {}
    print(f"  {d}: {d.device_kind}, {stats.get('bytes_limit', 0) / 2**30:.1f} GiB usable")
EOF

echo "== GPU-marked tests (timeout ${TIMEOUT_TESTS}s)"
set +e
timeout "$TIMEOUT_TESTS" "$PY" -m pytest -m gpu tests/test_gpu.py -p no:cacheprovider -q -rs \
    -W "ignore::DeprecationWarning"
tests_rc=$?
set -e
echo "tests: exit status $tests_rc after $((SECONDS - t0)) s"

echo "== throughput (timeout ${TIMEOUT_BENCH}s, ${N}^3 grids, fields to host at ${HOST_N}^3)"
set +e
timeout "$TIMEOUT_BENCH" "$PY" benchmarks/gpu_throughput.py --n "$N" --host-n "$HOST_N" \
    --chunks "$CHUNKS" --budget "$BUDGET" --json "$OUT/gpu_check.json"
bench_rc=$?
set -e
echo "benchmark: exit status $bench_rc; numbers in $OUT/gpu_check.json"

echo "== batched searches and qubit solver (timeout ${TIMEOUT_BATCHED}s)"
set +e
timeout "$TIMEOUT_BATCHED" "$PY" benchmarks/gpu_batched.py $BATCHED_SIZE \
    --budget "$BATCHED_BUDGET" --json "$OUT/gpu_batched.json"
batched_rc=$?
set -e
echo "batched: exit status $batched_rc; numbers in $OUT/gpu_batched.json"

echo "== batched certified solver, key/bell/m=8 (timeout ${TIMEOUT_CERTIFIED}s)"
set +e
timeout "$TIMEOUT_CERTIFIED" "$PY" benchmarks/certified_batched.py --points "$CERTIFIED_POINTS" \
    --clarabel 0 --json "$OUT/gpu_certified.json"
certified_rc=$?
set -e
echo "certified: exit status $certified_rc; numbers in $OUT/gpu_certified.json"

echo "== gpu_check: tests rc=$tests_rc, benchmark rc=$bench_rc, batched rc=$batched_rc," \
    "certified rc=$certified_rc, total $((SECONDS - t0)) s"
if [[ $tests_rc -ne 0 || $bench_rc -ne 0 || $batched_rc -ne 0 || $certified_rc -ne 0 ]]; then
    exit 1
fi
