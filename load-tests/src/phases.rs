//! Phases: one goose run each, made of one or more scenarios with fixed user counts, a measured
//! window of fixed length, a request cap and a run-time bound. They run one after the other in
//! one process, so the sessions logged in for one phase serve the next.

use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use gumdrop::Options;
use serde::{Deserialize, Serialize};

use crate::procfs;
use crate::record::{self, WindowReport};
use crate::scenarios::{self, Kind};

/// The sizes every phase is built from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sizes {
    /// Hasher workers and queue, as authd logged them at start.
    pub hasher_workers: usize,
    pub hasher_queue: usize,
    /// Closed-loop users of the read phases (`me`, `live`).
    pub read_users: usize,
    /// Paced users of the /me latency probe, and their wait after each request.
    pub probe_users: usize,
    pub probe_wait_ms: u64,
    pub refresh_users: usize,
    pub mixed_users: usize,
    /// The flood phase runs `flood_factor` x the pool's capacity of login users.
    pub flood_factor: usize,
    /// Measured seconds of each phase (login phases get 1.5 x, being slow and noisy).
    pub seconds: f64,
    /// Warm-up after every user has started, before the window opens.
    pub warmup_seconds: f64,
    /// Requests counted per phase at most; the phase ends when reached.
    pub max_requests: u64,
}

impl Sizes {
    pub fn capacity(&self) -> usize {
        self.hasher_workers + self.hasher_queue
    }
}

pub const ALL: &[&str] = &[
    "live",
    "me",
    "me_probe",
    "login_flood",
    "login_flood+me_probe",
    "flood16+me",
    "flood10x",
    "refresh_storm",
    "mixed",
];

