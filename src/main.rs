//! `bnn`: the command-line front of bnn-transfer. Thin: parses arguments and calls the library.

mod cli;

fn main() -> anyhow::Result<()> {
    cli::run()
}
