#!/usr/bin/env bash
# The paper's experiment on this project's data, end to end (docs/RESULTS.md holds its results):
#   1. pretrain the small binary network and its float twin on the Tiny-ImageNet subset, same schedule;
#   2. export the binary one to a packed extractor (the embedded default before issue 14);
#   3. train the same network from scratch on Flowers-102 (the lower baseline);
#   4. transfer to Flowers-102 (official split) retraining the last 1, 2 and 3 layers, with the
#      binary extractor and the float twin, and score the scratch network, in one table;
#   5. the same for the Bi-Real backbone (issue 14, the embedded default under assets/): the binary
#      `small-bireal` with α distilled from the plain float twin, its own float twin, its scratch
#      run, export and transfer; and the two-step training row;
#   6. issue 22: the Bi-Real backbone distilled from EfficientNet-Lite0 (ImageNet-1k weights; its
#      labels, soft logits over the 200 classes and 1280-d features) for LITE0_EPOCHS epochs, export,
#      and transfer with the Lite0 baseline row beside it (not adopted as the default);
#   7. issue 22: `wide-bireal` (conv2-5 at 256, fc 1024) distilled from Lite0 with labels for
#      WIDE_EPOCHS epochs, export, transfer with the Lite0 row; and its float twin, the same way.
# Every step resumes: a finished pretraining is skipped, an interrupted one continues (--resume).
# Usage: scripts/reproduce.sh [EPOCHS] [SCRATCH_EPOCHS] [LITE0_EPOCHS] [WIDE_EPOCHS]   (environment: DATA, RUNS,
# BNN, CARGO_TARGET_DIR, BNN_TEACHER: the Lite0 weights, default ../shared/teachers/...)
set -euo pipefail
EPOCHS=${1:-6}
SCRATCH_EPOCHS=${2:-30}
LITE0_EPOCHS=${3:-8}
WIDE_EPOCHS=${4:-12}
TEACHER=${BNN_TEACHER:-../shared/teachers/efficientnet-lite0/efficientnet-lite0-57934424.pth}
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
BNN=${BNN:-${CARGO_TARGET_DIR:-target}/release/bnn}
[ -x "$BNN" ] || cargo build --release
mkdir -p "$RUNS/logs"

pretrain() { # data arch precision epochs out [flags...]
  local data=$1 arch=$2 precision=$3 epochs=$4 out=$5 extra=()
  shift 5
  if [ -f "$out/report.json" ] && grep -q "\"epochs_done\": $epochs," "$out/report.json"; then
    echo "$out: done"; return
  fi
  [ -f "$out/config.json" ] && extra=(--resume)
  "$BNN" pretrain --data "$data" --arch "$arch" --precision "$precision" --epochs "$epochs" \
    --out "$out" "$@" "${extra[@]}" 2>&1 | tee -a "$RUNS/logs/$(basename "$out").log"
}

TI="$DATA/tinyimagenet-64.tar"
FL="$DATA/flowers102-64.tar"

# The paper's plain BNN.
pretrain "$TI" small binary "$EPOCHS" "$RUNS/ti-small-binary"
pretrain "$TI" small float "$EPOCHS" "$RUNS/ti-small-float"
pretrain "$FL" small binary "$SCRATCH_EPOCHS" "$RUNS/flowers-scratch-binary"
"$BNN" export --checkpoint "$RUNS/ti-small-binary" --out "$RUNS/bnn-small-tinyimagenet.safetensors"
"$BNN" transfer --model "$RUNS/bnn-small-tinyimagenet.safetensors" \
  --data "$FL" --retrain 1,2,3 \
  --float-twin "$RUNS/ti-small-float" --scratch "$RUNS/flowers-scratch-binary" \
  --out "$RUNS/transfer-flowers" 2>&1 | tee "$RUNS/logs/transfer-flowers.log"

# Issue 14: Bi-Real blocks + α + distillation from the plain float twin (the embedded default).
pretrain "$TI" small binary "$EPOCHS" "$RUNS/ti-small-binary-distil" --teacher "$RUNS/ti-small-float"
pretrain "$TI" small-bireal binary "$EPOCHS" "$RUNS/ti-bireal-binary-distil" --weight-scale \
  --teacher "$RUNS/ti-small-float"
pretrain "$TI" small-bireal float "$EPOCHS" "$RUNS/ti-bireal-float"
pretrain "$FL" small-bireal binary "$SCRATCH_EPOCHS" "$RUNS/flowers-scratch-bireal" --weight-scale
"$BNN" export --checkpoint "$RUNS/ti-bireal-binary-distil" --float-twin "$RUNS/ti-bireal-float" \
  --out "$RUNS/bnn-small-bireal-tinyimagenet.safetensors"
"$BNN" transfer --model "$RUNS/bnn-small-bireal-tinyimagenet.safetensors" \
  --data "$FL" --retrain 1,2,3 \
  --float-twin "$RUNS/ti-bireal-float" --scratch "$RUNS/flowers-scratch-bireal" \
  --out "$RUNS/transfer-flowers-bireal" 2>&1 | tee "$RUNS/logs/transfer-flowers-bireal.log"
# Ablation: the same Bi-Real network with two-step training (real-valued weights first).
pretrain "$TI" small-bireal binary "$EPOCHS" "$RUNS/ti-bireal-binary-distil-2step" --weight-scale \
  --teacher "$RUNS/ti-small-float" --float-weight-epochs $((EPOCHS / 2))

# Issue 22: distilled from EfficientNet-Lite0 (compared with the default; not adopted).
pretrain "$TI" small-bireal binary "$LITE0_EPOCHS" "$RUNS/ti-bireal-lite0" --weight-scale \
  --batch-size 64 --lr 0.002 --schedule cosine --seed 0 --teacher "$TEACHER"
"$BNN" export --checkpoint "$RUNS/ti-bireal-lite0" --out "$RUNS/bnn-small-bireal-lite0.safetensors"
"$BNN" transfer --model "$RUNS/bnn-small-bireal-lite0.safetensors" \
  --data "$FL" --retrain 1,2,3 --baseline efficientnet-lite0 --baseline-weights "$TEACHER" \
  --out "$RUNS/transfer-flowers-lite0" 2>&1 | tee "$RUNS/logs/transfer-flowers-lite0.log"
# Issue 22: a student twice as wide (conv2-5 at 256, fc 1024), Lite0 with labels, 12 epochs;
# and its float twin trained the same way.
pretrain "$TI" wide-bireal binary "$WIDE_EPOCHS" "$RUNS/ti-wide-lite0" --weight-scale \
  --batch-size 64 --lr 0.002 --schedule cosine --seed 0 --teacher "$TEACHER" --kd-labels 1
"$BNN" export --checkpoint "$RUNS/ti-wide-lite0" --out "$RUNS/bnn-wide-bireal-lite0.safetensors"
"$BNN" transfer --model "$RUNS/bnn-wide-bireal-lite0.safetensors" \
  --data "$FL" --retrain 1,2,3 --baseline efficientnet-lite0 --baseline-weights "$TEACHER" \
  --out "$RUNS/transfer-flowers-wide" 2>&1 | tee "$RUNS/logs/transfer-flowers-wide.log"
pretrain "$TI" wide-bireal float "$WIDE_EPOCHS" "$RUNS/ti-wide-lite0-float" \
  --batch-size 64 --lr 0.002 --schedule cosine --seed 0 --teacher "$TEACHER" --kd-labels 1
