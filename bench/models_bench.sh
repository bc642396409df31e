#!/bin/sh
# EfficientNet forward+backward on the CPU: angiotrain's B0 (C++) against torchvision's B0
# (/usr/bin/python3), same batch, channels, resolution, loss and thread count, alternated in
# one run. Prints one line per implementation and the time ratio angiotrain / torchvision.
# Usage: bench/models_bench.sh BUILD_DIR [THREADS...]   (default threads: 1 2)
# Build first: ninja -C BUILD_DIR angiotrain_models_bench
set -eu
build=${1:?usage: bench/models_bench.sh BUILD_DIR [THREADS...]}
shift
threads=${*:-1 2}
here=$(cd "$(dirname "$0")" && pwd)
args="--variant b0 --batch 8 --channels 8 --resolution 256 --steps ${STEPS:-5} --warmup 1"
for t in $threads; do
  # Both sides use the same BLAS and OpenMP thread counts.
  export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t
  ours=$("$build/bench/angiotrain_models_bench" $args --threads "$t")
  peer=$(/usr/bin/python3 "$here/models_bench_peer.py" $args --threads "$t")
  echo "$ours"
  echo "$peer"
  o=$(echo "$ours" | sed 's/.*median \([0-9.]*\) s.*/\1/')
  p=$(echo "$peer" | sed 's/.*median \([0-9.]*\) s.*/\1/')
  echo "threads $t: angiotrain/torchvision time ratio $(echo "$o $p" | awk '{printf "%.3f", $1 / $2}')"
done
