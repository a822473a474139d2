#!/usr/bin/env bash
# The paper's experiment on this project's data, end to end (docs/RESULTS.md holds its results):
#   1. pretrain the small binary network and its float twin on the Tiny-ImageNet subset, same schedule;
#   2. export the binary one to a packed extractor (also the embedded default under assets/);
#   3. train the same network from scratch on Flowers-102 (the lower baseline);
#   4. transfer to Flowers-102 (official split) retraining the last 1, 2 and 3 layers, with the
#      binary extractor and the float twin, and score the scratch network, in one table.
# Every step resumes: a finished pretraining is skipped, an interrupted one continues (--resume).
# Usage: scripts/reproduce.sh [EPOCHS] [SCRATCH_EPOCHS]   (environment: DATA, RUNS, BNN,
# CARGO_TARGET_DIR)
set -euo pipefail
EPOCHS=${1:-6}
SCRATCH_EPOCHS=${2:-30}
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
BNN=${BNN:-${CARGO_TARGET_DIR:-target}/release/bnn}
[ -x "$BNN" ] || cargo build --release
mkdir -p "$RUNS/logs"

pretrain() { # data precision epochs out
  local extra=()
  if [ -f "$4/report.json" ] && grep -q "\"epochs_done\": $3," "$4/report.json"; then
    echo "$4: done"; return
  fi
  [ -f "$4/config.json" ] && extra=(--resume)
  "$BNN" pretrain --data "$1" --arch small --precision "$2" --epochs "$3" --out "$4" "${extra[@]}" \
    2>&1 | tee -a "$RUNS/logs/$(basename "$4").log"
}

pretrain "$DATA/tinyimagenet-64.tar" binary "$EPOCHS" "$RUNS/ti-small-binary"
pretrain "$DATA/tinyimagenet-64.tar" float "$EPOCHS" "$RUNS/ti-small-float"
pretrain "$DATA/flowers102-64.tar" binary "$SCRATCH_EPOCHS" "$RUNS/flowers-scratch-binary"

"$BNN" export --checkpoint "$RUNS/ti-small-binary" --out "$RUNS/bnn-small-tinyimagenet.safetensors"

"$BNN" transfer --model "$RUNS/bnn-small-tinyimagenet.safetensors" \
  --data "$DATA/flowers102-64.tar" --retrain 1,2,3 \
  --float-twin "$RUNS/ti-small-float" --scratch "$RUNS/flowers-scratch-binary" \
  --out "$RUNS/transfer-flowers" 2>&1 | tee "$RUNS/logs/transfer-flowers.log"
