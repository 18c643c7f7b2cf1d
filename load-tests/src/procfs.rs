//! What authd's process costs, read from /proc: resident memory (VmRSS, and VmHWM, the kernel's
//! own peak since start) and CPU time (utime + stime of every thread).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS")
}

pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM")
}

/// CPU seconds used so far by process `pid` (every thread), from /proc/PID/stat, or by this process.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU seconds used so far by each thread of `pid`: (tid, name, seconds), by tid.
pub fn thread_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads: Vec<(u32, String, f64)> = entries
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((tid, name, (utime + stime) / clock_ticks()))
        })
        .collect();
    threads.sort_by_key(|t| t.0);
    threads
}

/// The busiest threads between two `thread_cpu` readings, as (label, cores used over `wall_s`),
/// busiest first. A label is the thread's name and its rank by creation (`authd#2` is the third
/// thread the process made; `#0` is the main thread).
pub fn busiest_threads(
    before: &[(u32, String, f64)],
    after: &[(u32, String, f64)],
    wall_s: f64,
) -> Vec<(String, f64)> {
    let mut busy: Vec<(String, f64)> = after
        .iter()
        .enumerate()
        .map(|(rank, (tid, name, cpu))| {
            let start = before
                .iter()
                .find(|(t, _, _)| t == tid)
                .map(|(_, _, c)| *c)
                .unwrap_or(0.0);
            (format!("{name}#{rank}"), (cpu - start) / wall_s.max(1e-9))
        })
        .filter(|(_, cores)| *cores >= 0.01)
        .collect();
    busy.sort_by(|a, b| b.1.total_cmp(&a.1));
    busy
}

/// The whole machine's CPU seconds so far from /proc/stat: (busy, steal), summed over every CPU.
/// Busy is user + nice + system + irq + softirq; steal is time the hypervisor gave to others.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    let steal = *v.get(7)?;
    Some((busy / clock_ticks(), steal / clock_ticks()))
}

/// USER_HZ: 100 on every Linux this runs on; `AUTHD_LOAD_CLK_TCK` overrides it.
fn clock_ticks() -> f64 {
    std::env::var("AUTHD_LOAD_CLK_TCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100.0)
}

/// Samples VmRSS every 20 ms in the background and keeps the highest value.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RssSampler { stop, peak, task }
    }

    /// Stops sampling; answers the peak seen.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(hwm_kib(me).unwrap() >= rss_kib(me).unwrap() / 2);
        assert!(cpu_seconds(None).is_some());
        assert!(cpu_seconds(Some(me)).is_some());
        assert!(machine_cpu_seconds().is_some());
        let threads = thread_cpu(me);
        assert!(!threads.is_empty());
        assert_eq!(threads[0].0, me);
    }
}
