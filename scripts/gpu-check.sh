#!/usr/bin/env bash
# GPU checks on a machine with a CUDA build of LibTorch 2.x from pip (torch, torchvision,
# nvidia-nccl-cu*), nvcc, CMake and Ninja, but without Open MPI, parallel HDF5 or the other
# Debian packages: those come as .debs in .gpu-deps/debs (scripts/gpu-deps.sh fetches them on a
# Debian 12 machine) and are unpacked into $PREFIX, never into /.
#
# 1. builds angiotrain (no OpenCV: no synth/ingest) against the pip LibTorch, with the NCCL backend;
# 2. runs the CUDA tests: the fp32 training step on CUDA (channels_last) against the CPU, bf16
#    autocast against fp32, the NCCL communicator and reducer on one rank;
# 3. trains the quickstart model on .gpu-deps/train.h5 under `mpirun -np 1` on CUDA (NCCL, bf16);
# 4. times a training step of EfficientNet-B0 (8 channels, 256 px, Adam) against PyTorch +
#    torchvision on the same card, bf16 autocast and fp32, alternating the two sides.
# Logs go to $OUT (default out/gpu-check); a summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
DEBS=${DEBS:-.gpu-deps/debs}
PREFIX=${PREFIX:-/opt/angiotrain-deps}
BUILD=${BUILD:-build-gpu}
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
BATCH=${BATCH:-64}
declare -a SUMMARY
note() { SUMMARY+=("$1"); echo "== $1"; }
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 ))s; }

# --- environment ------------------------------------------------------------------------------
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__)'
  (c++ --version || g++ --version) | head -1
  cmake --version | head -1
  echo "ninja $(ninja --version)"
  nproc
} 2>&1 | tee "$OUT/env.txt"
command -v c++ >/dev/null || command -v g++ >/dev/null || { note "no C++ compiler on this machine"; exit 1; }