/// A phase's scenarios and their users.
pub fn composition(name: &str, sizes: &Sizes) -> Result<(Vec<(Kind, usize)>, f64), String> {
    let s = sizes.seconds;
    let login = 1.5 * s;
    Ok(match name {
        "live" => (vec![(Kind::Live, sizes.read_users)], s),
        "me" => (vec![(Kind::Me, sizes.read_users)], s),
        // The probes get the longer window too: their p99 is the ratio's denominator.
        "me_probe" => (vec![(Kind::MeProbe, sizes.probe_users)], login),
        "login_flood" => (vec![(Kind::LoginFlood, sizes.capacity())], login),
        "login_flood+me_probe" => (
            vec![
                (Kind::LoginFlood, sizes.capacity()),
                (Kind::MeProbe, sizes.probe_users),
            ],
            login,
        ),
        // A 16-connection login flood (the next attempt right after each answer, 503 or not)
        // beside the closed-loop /me readers: what a login storm leaves the cheap requests.
        "flood16+me" => (
            vec![(Kind::LoginFlood, 16), (Kind::Me, sizes.read_users)],
            login,
        ),
        "flood10x" => (
            vec![(Kind::LoginFlood, sizes.flood_factor * sizes.capacity())],
            s,
        ),
        "refresh_storm" => (vec![(Kind::RefreshStorm, sizes.refresh_users)], s),
        "mixed" => (vec![(Kind::Mixed, sizes.mixed_users)], login),
        other => {
            return Err(format!(
                "unknown phase {other:?}; phases: {}",
                ALL.join(", ")
            ))
        }
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    /// (scenario, users)
    pub users: Vec<(String, usize)>,
    pub window: WindowReport,
    /// authd's VmRSS before the phase, its sampled peak during it, and VmHWM after it (KiB).
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub hwm_after_kib: Option<u64>,
    /// CPU seconds used during the window (over `cpu_seconds` of wall time): authd's and the
    /// load generator's.
    pub server_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    /// The whole machine's busy CPU seconds in the window (everything: authd, goose, PostgreSQL,
    /// Redis, and whatever else runs), and the seconds the hypervisor stole.
    pub machine_busy_s: Option<f64>,
    pub machine_steal_s: Option<f64>,
    pub cpu_seconds: f64,
    /// authd's busiest threads during the window: (name#rank, cores).
    pub server_threads: Vec<(String, f64)>,
    pub wall_s: f64,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::LoginFlood => "login_flood",
        Kind::Me => "authed_read_me",
        Kind::Live => "authed_read_live",
        Kind::MeProbe => "me_probe",
        Kind::RefreshStorm => "refresh_storm",
        Kind::Mixed => "mixed",
    }
}

/// Runs one phase against `base_url`; `pid` is authd's, for memory and CPU.
pub async fn run_phase(
    name: &str,
    base_url: &str,
    sizes: &Sizes,
    pid: Option<u32>,
    goose_args: &[String],
) -> Result<PhaseReport, String> {
    let (parts, seconds) = composition(name, sizes)?;
    let users: usize = parts.iter().map(|(_, n)| n).sum();
    // Bound in time whatever happens: start-up logins get up to a minute, then the window.
    let run_time = (sizes.warmup_seconds + seconds + 60.0).ceil() as u64;
    let mut args: Vec<String> = vec![
        "--host".into(),
        base_url.into(),
        "--users".into(),
        users.to_string(),
        "--hatch-rate".into(),
        (users * 4).max(1).to_string(),
        "--run-time".into(),
        run_time.to_string(),
        "--timeout".into(),
        "10".into(),
        "--no-gzip".into(),
        "--no-telnet".into(),
        "--no-websocket".into(),
        "--no-print-metrics".into(),
        "--quiet".into(),
    ];
    args.extend(goose_args.iter().cloned());
    let config = GooseConfiguration::parse_args_default(&args).map_err(|e| e.to_string())?;

    let probe_wait = Duration::from_millis(sizes.probe_wait_ms);
    let mut attack = GooseAttack::initialize_with_config(config).map_err(|e| e.to_string())?;
    for (kind, n) in &parts {
        attack = attack.register_scenario(
            scenarios::scenario(*kind, *n, probe_wait).map_err(|e| e.to_string())?,
        );
    }
    scenarios::reset_indices();
    record::start(
        users,
        Duration::from_secs_f64(sizes.warmup_seconds),
        Duration::from_secs_f64(seconds),
        sizes.max_requests,
    );
    let rss_before_kib = pid.and_then(procfs::rss_kib);
    let sampler = pid.map(procfs::RssSampler::start);
    // CPU is read when the window opens and when it closes (polled every 10 ms).
    let watcher = tokio::spawn(cpu_over_window(pid));
    let started = std::time::Instant::now();

    let outcome = attack.execute().await;

    let wall_s = started.elapsed().as_secs_f64();
    let window = record::finish();
    let rss_peak_kib = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let cpu = watcher.await.unwrap_or_default();
    outcome.map_err(|e| format!("phase {name}: goose: {e}"))?;
    Ok(PhaseReport {
        name: name.to_string(),
        users: parts
            .iter()
            .map(|(k, n)| (kind_name(*k).to_string(), *n))
            .collect(),
        window,
        rss_before_kib,
        rss_peak_kib,
        hwm_after_kib: pid.and_then(procfs::hwm_kib),
        server_cpu_s: cpu.server_cpu_s,
        client_cpu_s: cpu.client_cpu_s,
        machine_busy_s: cpu.machine_busy_s,
        machine_steal_s: cpu.machine_steal_s,
        cpu_seconds: cpu.seconds,
        server_threads: cpu.threads,
        wall_s,
    })
}

#[derive(Default)]
struct WindowCpu {
    server_cpu_s: Option<f64>,
    client_cpu_s: Option<f64>,
    machine_busy_s: Option<f64>,
    machine_steal_s: Option<f64>,
    seconds: f64,
    threads: Vec<(String, f64)>,
}

struct CpuReading {
    at: std::time::Instant,
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<(f64, f64)>,
    threads: Vec<(u32, String, f64)>,
}

fn read_cpu(pid: Option<u32>) -> CpuReading {
    CpuReading {
        at: std::time::Instant::now(),
        server: pid.and_then(|p| procfs::cpu_seconds(Some(p))),
        client: procfs::cpu_seconds(None),
        machine: procfs::machine_cpu_seconds(),
        threads: pid.map(procfs::thread_cpu).unwrap_or_default(),
    }
}

/// Waits for the window to open, reads CPU, waits for it to close (or the phase to end), reads
/// again.
async fn cpu_over_window(pid: Option<u32>) -> WindowCpu {
    let tick = Duration::from_millis(10);
    while !record::opened() {
        if record::finished() {
            return WindowCpu::default();
        }
        tokio::time::sleep(tick).await;
    }
    let start = read_cpu(pid);
    while !record::ended() && !record::finished() {
        tokio::time::sleep(tick).await;
    }
    let end = read_cpu(pid);
    let seconds = (end.at - start.at).as_secs_f64();
    WindowCpu {
        server_cpu_s: end.server.zip(start.server).map(|(b, a)| b - a),
        client_cpu_s: end.client.zip(start.client).map(|(b, a)| b - a),
        machine_busy_s: end.machine.zip(start.machine).map(|(b, a)| b.0 - a.0),
        machine_steal_s: end.machine.zip(start.machine).map(|(b, a)| b.1 - a.1),
        seconds,
        threads: procfs::busiest_threads(&start.threads, &end.threads, seconds),
    }
}
