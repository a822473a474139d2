//! Subcommand definitions (clap derive) and dispatch. Each subcommand lives in its own file with its
//! `Args` struct and a `run` function.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod bench;
#[cfg(feature = "train")]
mod demo;
mod devices;
#[cfg(feature = "train")]
mod export;
mod extract;
mod flags;
mod observe;
mod predict;
#[cfg(feature = "train")]
mod pretrain;
#[cfg(feature = "train")]
mod teacher;
#[cfg(feature = "train")]
mod transfer;

/// Binary neural networks as frozen, portable feature extractors (Leroux et al. 2017):
/// pretrain a ±1 network, freeze it into packed XNOR/popcount WGSL kernels, retrain float heads.
#[derive(Parser)]
#[command(name = "bnn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole slice in about a minute with nothing downloaded: the embedded binary backbone, a
    /// generated task, XNOR features, a head trained in burn, test accuracy and timing.
    #[cfg(feature = "train")]
    Demo(demo::Args),
    /// List every GPU adapter wgpu can see, its limits and features, and which one is the default.
    Devices(devices::Args),
    /// Train a binary network (or its float twin) on an image data set with burn.
    #[cfg(feature = "train")]
    Pretrain(pretrain::Args),
    /// Freeze a trained binary network into a packed extractor file (.safetensors).
    #[cfg(feature = "train")]
    Export(export::Args),
    /// Run an extractor file over a data set with the WGSL kernels and cache the features.
    Extract(extract::Args),
    /// Train float heads on a new task on top of the frozen binary extractor and score them.
    #[cfg(feature = "train")]
    Transfer(transfer::Args),
    /// Label images with a head from `bnn transfer` on top of the binary extractor.
    Predict(predict::Args),
    /// Score the EfficientNet-Lite0 teacher (ImageNet-1k weights) on a split of ImageNet classes.
    #[cfg(feature = "train")]
    Teacher(teacher::Args),
    /// Time the XNOR/popcount kernels against float WGSL, burn and the CPU path on one adapter.
    Bench(bench::Args),
}

/// Parses the command line and runs the subcommand. An error is printed with the library's
/// setting names written as this subcommand's flags ([`flags`]).
pub fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", flags::show(&format!("{e:?}")));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let command = Cli::command();
    let matches = command.clone().get_matches();
    if let Some((name, _)) = matches.subcommand() {
        flags::init(
            command
                .find_subcommand(name)
                .expect("a parsed subcommand exists"),
        );
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        #[cfg(feature = "train")]
        Command::Demo(args) => demo::run(args),
        Command::Devices(args) => devices::run(args),
        #[cfg(feature = "train")]
        Command::Pretrain(args) => pretrain::run(args),
        #[cfg(feature = "train")]
        Command::Export(args) => export::run(args),
        Command::Extract(args) => extract::run(args),
        #[cfg(feature = "train")]
        Command::Transfer(args) => transfer::run(args),
        Command::Predict(args) => predict::run(args),
        #[cfg(feature = "train")]
        Command::Teacher(args) => teacher::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
