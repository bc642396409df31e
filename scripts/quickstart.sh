#!/usr/bin/env bash
# The whole default on the phantom, on a CPU machine: synth, ingest (2 ranks), train under
# mpirun -np 2 with experiments/configs/quickstart.toml, predict on the held-out test set,
# evaluate. Everything goes to ./out/quickstart/. Re-running starts over.
# The submission uses a fixed 0.5 threshold on the (unweighted, so calibrated) location
# probabilities; the seed's per-location mean + 1 std rule is evaluated beside it, because at a
# 3% prevalence it flags far more cells than there are aneurysms (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ANGIOTRAIN:-build/launcher/angiotrain}
OUT=${QUICKSTART_OUT:-out/quickstart}
RANKS=${RANKS:-2}
PATIENTS=${PATIENTS:-2400}
TEST_PATIENTS=${TEST_PATIENTS:-200}
RESOLUTION=${RESOLUTION:-128}
MPIRUN=(mpirun -np "$RANKS" --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)

rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }
now() { date +%s; }

# The phantom with larger, brighter sacs and no fusiform distractors (see datasets/phantom/PHANTOM.md):
# at 128 px the default sacs are 1-2 pixels wide, too small for a small model trained for a few
# minutes on a CPU. SYNTH_OPTIONS="" gives the default phantom.
SYNTH_OPTIONS=${SYNTH_OPTIONS---aneurysm-size 3,5 --contrast 2 --distractors 0}
step "synth: $PATIENTS train + $TEST_PATIENTS test phantom patients ($SYNTH_OPTIONS)"
# shellcheck disable=SC2086
"$BIN" synth --out "$OUT/data" --patients "$PATIENTS" --test-patients "$TEST_PATIENTS" --seed 1 \
  --resolution 256 $SYNTH_OPTIONS --quiet

step "ingest at ${RESOLUTION}px on $RANKS ranks"
"${MPIRUN[@]}" "$BIN" ingest --input "$OUT/data/train_set" --labels "$OUT/data/train_set/train.csv" \
  --out "$OUT/train.h5" --resolution "$RESOLUTION"
# The test set without labels: test.csv is the submission template (its label columns are all
# 0); the truth, groundtruth.csv, is only for evaluate.
"${MPIRUN[@]}" "$BIN" ingest --input "$OUT/data/test_set" --out "$OUT/test.h5" --resolution "$RESOLUTION"

step "train on $RANKS ranks (experiments/configs/quickstart.toml)"
start=$(now)
"${MPIRUN[@]}" "$BIN" train --config experiments/configs/quickstart.toml \
  --set data.volume="$OUT/train.h5" --set output.dir="$OUT/run" ${TRAIN_OPTIONS:-}
train_seconds=$(( $(now) - start ))

step "predict the test set"
THRESHOLD=${THRESHOLD:-fixed:0.5}
"${MPIRUN[@]}" "$BIN" predict --checkpoint "$OUT/run/last.pt" --input "$OUT/test.h5" \
  --template "$OUT/data/test_set/test.csv" --out "$OUT/output.csv" --threshold "$THRESHOLD"
"${MPIRUN[@]}" "$BIN" predict --checkpoint "$OUT/run/last.pt" --input "$OUT/test.h5" \
  --template "$OUT/data/test_set/test.csv" --out "$OUT/output_seed_rule.csv" --threshold mean+1std

step "evaluate against the ground truth (locations thresholded at $THRESHOLD)"
"$BIN" evaluate --pred "$OUT/output.csv" --truth "$OUT/data/test_set/groundtruth.csv" \
  --probabilities "$OUT/output.probabilities.csv" --json "$OUT/evaluation.json"
step "the seed's rule (mean + 1 std per location) on the same probabilities"
"$BIN" evaluate --pred "$OUT/output_seed_rule.csv" --truth "$OUT/data/test_set/groundtruth.csv" \
  --json "$OUT/evaluation_seed_rule.json" | sed -n '/K-ium figures/,/Exact/p'
printf '\ntraining took %d s of wall time on %d ranks; figures in %s/evaluation.json\n' \
  "$train_seconds" "$RANKS" "$OUT"
