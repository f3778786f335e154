#!/usr/bin/env bash
# The campaign's pilot runs (training/README.md, "The campaign"): each continues the shipped student for the
# same 6,400 images on the same split and differs from training/pilots/lshm2_pilot_lspet_128.yaml only in
# the overrides below; then each is scored on lspet@8500:9000 and all are compared in one table and chart.
#   bash training/pilots/run.sh NAME...      (no NAME: all; two at a time with one thread each on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGEPOSE=${STAGEPOSE:-.venv/bin/stagepose}
BASE=training/pilots/lshm2_pilot_lspet_128.yaml
OUT=${OUT:-runs/pilots}
VAL=lspet:../shared/data/lspet@8500:9000

declare -A PILOT=(
  [rmsprop5e-4]=""
  [adamw1e-3]="optim.name=adamw optim.lr=1.0e-3 optim.weight_decay=1.0e-4"
  [sigma1.5]="data.heatmap_sigma=1.5"
  [lightaug]="data.augment.rotation_deg=15 data.augment.scale=0.15 data.augment.occlusion_prob=0.2 data.augment.half_body_prob=0.0"
  [batch32]="data.batch_size=32 train.max_steps=200 optim.lr=7.0e-4 schedule.warmup_steps=20"
  [kd-mediapipe]="teacher.labels=training/labels/lspet_mediapipe.json distill.sigma=0.1 distill.start_kd_weight=0.6"
)

train() {  # NAME OVERRIDES...
  local name=$1; shift
  nice -n 5 env OMP_NUM_THREADS=1 "$STAGEPOSE" train --no-progress --config "$BASE" "$@" \
    train.out_dir="$OUT/$name" > "$OUT/$name.out" 2>&1
}

run_one() {
  local name=$1
  mkdir -p "$OUT"
  if [[ $name == progressive64-128 ]]; then
    # 400 steps at 64x64 (a quarter of the compute of a 128 step) then 300 at 128: the budget of 400 at 128
    train "$name-64" data.input_size=64 train.max_steps=400
    train "$name" model.init="$OUT/$name-64/best.safetensors" train.max_steps=300
  else
    # shellcheck disable=SC2086
    train "$name" ${PILOT[$name]}
  fi
  nice -n 5 env OMP_NUM_THREADS=1 "$STAGEPOSE" eval --checkpoint "$OUT/$name/best.pt" --data "$VAL" \
    --label "$name" --json "$OUT/$name/eval.json" > "$OUT/$name.eval.out" 2>&1
}

names=("$@")
((${#names[@]})) || names=(rmsprop5e-4 adamw1e-3 sigma1.5 lightaug batch32 progressive64-128 kd-mediapipe)
for ((i = 0; i < ${#names[@]}; i += 2)); do
  run_one "${names[i]}" &
  if ((i + 1 < ${#names[@]})); then run_one "${names[i + 1]}" & fi
  wait
done
"$STAGEPOSE" eval-compare "$OUT"/rmsprop5e-4/eval.json $(for n in "${names[@]}"; do [[ $n == rmsprop5e-4 ]] || echo "$OUT/$n/eval.json"; done) \
  --plot "$OUT/pilots.png"
