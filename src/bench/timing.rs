//! How a case is timed: untimed warm-up runs (pipeline compilation, burn's autotune, first touch),
//! then up to `repeats` timed runs within a wall-clock budget (at least one), summarised by the
//! median. Each run reports its own duration, so GPU time from timestamp queries and synchronized
//! wall time go through the same loop.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;

/// Warm-up, repeats and the per-case time budget.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Plan {
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Most timed runs (at least one is made).
    pub repeats: usize,
    /// Timed runs stop once this much wall time has passed (after at least one run).
    pub budget_s: f64,
}

/// Summary of the timed runs of one case.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stats {
    /// Median of the timed runs, seconds.
    pub median_s: f64,
    /// Fastest timed run, seconds.
    pub min_s: f64,
    /// Slowest timed run, seconds.
    pub max_s: f64,
    /// Timed runs actually made (≤ the plan's repeats when the budget ran out).
    pub runs: usize,
    /// Untimed warm-up runs made first.
    pub warmup: usize,
}

/// Median of a non-empty list (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs `f` `plan.warmup` times untimed, then up to `plan.repeats` timed times.
pub fn measure(plan: &Plan, mut f: impl FnMut() -> Result<Duration>) -> Result<Stats> {
    for _ in 0..plan.warmup {
        f()?;
    }
    let start = Instant::now();
    let mut times = Vec::with_capacity(plan.repeats.max(1));
    while times.len() < plan.repeats.max(1) {
        times.push(f()?.as_secs_f64());
        if start.elapsed().as_secs_f64() > plan.budget_s {
            break;
        }
    }
    Ok(Stats {
        median_s: median(&times),
        min_s: times.iter().copied().fold(f64::INFINITY, f64::min),
        max_s: times.iter().copied().fold(0.0, f64::max),
        runs: times.len(),
        warmup: plan.warmup,
    })
}

/// Wall time of `f`.
pub fn wall(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

/// "3.4× faster" or "3.3× slower": how a time compares with a baseline's, in words that are
/// true either way (never "0.3× faster").
pub fn speed_phrase(time_s: f64, baseline_s: f64) -> String {
    if time_s <= baseline_s {
        format!("{:.1}× faster", baseline_s / time_s)
    } else {
        format!("{:.1}× slower", time_s / baseline_s)
    }
}

#[cfg(test)]
mod speed_phrase_tests {
    use super::speed_phrase;

    #[test]
    fn says_slower_when_slower() {
        assert_eq!(speed_phrase(1.0, 3.4), "3.4× faster");
        assert_eq!(speed_phrase(3.3, 1.0), "3.3× slower");
        assert_eq!(speed_phrase(2.0, 2.0), "1.0× faster");
    }
}
