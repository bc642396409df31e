#!/usr/bin/env bash
# Does angiotrain learn as well as PyTorch (issue 16)? The quickstart's volumes and recipe, trained
# by angiotrain on 2 ranks x 8 and on 1 rank x 16 (separating per-rank BatchNorm statistics from the
# rest; SIDES may add 2x8sync, 2 ranks x 8 with train.batchnorm = "sync") and by the PyTorch peer (bench/quality_peer.py, 1 process, batch 16, 2 threads) on exactly
# the angiotrain run's training rows, each scored on the test set by `angiotrain evaluate` (0.5
# location threshold), over SEEDS; prints each run and then mean and spread per side.
#   PATIENTS=2400 EPOCHS=12 SEEDS="1 2 3" bench/quality_peer.sh [build/launcher/angiotrain]
# Smaller PATIENTS / TEST_PATIENTS / EPOCHS give a quick, reduced-scale run. Work: QUALITY_OUT.
# SUMMARY_ONLY=1 prints the table of runs already finished (for SEEDS and SIDES) without training.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/launcher/angiotrain}
OUT=${QUALITY_OUT:-out/quality}
PATIENTS=${PATIENTS:-2400}
TEST_PATIENTS=${TEST_PATIENTS:-200}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-1 2 3}
SIDES=${SIDES:-2x8 1x16 torch}
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
now() { date +%s; }
mkdir -p "$OUT"
# A private copy of the binary: a rebuild of the shared build folder mid-run must not change it.
cp "$BIN" "$OUT/angiotrain.bin.tmp" && mv "$OUT/angiotrain.bin.tmp" "$OUT/angiotrain" && BIN="$OUT/angiotrain"

# The quickstart's volumes (same synth options and seed as scripts/quickstart.sh), made once per
# scale and reused: reruns with the same PATIENTS / TEST_PATIENTS skip this.
DATA="$OUT/data-$PATIENTS-$TEST_PATIENTS"
if [ ! -f "$DATA/test.h5" ]; then
  rm -rf "$DATA"
  "$BIN" synth --out "$DATA/src" --patients "$PATIENTS" --test-patients "$TEST_PATIENTS" --seed 1 \
    --resolution 256 --aneurysm-size 3,5 --contrast 2 --distractors 0 --quiet
  "${MPIRUN[@]}" -np 2 "$BIN" ingest --input "$DATA/src/train_set" --labels "$DATA/src/train_set/train.csv" \
    --out "$DATA/train.h5" --resolution 128 > /dev/null
  "${MPIRUN[@]}" -np 2 "$BIN" ingest --input "$DATA/src/test_set" --out "$DATA/test.h5" --resolution 128 > /dev/null
fi
TRUTH="$DATA/src/test_set/groundtruth.csv"

evaluate() {  # dir: scores dir/output.csv (+ sidecar) into dir/evaluation.json
  "$BIN" evaluate --pred "$1/output.csv" --truth "$TRUTH" --probabilities "$1/output.probabilities.csv" \
    --json "$1/evaluation.json" > /dev/null
}

angiotrain_side() {  # ranks batch threads seed dir batchnorm
  local start
  start=$(now)
  "${MPIRUN[@]}" -np "$1" "$BIN" train --config experiments/configs/quickstart.toml \
    --set data.volume="$DATA/train.h5" --set output.dir="$5" --set train.epochs="$EPOCHS" \
    --set train.batch_size="$2" --set train.threads="$3" --set train.seed="$4" \
    --set train.batchnorm="$6" > "$5.log" 2>&1
  echo $(( $(now) - start )) > "$5/train_seconds"
  "${MPIRUN[@]}" -np "$1" "$BIN" predict --checkpoint "$5/last.pt" --input "$DATA/test.h5" \
    --template "$DATA/src/test_set/test.csv" --out "$5/output.csv" --threshold fixed:0.5 >> "$5.log" 2>&1
  evaluate "$5"
}

