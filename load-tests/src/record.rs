//! Our own timing of every request, in microseconds and by status: goose's own metrics round to
//! whole milliseconds (too coarse for a sub-millisecond `GET /me`) and do not split latency by
//! status (we need the 503s' own p99).
//!
//! A phase measures a window: it opens `warmup` after the last user has finished its start-up
//! (logins), and closes after `measure` or `max_requests` recorded requests, whichever comes
//! first; then the goose killswitch stops the run. Requests outside the window are not counted.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Completion, since the window opened.
    at: Duration,
    latency_us: u32,
    /// 0 when no HTTP answer came (connection error, timeout).
    status: u16,
}

struct Window {
    expected_users: usize,
    ready_users: usize,
    warmup: Duration,
    measure: Duration,
    max_requests: u64,
    opens_at: Option<Instant>,
    recorded: u64,
    ended_by: Option<String>,
    samples: BTreeMap<&'static str, Vec<Sample>>,
    /// Requests made outside the window (start-up logins, warm-up, after the end).
    outside: u64,
}

static WINDOW: Mutex<Option<Window>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Window>> {
    WINDOW.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a new phase's window; forgets the previous one.
pub fn start(expected_users: usize, warmup: Duration, measure: Duration, max_requests: u64) {
    *lock() = Some(Window {
        expected_users,
        ready_users: 0,
        warmup,
        measure,
        max_requests,
        opens_at: None,
        recorded: 0,
        ended_by: None,
        samples: BTreeMap::new(),
        outside: 0,
    });
}

/// A user has finished its start-up; the window opens `warmup` after the last one.
pub fn user_ready() {
    let mut guard = lock();
    if let Some(w) = guard.as_mut() {
        w.ready_users += 1;
        if w.ready_users == w.expected_users && w.opens_at.is_none() {
            w.opens_at = Some(Instant::now() + w.warmup);
        }
    }
}

fn end(w: &mut Window, reason: String) {
    if w.ended_by.is_none() {
        w.ended_by = Some(reason.clone());
        goose::trigger_killswitch(&reason);
    }
}

/// Ends the phase before (or instead of) its window, giving the reason.
pub fn abort(reason: String) {
    let mut guard = lock();
    if let Some(w) = guard.as_mut() {
        end(w, reason);
    }
}

/// Records one finished request.
pub fn record(name: &'static str, status: u16, latency: Duration) {
    let now = Instant::now();
    let mut guard = lock();
    let Some(w) = guard.as_mut() else { return };
    let Some(opens_at) = w.opens_at.filter(|t| now >= *t) else {
        w.outside += 1;
        return;
    };
    if w.ended_by.is_some() {
        w.outside += 1;
        return;
    }
    let at = now - opens_at;
    if at > w.measure {
        w.outside += 1;
        let reason = format!("measured {:.1} s", w.measure.as_secs_f64());
        end(w, reason);
        return;
    }
    w.samples.entry(name).or_default().push(Sample {
        at,
        latency_us: latency.as_micros().min(u32::MAX as u128) as u32,
        status,
    });
    w.recorded += 1;
    if w.recorded >= w.max_requests {
        let reason = format!("request cap {} reached", w.max_requests);
        end(w, reason);
    }
}

/// Whether the current window has closed (users stop making requests).
pub fn ended() -> bool {
    lock().as_ref().is_some_and(|w| w.ended_by.is_some())
}

/// Whether the current window has opened.
pub fn opened() -> bool {
    lock()
        .as_ref()
        .and_then(|w| w.opens_at)
        .is_some_and(|t| Instant::now() >= t)
}

/// Whether the phase is over (its window summarised, or none started).
pub fn finished() -> bool {
    lock().is_none()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    fn of(values: &mut [u32]) -> Latency {
        values.sort_unstable();
        let pick = |q: f64| -> u64 {
            if values.is_empty() {
                return 0;
            }
            // Nearest rank.
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1] as u64
        };
        Latency {
            count: values.len() as u64,
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            max_us: values.last().copied().unwrap_or(0) as u64,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestStats {
    pub count: u64,
    /// All answers per second over the window.
    pub per_s: f64,
    /// 2xx answers per second over the window.
    pub ok_per_s: f64,
    pub latency: Latency,
    /// Per status code (0 = no answer).
    pub by_status: BTreeMap<u16, Latency>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowReport {
    /// Seconds the window stayed open (until its end, or its last request).
    pub seconds: f64,
    pub ended_by: String,
    pub requests: BTreeMap<String, RequestStats>,
    pub outside_window: u64,
}

/// Closes the window and summarises it.
pub fn finish() -> WindowReport {
    let Some(mut w) = lock().take() else {
        return WindowReport::default();
    };
    let last = w
        .samples
        .values()
        .flat_map(|s| s.iter().map(|x| x.at))
        .max()
        .unwrap_or_default();
    let seconds = if w
        .ended_by
        .as_deref()
        .is_some_and(|r| r.starts_with("measured"))
    {
        w.measure.as_secs_f64()
    } else {
        last.as_secs_f64()
    };
    let ended_by = match (&w.ended_by, w.opens_at) {
        (Some(reason), _) => reason.clone(),
        (None, None) => "window never opened (users did not finish starting)".into(),
        (None, Some(_)) => "run time elapsed".into(),
    };
    let requests = std::mem::take(&mut w.samples)
        .into_iter()
        .map(|(name, samples)| {
            let mut all: Vec<u32> = samples.iter().map(|s| s.latency_us).collect();
            let mut per_status: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
            for s in &samples {
                per_status.entry(s.status).or_default().push(s.latency_us);
            }
            let ok = samples
                .iter()
                .filter(|s| (200..300).contains(&s.status))
                .count();
            let rate = |n: usize| {
                if seconds > 0.0 {
                    n as f64 / seconds
                } else {
                    0.0
                }
            };
            let stats = RequestStats {
                count: samples.len() as u64,
                per_s: rate(samples.len()),
                ok_per_s: rate(ok),
                latency: Latency::of(&mut all),
                by_status: per_status
                    .into_iter()
                    .map(|(status, mut v)| (status, Latency::of(&mut v)))
                    .collect(),
            };
            (name.to_string(), stats)
        })
        .collect();
    WindowReport {
        seconds,
        ended_by,
        requests,
        outside_window: w.outside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).collect();
        let l = Latency::of(&mut v);
        assert_eq!((l.count, l.p50_us, l.p99_us, l.max_us), (100, 50, 99, 100));
        let l = Latency::of(&mut [7]);
        assert_eq!((l.p50_us, l.p99_us), (7, 7));
        assert_eq!(Latency::of(&mut []).count, 0);
    }
}
