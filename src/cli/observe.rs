//! The terminal side of [`Observer`]: each task a progress bar (indicatif), notes and warnings
//! as lines (each warning once). Without a terminal the bars are hidden and a running task writes a status line every
//! 30 s instead, so logs stay informative.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bnn_transfer::progress::{Event, Observer, TaskId};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Where notes go: the results of `bnn transfer` and `bnn demo` are part of their stdout, the
/// notes of the other commands are diagnostics on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notes {
    // Only `bnn transfer` and `bnn demo` (feature `train`) write notes to stdout.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    Stdout,
    Stderr,
}

/// Draws a run's events on the terminal.
pub struct Terminal {
    notes: Notes,
    multi: MultiProgress,
    tasks: Mutex<HashMap<TaskId, Running>>,
    /// Warnings already written: each is said once (a cache that cannot be written is
    /// reported at every cut, an archive's skipped entries at every split).
    warned: Mutex<HashSet<String>>,
}

struct Running {
    bar: ProgressBar,
    name: String,
    total: u64,
    last_line: Instant,
}

/// How often a task writes a status line when the bars are hidden.
const LINE_EVERY: Duration = Duration::from_secs(30);

impl Terminal {
    pub fn new(notes: Notes) -> Self {
        Terminal {
            notes,
            multi: MultiProgress::new(),
            tasks: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    fn line(&self, to: Notes, text: &str) {
        let text = super::flags::show(text);
        self.multi.suspend(|| match to {
            Notes::Stdout => println!("{text}"),
            Notes::Stderr => eprintln!("{text}"),
        });
    }

    fn start(&self, task: TaskId, name: &str, total: u64) {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta}) {msg}",
            )
            .expect("static template"),
        );
        bar.set_prefix(name.to_string());
        let running = Running {
            bar,
            name: name.to_string(),
            total,
            last_line: Instant::now(),
        };
        self.lock().insert(task, running);
    }

    fn progress(&self, task: TaskId, done: u64, status: Option<&str>) {
        let mut tasks = self.lock();
        let Some(t) = tasks.get_mut(&task) else {
            return;
        };
        t.bar.set_position(done);
        if let Some(status) = status {
            t.bar.set_message(status.to_string());
            if t.bar.is_hidden() && t.last_line.elapsed() >= LINE_EVERY {
                t.last_line = Instant::now();
                eprintln!("{} {done}/{}: {status}", t.name, t.total);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Running>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Observer for Terminal {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Note(text) => self.line(self.notes, text),
            Event::Warning(text) => {
                let new = (self.warned.lock())
                    .map(|mut w| w.insert(text.to_string()))
                    .unwrap_or(true);
                if new {
                    self.line(Notes::Stderr, &format!("warning: {text}"));
                }
            }
            Event::Started { task, name, total } => self.start(task, name, total),
            Event::Progress { task, done, status } => self.progress(task, done, status),
            Event::Finished { task } => {
                if let Some(t) = self.lock().remove(&task) {
                    t.bar.finish_and_clear();
                    self.multi.remove(&t.bar);
                }
            }
            _ => {}
        }
    }
}
