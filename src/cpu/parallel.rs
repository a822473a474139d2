//! The CPU path's threads: one persistent rayon pool per prepared extractor (or layer), and the
//! split of a layer's output into tasks (rows × channel groups) that keeps every thread busy
//! at batch 1 as well as at batch 64.

use std::marker::PhantomData;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A persistent pool of worker threads, cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Threads {
    pool: Option<Arc<rayon::ThreadPool>>,
    count: usize,
}

impl Threads {
    /// A pool of `count` threads (`1`: everything runs on the calling thread).
    pub fn new(count: usize) -> Result<Threads> {
        let count = count.max(1);
        let pool = if count == 1 {
            None
        } else {
            Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(count)
                    .thread_name(|i| format!("bnn-cpu-{i}"))
                    .build()
                    .map_err(|e| Error::Config(format!("cannot start {count} CPU threads: {e}")))?,
            ))
        };
        Ok(Threads { pool, count })
    }

    /// One thread per available core.
    pub fn all() -> Result<Threads> {
        Threads::new(super::default_threads())
    }

    /// Threads in the pool (1: everything runs on the calling thread).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `f(task)` for every task in `0..tasks`, spread over the pool.
    pub fn for_each(&self, tasks: usize, f: impl Fn(usize) + Sync + Send) {
        match &self.pool {
            Some(pool) if tasks > 1 => pool.install(|| (0..tasks).into_par_iter().for_each(f)),
            _ => (0..tasks).for_each(f),
        }
    }

    /// Runs `f(index, chunk)` for every `chunk`-element piece of `out`, spread over the pool.
    pub fn for_chunks<T: Send>(
        &self,
        out: &mut [T],
        chunk: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        let chunk = chunk.max(1);
        match &self.pool {
            Some(pool) if out.len() > chunk => pool.install(|| {
                out.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, c)| f(i, c))
            }),
            _ => out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c)),
        }
    }
}

/// How a layer's `rows` output rows × `groups` channel groups are cut into tasks: enough tasks
/// for about four per thread, rows first (contiguous output), channel groups when rows run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Output rows per task (the last task may get fewer).
    pub rows_per_task: usize,
    /// Tasks along the rows.
    pub row_tasks: usize,
    /// Channel groups per task (the last task may get fewer).
    pub groups_per_task: usize,
    /// Tasks along the channel groups.
    pub group_tasks: usize,
}

impl Split {
    /// The split of `rows` × `groups` for `threads` threads (a single task on one thread).
    pub fn new(rows: usize, groups: usize, threads: usize) -> Split {
        let (rows, groups) = (rows.max(1), groups.max(1));
        let target = if threads <= 1 { 1 } else { 4 * threads };
        let group_tasks = if rows >= target {
            1
        } else {
            target.div_ceil(rows).min(groups)
        };
        let groups_per_task = groups.div_ceil(group_tasks);
        let group_tasks = groups.div_ceil(groups_per_task);
        let row_tasks = target.div_ceil(group_tasks).clamp(1, rows);
        let rows_per_task = rows.div_ceil(row_tasks);
        Split {
            rows_per_task,
            row_tasks: rows.div_ceil(rows_per_task),
            groups_per_task,
            group_tasks,
        }
    }

    /// Tasks in all (`row_tasks × group_tasks`), numbered as [`Split::task`] reads them.
    pub fn tasks(&self) -> usize {
        self.row_tasks * self.group_tasks
    }

    /// Rows and channel groups of task `t`.
    pub fn task(
        &self,
        t: usize,
        rows: usize,
        groups: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (r, g) = (t / self.group_tasks, t % self.group_tasks);
        let r0 = r * self.rows_per_task;
        let g0 = g * self.groups_per_task;
        (
            r0..(r0 + self.rows_per_task).min(rows),
            g0..(g0 + self.groups_per_task).min(groups),
        )
    }
}

/// An output buffer that tasks write to at disjoint indices (rows × channel groups interleave in
/// memory, so they cannot be split into slices).
#[derive(Debug)]
pub struct SharedOut<'a, T> {
    ptr: *mut T,
    len: usize,
    _out: PhantomData<&'a mut [T]>,
}

// SAFETY: writes go through `write`, whose contract is that no two threads touch one index.
unsafe impl<T: Send> Send for SharedOut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<'_, T> {}

impl<'a, T> SharedOut<'a, T> {
    /// Wraps `out` for the duration of its borrow.
    pub fn new(out: &'a mut [T]) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: PhantomData,
        }
    }

    /// Writes `value` at `index` (bounds-checked).
    ///
    /// # Safety
    /// No other thread reads or writes `index` while the buffer is shared.
    pub unsafe fn write(&self, index: usize, value: T) {
        assert!(index < self.len, "index {index} out of {}", self.len);
        // SAFETY: in bounds (checked), and exclusive by the caller's contract.
        unsafe { self.ptr.add(index).write(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_and_group_is_covered_once() {
        for rows in [1, 2, 7, 15, 64, 448] {
            for groups in [1, 2, 3, 8, 16] {
                for threads in [1, 2, 3, 16] {
                    let s = Split::new(rows, groups, threads);
                    let mut seen = vec![0u8; rows * groups];
                    for t in 0..s.tasks() {
                        let (r, g) = s.task(t, rows, groups);
                        assert!(!r.is_empty() && !g.is_empty(), "{s:?} task {t}");
                        for row in r {
                            for grp in g.clone() {
                                seen[row * groups + grp] += 1;
                            }
                        }
                    }
                    assert!(seen.iter().all(|&n| n == 1), "{rows} {groups} {threads}");
                }
            }
        }
    }
}
