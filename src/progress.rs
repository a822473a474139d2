//! How long work reports what it is doing. The library sends typed [`Event`]s to an
//! [`Observer`] and prints nothing itself: `bnn` draws them (progress bars and lines, in
//! `cli/observe.rs`), tests and the web page pass [`Silent`] or collect them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one [`Task`] among those an observer sees (unique within the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(u64);

/// What long work reports.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A line worth reading: a result, a cache reused or rebuilt, a fallback taken.
    Note(&'a str),
    /// Something was skipped or degraded and the work goes on (an unreadable image, a cache
    /// that could not be written).
    Warning(&'a str),
    /// A counted task began: `total` steps (0 when not known) of `name`.
    Started {
        /// The task.
        task: TaskId,
        /// What it is ("epoch 3/12", "extract conv5").
        name: &'a str,
        /// How many steps it has.
        total: u64,
    },
    /// The task reached `done` of its steps; `status` holds its live metrics, if any.
    Progress {
        /// The task.
        task: TaskId,
        /// Steps done so far.
        done: u64,
        /// Live metrics ("loss 2.31 acc 12.0% 60 img/s").
        status: Option<&'a str>,
    },
    /// The task ended (finished, failed or stopped).
    Finished {
        /// The task.
        task: TaskId,
    },
}

/// Receives the events of long work. Shared across the threads of one run.
pub trait Observer: Send + Sync {
    /// Handles one event.
    fn event(&self, event: Event<'_>);

    /// Sends [`Event::Note`].
    fn note(&self, line: &str) {
        self.event(Event::Note(line));
    }

    /// Sends [`Event::Warning`].
    fn warn(&self, line: &str) {
        self.event(Event::Warning(line));
    }
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Observer")
    }
}

/// An observer that drops every event (tests, library users who do not want progress).
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// A counted task: [`Event::Started`] when made, [`Event::Progress`] as it advances,
/// [`Event::Finished`] when dropped.
pub struct Task<'a> {
    observer: &'a dyn Observer,
    id: TaskId,
    done: AtomicU64,
}

impl<'a> Task<'a> {
    /// Starts a task of `total` steps (0 when not known).
    pub fn start(observer: &'a dyn Observer, name: &str, total: u64) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = TaskId(NEXT.fetch_add(1, Ordering::Relaxed));
        observer.event(Event::Started {
            task: id,
            name,
            total,
        });
        Task {
            observer,
            id,
            done: AtomicU64::new(0),
        }
    }

    /// Advances by `n` steps.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.send(done, None);
    }

    /// Sets the steps done to `done`.
    pub fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.send(done, None);
    }

    /// The steps done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Sets the steps done to `done`, with live metrics.
    pub fn set(&self, done: u64, status: &str) {
        self.done.store(done, Ordering::Relaxed);
        self.send(done, Some(status));
    }

    fn send(&self, done: u64, status: Option<&str>) {
        self.observer.event(Event::Progress {
            task: self.id,
            done,
            status,
        });
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        self.observer.event(Event::Finished { task: self.id });
    }
}

impl std::fmt::Debug for Task<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("done", &self.done.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn event(&self, e: Event<'_>) {
            self.0.lock().unwrap().push(match e {
                Event::Note(s) => format!("note {s}"),
                Event::Warning(s) => format!("warning {s}"),
                Event::Started { name, total, .. } => format!("start {name} {total}"),
                Event::Progress { done, status, .. } => format!("at {done} {status:?}"),
                Event::Finished { .. } => "end".into(),
            });
        }
    }

    #[test]
    fn a_task_reports_its_start_steps_and_end_in_order() {
        let log = Log::default();
        {
            let t = Task::start(&log, "epoch 1/2", 3);
            t.advance(1);
            t.set(3, "loss 1.0");
            log.note("done");
        }
        log.warn("skipped x");
        assert_eq!(
            *log.0.lock().unwrap(),
            [
                "start epoch 1/2 3",
                "at 1 None",
                "at 3 Some(\"loss 1.0\")",
                "note done",
                "end",
                "warning skipped x"
            ]
        );
    }
}