for seed in $SEEDS; do
  [ -n "${SUMMARY_ONLY:-}" ] && break
  for side in $SIDES; do
    dir="$OUT/runs-$PATIENTS-$EPOCHS/seed$seed-$side"
    rm -rf "$dir" && mkdir -p "$(dirname "$dir")"
    echo "== seed $seed: $side (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    case $side in
      2x8) angiotrain_side 2 8 1 "$seed" "$dir" batch ;;
      2x8sync) angiotrain_side 2 8 1 "$seed" "$dir" sync ;;
      1x16) angiotrain_side 1 16 2 "$seed" "$dir" batch ;;
      torch)
        # The rows of the seed's 2 x 8 run (the split depends on data.split_seed only, so every
        # angiotrain side trains on these rows too).
        held_out="$OUT/runs-$PATIENTS-$EPOCHS/seed$seed-2x8/validation_predictions.csv"
        [ -f "$held_out" ] || { echo "quality_peer: $held_out missing (run the 2x8 side first)" >&2; exit 1; }
        /usr/bin/python3 bench/quality_peer.py --train "$DATA/train.h5" --exclude "$held_out" --test "$DATA/test.h5" \
          --out "$dir" --seed "$seed" --epochs "$EPOCHS" --threads 2 > "$dir.log" 2>&1 ||
          { echo "quality_peer: the PyTorch peer failed, see $dir.log" >&2; exit 1; }
        evaluate "$dir" ;;
      *) echo "quality_peer: unknown side '$side' (expected 2x8, 2x8sync, 1x16 or torch)" >&2; exit 1 ;;
    esac
  done
done

/usr/bin/python3 - "$OUT/runs-$PATIENTS-$EPOCHS" "$SEEDS" "$SIDES" "$PATIENTS" "$EPOCHS" <<'PY'
import json, os, statistics, sys
root, seeds, sides = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
names = {"2x8": "angiotrain, 2 ranks x 8", "2x8sync": "angiotrain, 2 ranks x 8, synchronised BatchNorm",
         "1x16": "angiotrain, 1 rank x 16", "torch": "PyTorch, 1 process, batch 16"}
cols = ["presence AUROC", "mean location AUROC", "location accuracy (0.5)", "final train loss", "training time (s)"]

def figures(d):
    e = json.load(open(os.path.join(d, "evaluation.json")))
    if os.path.exists(os.path.join(d, "peer.json")):
        p = json.load(open(os.path.join(d, "peer.json")))
        loss, secs = p["final_train_loss"], p["train_seconds"]
    else:
        loss = json.loads(open(os.path.join(d, "metrics.jsonl")).readlines()[-1])["train_loss"]
        secs = float(open(os.path.join(d, "train_seconds")).read())
    return [e["aneurysm_auroc"], e["macro_auroc"], e["location_accuracy"], loss, secs], e["no_location_accuracy"]

print(f"patients {sys.argv[4]}, epochs {sys.argv[5]}, seeds {' '.join(seeds)}")
print("| seed | side | " + " | ".join(cols) + " |")
print("| --- | --- |" + " ---: |" * len(cols))
per_side = {s: [] for s in sides}
baseline = None
for seed in seeds:
    for s in sides:
        f, baseline = figures(os.path.join(root, f"seed{seed}-{s}"))
        per_side[s].append(f)
        print(f"| {seed} | {names[s]} | " + " | ".join("%.4f" % v if i < 4 else "%.0f" % v for i, v in enumerate(f)) + " |")
print(f"\n(no-location baseline {baseline:.4f})\n")
print("| side | " + " | ".join(cols) + " |")
print("| --- |" + " ---: |" * len(cols))
for s in sides:
    rows = per_side[s]
    cells = []
    for i in range(len(cols)):
        v = [r[i] for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else float("nan")
        cells.append(("%.4f ± %.4f" if i < 4 else "%.0f ± %.0f") % (statistics.mean(v), sd))
    print(f"| {names[s]} (mean ± sd over {len(rows)}) | " + " | ".join(cells) + " |")
PY
