//! Progress bars for long work, one style for every command.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items with a message slot for live metrics (loss, images/s).
pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta}) {msg}",
        )
        .expect("static template"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
