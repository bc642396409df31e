#!/bin/sh
# EfficientNet-B0 forward+backward on the CPU: angiotrain (C++, angiotrain_models_bench) against
# torchvision (/usr/bin/python3, models_bench_peer.py): batch 8, 8 channels, 256x256, 22-logit
# head, BCE loss, same thread count, alternated in one run. Each side runs ROUNDS processes of
# STEPS timed steps (after one warm-up step); a side's figure is the median over its processes
# of their median step time, wall and CPU (process CPU time, all threads: less disturbed by
# other work on a shared machine), and the ratios are angiotrain / torchvision (below 1:
# angiotrain faster).
# Two allocator settings, the same for both sides: glibc defaults, and glibc with a 32 MiB mmap
# threshold and no trimming (large activations then reuse heap memory instead of being mapped,
# page-faulted and zeroed by the kernel on every step).
# Usage: bench/models_bench.sh BUILD_DIR [THREADS...]     (default threads: 1 2)
# Build first: ninja -C BUILD_DIR angiotrain_models_bench
set -eu
build=${1:?usage: bench/models_bench.sh BUILD_DIR [THREADS...]}
shift
threads=${*:-1 2}
here=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-2}
args="--variant b0 --batch 8 --channels 8 --resolution 256 --steps ${STEPS:-3} --warmup 1"
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
wall_time() { sed 's/.*median \([0-9.]*\) s.*/\1/'; }
cpu_time() { sed 's/.*cpu \([0-9.]*\) s.*/\1/'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
echo "machine: $(nproc) cores, $(uname -sr); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $threads; do
  for alloc in default tuned; do
    if [ "$alloc" = tuned ]; then
      set -- env MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296
    else
      set -- env
    fi
    ours="" peer="" ours_cpu="" peer_cpu=""
    r=0
    while [ "$r" -lt "$rounds" ]; do
      # Both sides get the same BLAS and OpenMP thread counts.
      o=$("$@" OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" "$build/bench/angiotrain_models_bench" $args --threads "$t")
      p=$("$@" OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" /usr/bin/python3 "$here/models_bench_peer.py" $args --threads "$t")
      echo "  [$alloc malloc] $o"
      echo "  [$alloc malloc] $p"
      ours="$ours $(echo "$o" | wall_time)" ours_cpu="$ours_cpu $(echo "$o" | cpu_time)"
      peer="$peer $(echo "$p" | wall_time)" peer_cpu="$peer_cpu $(echo "$p" | cpu_time)"
      r=$((r + 1))
    done
    om=$(echo "$ours" | tr ' ' '\n' | grep . | median)
    pm=$(echo "$peer" | tr ' ' '\n' | grep . | median)
    oc=$(echo "$ours_cpu" | tr ' ' '\n' | grep . | median)
    pc=$(echo "$peer_cpu" | tr ' ' '\n' | grep . | median)
    echo "threads $t, $alloc malloc: wall angiotrain $om s/step, torchvision $pm s/step, ratio $(ratio "$om" "$pm");" \
      "cpu angiotrain $oc s/step, torchvision $pc s/step, ratio $(ratio "$oc" "$pc")"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
