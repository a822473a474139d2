//! The library names a setting in its messages by its field, in backticks (`` `lr` ``,
//! `` `batch_size` ``, `` `kd.labels` ``): it knows nothing of a command line. Here those names
//! become the flags a user types (`--lr`, `--batch-size`, `--kd-labels`). The map is the running
//! subcommand's own clap arguments (field name → `--long`), plus the few library names that are
//! not a flag's field name; a name the subcommand has no flag for is left as it is.

use std::sync::OnceLock;

/// Library names that are not the field name of their flag (`PretrainRequest::kd`).
const ALIASES: &[(&str, &str)] = &[
    ("kd.labels", "--kd-labels"),
    ("kd.logits", "--kd-logits"),
    ("kd.features", "--kd-features"),
    ("kd.temperature", "--kd-temperature"),
    ("kd.views", "--teacher-views"),
    ("kd.resolution", "--teacher-resolution"),
    ("kd.*", "--kd-*/--teacher-*"),
];

static FLAGS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Records the flags of `command` (the subcommand being run) for [`show`].
pub fn init(command: &clap::Command) {
    let _ = FLAGS.set(flags_of(command));
}

/// Every `(field name, --long)` of `command`, and the aliases.
fn flags_of(command: &clap::Command) -> Vec<(String, String)> {
    let mut flags: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|a| Some((a.get_id().to_string(), format!("--{}", a.get_long()?))))
        .collect();
    flags.extend(ALIASES.iter().map(|&(n, f)| (n.to_string(), f.to_string())));
    flags
}

/// `text` with every `` `name` `` that is a setting of the running subcommand written as its flag.
pub fn show(text: &str) -> String {
    match FLAGS.get() {
        Some(flags) => replace(text, flags),
        None => text.to_string(),
    }
}

fn replace(text: &str, flags: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        match flags.iter().find(|(n, _)| n == name) {
            Some((_, flag)) => out.push_str(flag),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn flags(subcommand: &str) -> Vec<(String, String)> {
        let cli = super::super::Cli::command();
        flags_of(cli.find_subcommand(subcommand).expect(subcommand))
    }

    #[test]
    fn settings_become_the_subcommands_flags() {
        let flags = flags("extract");
        assert_eq!(
            replace(
                "`batch_size` 0; `layout` unknown; `out` names `data`",
                &flags
            ),
            "--batch-size 0; --layout unknown; --out names --data"
        );
        // Not a setting of this subcommand, or not a name at all: untouched.
        assert_eq!(
            replace("`head` must be `linear` or `mlp:H`; a lone ` stays", &flags),
            "`head` must be `linear` or `mlp:H`; a lone ` stays"
        );
    }

    #[cfg(feature = "train")]
    #[test]
    fn every_alias_is_a_flag_of_bnn_pretrain() {
        let flags = flags("pretrain");
        assert_eq!(
            replace("`kd.*` options need `teacher`; `lr` 20", &flags),
            "--kd-*/--teacher-* options need --teacher; --lr 20"
        );
        for (name, flag) in ALIASES {
            for f in flag.split('/').filter(|f| !f.ends_with('*')) {
                assert!(
                    flags.iter().any(|(n, long)| long == f && !n.contains('.')),
                    "{name}: {f}"
                );
            }
        }
    }
}
