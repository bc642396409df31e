#!/usr/bin/env bash
# Data-parallel training throughput on this machine: angiotrain train (EfficientNet-B0, 8
# channels, 128x128, batch 8 per rank, Adam, multitask) on 1 rank and on 2 ranks with one
# intra-op thread each, and the PyTorch DistributedDataParallel (gloo) peer with the same model
# and batch, in one run. Usage: bench/train_bench.sh [build/launcher/angiotrain]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/launcher/angiotrain}
WORK=$(mktemp -d /tmp/angiotrain-train-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
PATIENTS=${PATIENTS:-384}  # 48 steps on 1 rank x 8; 24 steps per rank on 2 ranks x 8 (the peer too)

"$BIN" synth --out "$WORK/data" --patients "$PATIENTS" --seed 3 --resolution 256 --quiet
"$BIN" ingest --input "$WORK/data/train_set" --labels "$WORK/data/train_set/train.csv" --out "$WORK/train.h5" \
  --resolution 128 > /dev/null
cat > "$WORK/bench.toml" <<TOML
[data]
volume = "$WORK/train.h5"
validation_split = 0.0
[model]
variant = "b0"
task = "multitask"
[train]
epochs = 1
batch_size = 8
lr = 1e-4
threads = 1
[output]
dir = "$WORK/run"
TOML

run() {  # ranks
  "${MPIRUN[@]}" -np "$1" "$BIN" train --config "$WORK/bench.toml" --set output.dir="$WORK/run$1" > "$WORK/log$1"
  local rate data reduce
  rate=$(/usr/bin/python3 -c "import json;print('%.2f'%json.loads(open('$WORK/run$1/metrics.jsonl').readlines()[-1])['samples_per_second'])")
  data=$(/usr/bin/python3 -c "import json;print('%.1f'%(100*json.loads(open('$WORK/run$1/metrics.jsonl').readlines()[-1])['data_wait_share']))")
  reduce=$(/usr/bin/python3 -c "import json;print('%.1f'%(100*json.loads(open('$WORK/run$1/metrics.jsonl').readlines()[-1])['allreduce_wait_share']))")
  echo "$rate $data $reduce"
}
ROUNDS=${ROUNDS:-5}
# The machines are noisy (shared vCPUs): the three runs alternate, ROUNDS times, and the figures
# are medians over rounds, with each round's ratios listed.
: > "$WORK/rounds"
for round in $(seq "$ROUNDS"); do
  read -r r1 d1 a1 <<< "$(run 1)"
  read -r r2 d2 a2 <<< "$(run 2)"
  peer=$(/usr/bin/python3 bench/train_bench_peer.py --ranks 2 --batch 8 --resolution 128 --steps $((PATIENTS / 16)) --warmup 2 |
         sed -n 's/.*: \([0-9.]*\) samples\/s.*/\1/p')
  echo "$r1 $r2 $d1 $a1 $d2 $a2 $peer" | tee -a "$WORK/rounds" >&2
done
/usr/bin/python3 - "$WORK/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
print("machine: 2-core Debian 12 CPU; EfficientNet-B0 8ch 128x128, batch 8 per rank, 1 thread per rank")
print(f"rounds: {len(rows)} (median of each figure over rounds)")
for k, r in enumerate(rows, 1):
    print(f"  round {k}: 1 rank {r[0]:6.2f}, 2 ranks {r[1]:6.2f}, DDP {r[6]:6.2f} samples/s;"
          f" efficiency {r[1] / (2 * r[0]):.2f}, angiotrain/DDP {r[1] / r[6]:.2f}")
print(f"angiotrain 1 rank : {med(0):6.2f} samples/s  (data wait {med(2):.1f}%, all-reduce wait {med(3):.1f}% of step time)")
print(f"angiotrain 2 ranks: {med(1):6.2f} samples/s  (data wait {med(4):.1f}%, all-reduce wait {med(5):.1f}% of step time)")
print(f"weak-scaling efficiency, median over rounds of samples/s(2) / (2 x samples/s(1)) = "
      f"{statistics.median(r[1] / (2 * r[0]) for r in rows):.2f}")
print(f"PyTorch DDP gloo 2 ranks: {med(6):6.2f} samples/s; angiotrain / DDP, median over rounds = "
      f"{statistics.median(r[1] / r[6] for r in rows):.2f}")
PY
