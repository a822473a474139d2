#!/bin/sh
# Builds the web page's module: the library for wasm32 with the `web` feature (Debian's rustc-web,
# std rebuilt), then wasm-bindgen's JS glue into web/pkg/. Serve web/ as a static folder, e.g.
# `python3 -m http.server -d web 8080`, and open http://localhost:8080 (WebGPU needs a secure
# context: localhost counts). Needs the tools listed in scripts/test-web.sh.
set -eu
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/wasm"
PATH="$HOME/.cargo/bin:$PATH"
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$target" /usr/bin/cargo rustc --lib \
  --release --target wasm32-unknown-unknown --no-default-features --features web \
  -Zbuild-std=std,panic_abort --crate-type cdylib
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  "$target/wasm32-unknown-unknown/release/bnn_transfer.wasm"
ls -l web/pkg/bnn_transfer_bg.wasm
