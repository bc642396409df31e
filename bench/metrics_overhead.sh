#!/usr/bin/env bash
# What live metrics cost a training step: `angiotrain train` on 2 ranks with [metrics] off, and
# on (an exposer per rank scraped every 250 ms by a real Prometheus found through the discovery
# folder, and pushes to a real Pushgateway at every epoch end), rounds alternating off/on.
# A tiny model (width 0.1, 32 px, batch 2) keeps steps short (tens of ms), so the per-step cost
# of the export weighs as much as it ever will. Mean training-step time per run, from the
# command's "train: completed after N steps in S s of training" line. The per-step cost measured
# where it is paid: build/bench/angiotrain_metrics_bench (ninja -C build angiotrain_metrics_bench).
# Usage: bench/metrics_overhead.sh [build/launcher/angiotrain]   (ROUNDS=5, EPOCHS=4)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/launcher/angiotrain}
WORK=$(mktemp -d /tmp/angiotrain-metrics-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$BIN" synth --out "$WORK/data" --patients 300 --seed 3 --resolution 64 --quiet
"$BIN" ingest --input "$WORK/data/train_set" --labels "$WORK/data/train_set/train.csv" --out "$WORK/train.h5" \
  --resolution 32 > /dev/null
mkdir -p "$WORK/sd"
PG=$(free_port)
PROM=$(free_port)
prometheus-pushgateway --web.listen-address="127.0.0.1:$PG" > "$WORK/pg.log" 2>&1 &
PIDS+=($!)
sed -e 's/scrape_interval: 15s/scrape_interval: 250ms/' -e 's/scrape_timeout: 10s/scrape_timeout: 200ms/' \
  -e "s|/var/lib/angiotrain/discovery/\*.json|$WORK/sd/*.json|" -e "s/127.0.0.1:9091/127.0.0.1:$PG/" \
  monitoring/prometheus.yml > "$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM" --log.level=warn > "$WORK/prom.log" 2>&1 &
PIDS+=($!)
get() { /usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$1"; }
for _ in $(seq 100); do get "http://127.0.0.1:$PROM/-/ready" > /dev/null 2>&1 && break; sleep 0.2; done

cat > "$WORK/bench.toml" <<TOML
[data]
volume = "$WORK/train.h5"
validation_split = 0.25
[model]
variant = "b0"
width_mult = 0.1
depth_mult = 0.1
[train]
epochs = ${EPOCHS:-4}
batch_size = 2
lr = 1e-3
threads = 1
[output]
dir = "$WORK/run"
TOML

run() {  # off|on -> mean seconds per training step
  local extra=()
  [ "$1" = on ] && extra=(--set metrics.port=0 --set "metrics.discovery_dir=$WORK/sd"
                          --set "metrics.pushgateway=http://127.0.0.1:$PG" --set metrics.job=bench)
  rm -rf "$WORK/run"
  "${MPIRUN[@]}" -np 2 "$BIN" train --config "$WORK/bench.toml" "${extra[@]}" > "$WORK/log.$1" 2>&1
  sed -n 's/.*completed after \([0-9]*\) steps in \([0-9.]*\) s of training.*/\2 \1/p' "$WORK/log.$1" |
    awk '{printf "%.5f\n", $1 / $2}'
}
ROUNDS=${ROUNDS:-5}
: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
  off=$(run off)
  on=$(run on)
  echo "$off $on" | tee -a "$WORK/rounds" >&2
done
scraped=$(get "http://127.0.0.1:$PROM/api/v1/query?query=count(count_over_time(angiotrain_train_loss%7Bjob%3D%22bench%22%7D%5B1h%5D))")
/usr/bin/python3 - "$WORK/rounds" "$scraped" <<'PY'
import json, statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
print("machine: %s" % open("/proc/cpuinfo").read().count("processor\t:"), "CPUs; 2 ranks x 1 thread, EfficientNet-B0 width/depth 0.1, 32 px, batch 2")
for k, (off, on) in enumerate(rows, 1):
    print(f"  round {k}: off {off*1000:7.2f} ms/step, on {on*1000:7.2f} ms/step, on/off {on/off:.4f}")
ratios = [on / off for off, on in rows]
print(f"median step time: off {statistics.median(r[0] for r in rows)*1000:.2f} ms, "
      f"on {statistics.median(r[1] for r in rows)*1000:.2f} ms; median on/off ratio {statistics.median(ratios):.4f}")
result = json.loads(sys.argv[2]).get("data", {}).get("result", [])
print("Prometheus scraped the 'on' runs:", "yes" if result else "NO (check the set-up)")
PY