# --- dependencies into a prefix -----------------------------------------------------------------
mkdir -p "$PREFIX"
for f in "$DEBS"/*.deb; do dpkg-deb -x "$f" "$PREFIX"; done
D=$PREFIX/usr
L=$D/lib/x86_64-linux-gnu
# Open MPI and PMIx were configured for /usr: tell them where they are now.
export OPAL_PREFIX=$D PMIX_INSTALL_PREFIX=$L/pmix2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
export PATH=$D/bin:$PATH
# System libraries stay first: the carried ones only fill the gaps (ld.so.conf order).
printf '%s\n' "$L" "$L/openmpi/lib" "$L/pmix2/lib" >/etc/ld.so.conf.d/zz-angiotrain-deps.conf && ldconfig
SITE=$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
nccl_h=$(find "$SITE/nvidia" /usr/local/cuda/include /usr/include -maxdepth 4 -name nccl.h 2>/dev/null | head -1)
NCCL_ROOT=$(dirname "$(dirname "$nccl_h")")
echo "nccl.h: ${nccl_h:-none}; NCCL_ROOT=$NCCL_ROOT" | tee -a "$OUT/env.txt"
WITH_NCCL=ON
[ -n "$nccl_h" ] || WITH_NCCL=AUTO
export LD_LIBRARY_PATH=$(find "$SITE/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
CUDA_ROOT=()
[ -d /usr/local/cuda ] && CUDA_ROOT=(-DCUDAToolkit_ROOT=/usr/local/cuda)
TORCH_MINOR=$("$PY" -c 'import torch; v = torch.__version__.split("."); print(int(v[0]) * 100 + int(v[1]))')
STD=17
[ "$TORCH_MINOR" -ge 213 ] && STD=20

# --- build --------------------------------------------------------------------------------------
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=$STD \
  -DANGIOTRAIN_WITH_OPENCV=OFF -DANGIOTRAIN_WITH_NCCL=$WITH_NCCL -DNCCL_ROOT="$NCCL_ROOT" \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$D" "${CUDA_ROOT[@]}" -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST \
  -DMPI_C_COMPILER=/nonexistent -DMPI_CXX_COMPILER=/nonexistent -DMPI_C_HEADER_DIR="$L/openmpi/include" \
  -DMPI_CXX_HEADER_DIR="$L/openmpi/include" -DMPI_C_LIB_NAMES=mpi -DMPI_CXX_LIB_NAMES=mpi \
  -DMPI_mpi_LIBRARY="$L/libmpi.so.40" -DMPI_CXX_SKIP_MPICXX=ON -DMPIEXEC_EXECUTABLE="$D/bin/mpirun.openmpi" \
  -DHDF5_C_COMPILER_EXECUTABLE=HDF5_C_COMPILER_EXECUTABLE-NOTFOUND -DHDF5_ROOT="$L/hdf5/openmpi" \
  -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON -DPython3_EXECUTABLE="$(command -v "$PY")" >"$OUT/configure.log" 2>&1
status=$?
tail -5 "$OUT/configure.log"
[ $status = 0 ] || { grep -m5 -A5 "CMake Error" "$OUT/configure.log"; note "configure FAILED ($(elapsed))"; exit 1; }
targets=(angiotrain angiotrain_models_tests angiotrain_distributed_tests)
[ "${GPU_CHECK_BENCH:-1}" = 0 ] || targets+=(angiotrain_models_bench)
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$OUT/build.log" 2>&1
status=$?
if [ $status != 0 ]; then
  grep -m20 -B2 -A8 "error" "$OUT/build.log"
  note "build FAILED ($(elapsed))"
  exit 1
fi
note "build ok (torch $TORCH_MINOR, C++$STD) at $(elapsed)"

# --- CUDA tests ----------------------------------------------------------------------------------
run_tests() {  # exe filter log
  "$BUILD/tests/$1" --gtest_filter="$2" >"$OUT/$3" 2>&1
  local s=$?
  local passed skipped failed
  # Each name once: gtest repeats skipped and failed tests in its closing list.
  passed=$(grep '^\[       OK \]' "$OUT/$3" | awk '{print $4}' | sort -u | wc -l)
  skipped=$(grep '^\[  SKIPPED \] [A-Za-z]' "$OUT/$3" | awk '{print $4}' | sort -u | wc -l)
  failed=$(grep '^\[  FAILED  \] [A-Za-z]' "$OUT/$3" | awk '{print $4}' | sort -u | wc -l)
  grep -E '^\[  (FAILED|SKIPPED) \] [A-Za-z]' "$OUT/$3" | sort -u | head -20
  note "$1 ($2): $passed passed, $skipped skipped, $failed failed, exit $s"
}
run_tests angiotrain_models_tests 'CudaTrainingStep.*:AutocastScope.*:ParsePrecision.*' models_tests.log
run_tests angiotrain_distributed_tests 'NcclCommunicator.*:ProcessContext.*:MakeCommunicator.*' distributed_tests.log
grep -E 'error|Failure' -A3 "$OUT/models_tests.log" | head -30

# --- the trainer on CUDA under mpirun ------------------------------------------------------------
for precision in bf16 fp32; do
  mpirun.openmpi -np 1 "$BUILD/launcher/angiotrain" train --config experiments/configs/quickstart.toml \
    --set data.volume=.gpu-deps/train.h5 --set output.dir="/tmp/gpu-run-$precision" --set train.device=cuda \
    --set train.precision=$precision --set train.epochs=4 --set train.batch_size=16 \
    --set output.checkpoint_every_steps=0 >"$OUT/train-$precision.log" 2>&1
  s=$?
  grep -E '^(training|epoch|train:)' "$OUT/train-$precision.log" | tail -6
  [ $s = 0 ] || tail -20 "$OUT/train-$precision.log"
  note "train on cuda, $precision, mpirun -np 1: exit $s; $(grep -o 'on cuda:[0-9]' "$OUT/train-$precision.log" | head -1); last: $(grep '^epoch 4/4' "$OUT/train-$precision.log" | sed 's/  */ /g' | cut -c1-120)"
done

# --- throughput against PyTorch on the same card ------------------------------------------------
if [ "${GPU_CHECK_BENCH:-1}" = 0 ]; then
  echo; printf '%s\n' "================ gpu-check summary ($(head -1 "$OUT/env.txt"); $(elapsed)) ================" "${SUMMARY[@]}"
  exit 0
fi
bench_args="--variant b0 --channels 8 --resolution 256 --batch $BATCH --device cuda --optimizer adam --steps 30 --warmup 8"
: >"$OUT/bench.log"
for round in 1 2; do
  for precision in bf16 fp32; do
    "$BUILD/bench/angiotrain_models_bench" $bench_args --precision $precision 2>&1 | tee -a "$OUT/bench.log"
    "$PY" bench/models_bench_peer.py $bench_args --precision $precision 2>&1 | grep -v Warning | tee -a "$OUT/bench.log"
  done
done
for precision in bf16 fp32; do
  ours=$(grep "^angiotrain .* $precision optimizer" "$OUT/bench.log" | sed 's/.*, \([0-9.]*\) images\/s/\1/' | sort -n | tail -1)
  peer=$(grep "^torchvision .* $precision optimizer" "$OUT/bench.log" | sed 's/.*, \([0-9.]*\) images\/s/\1/' | sort -n | tail -1)
  ratio=$(echo "$ours ${peer:-0}" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "n/a" }')
  note "B0 train step, batch $BATCH, 8x256x256, Adam, $precision: angiotrain $ours img/s, PyTorch $peer img/s, ratio $ratio (best of 2)"
done

echo
echo "================ gpu-check summary ($(head -1 "$OUT/env.txt"); $(elapsed)) ================"
printf '%s\n' "${SUMMARY[@]}"
