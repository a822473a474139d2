//! `bnn`: the command-line front of bnn-transfer. Thin: parses arguments and calls the library.
//! There is no command line in a browser: on wasm32 (`tests/web.rs` builds every target) the
//! binary is an empty stub; the page's entry point is `src/web.rs`.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
