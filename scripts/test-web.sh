#!/bin/sh
# The browser tests (tests/web.rs): the library built for wasm32 with Debian's rustc-web (std
# rebuilt: there is no packaged wasm32 std), run by wasm-bindgen-test-runner in headless Chromium
# with WebGPU on SwiftShader (flags in webdriver.json). Needs: rustc-web, cargo-web, rust-web-src,
# lld-22, chromium, chromium-driver (apt) and wasm-bindgen-cli of the Cargo.lock version
# (cargo install wasm-bindgen-cli --version 0.2.130). Builds into $CARGO_TARGET_DIR/wasm.
set -eu
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/wasm"
PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$target"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}"
exec /usr/bin/cargo test --release --target wasm32-unknown-unknown --no-default-features \
  --features web -Zbuild-std=std,panic_abort --test web "$@"
