#!/usr/bin/env bash
# Ingest throughput: angiotrain at -np 1 and -np 2 against the Python reference pipeline
# (bench/ingest_reference.py), on the same phantom folder, in one run. Each measurement runs
# twice after a warm-up read of the folder (page cache), and the best of the two is kept.
# Usage: bench/ingest_bench.sh [PATIENTS=1000] [BUILD=build]
set -euo pipefail
cd "$(dirname "$0")/.."
patients=${1:-1000}
bin=${2:-build}/launcher/angiotrain
work=$(mktemp -d /tmp/angiotrain-ingest-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mpi=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)

"$bin" synth --out "$work/data" --patients "$patients" --test-patients 0 --seed 7 --resolution 512 >/dev/null
cat "$work/data/train_set/"*.jpg > /dev/null  # warm the page cache for every contender
images=$((patients * 8))

best() {  # best wall time of two runs of "$@"
  local b=""
  for _ in 1 2; do
    rm -f "$work/out.h5"
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    local t; t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$b" ] || (( $(echo "$t < $b" | bc -l) )); then b=$t; fi
  done
  echo "$b"
}

ingest=(ingest --input "$work/data/train_set" --labels "$work/data/train_set/train.csv" --out "$work/out.h5" --resolution 256 --quiet)
t_py=$(best /usr/bin/python3 bench/ingest_reference.py "$work/data/train_set" "$work/data/train_set/train.csv" "$work/out.h5" 256)
t_np1=$(best "${mpi[@]}" -np 1 "$bin" "${ingest[@]}")
t_np2=$(best "${mpi[@]}" -np 2 "$bin" "${ingest[@]}")

rate() { echo "scale=0; $images / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '\n%-34s %10s %10s %14s\n' "ingest of $patients patients ($images JPEGs 512->256)" "seconds" "images/s" "vs python"
printf '%-34s %10.2f %10s %14s\n' "python reference (cv2 + h5py)" "$t_py" "$(rate "$t_py")" "1.00"
printf '%-34s %10.2f %10s %14s\n' "angiotrain ingest -np 1" "$t_np1" "$(rate "$t_np1")" "$(ratio "$t_py" "$t_np1")"
printf '%-34s %10.2f %10s %14s\n' "angiotrain ingest -np 2" "$t_np2" "$(rate "$t_np2")" "$(ratio "$t_py" "$t_np2")"
