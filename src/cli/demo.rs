//! `bnn demo`: the flags of [`DemoConfig`]; the demo itself is
//! `bnn_transfer::transfer::demo::run`.

use std::path::PathBuf;

use bnn_transfer::transfer::demo::{self, DemoConfig};

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// A data set of any supported layout with train and test splits (val optional)
    /// [default: a generated set of 8 shape and texture classes].
    #[arg(long)]
    data: Option<PathBuf>,
    /// How --data is laid out (docs/DATA.md); auto detects it.
    #[arg(long, value_enum, default_value_t = bnn_transfer::data::Layout::Auto)]
    layout: bnn_transfer::data::Layout,
    /// The extractor file [default: the embedded backbone].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory (generated data, head, report).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Generated images per class in train / val / test.
    #[arg(long, value_delimiter = ',', default_value = "32,8,16")]
    images_per_class: Vec<usize>,
    /// Run the extractor on the CPU path even when a wgpu adapter exists.
    #[arg(long)]
    cpu: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = DemoConfig {
        data: args.data,
        layout: args.layout,
        model: args.model,
        out: args.out,
        images_per_class: args.images_per_class,
        cpu: args.cpu,
    };
    demo::run(&cfg, &Terminal::new(Notes::Stdout))?;
    Ok(())
}
