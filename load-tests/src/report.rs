//! The one table: every figure of the issue, per backend, with its ratio and goal.

use std::path::{Path, PathBuf};

use crate::hashcost::HashCost;
use crate::phases::PhaseReport;
use crate::record::{Latency, RequestStats};
use crate::RunReport;

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn rate(per_s: f64) -> String {
    if per_s >= 1000.0 {
        let n = per_s.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{out}/s")
    } else if per_s >= 100.0 {
        format!("{per_s:.0}/s")
    } else {
        format!("{per_s:.1}/s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn p50_p99(l: &Latency) -> String {
    format!("{} / {}", ms(l.p50_us), ms(l.p99_us))
}

/// Answers outside 2xx, by status, e.g. "503 x12, 0 x1"; empty when none.
fn non_2xx(stats: &RequestStats) -> String {
    stats
        .by_status
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .map(|(status, l)| format!("{status} x{}", l.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn with_errors(text: String, stats: &RequestStats) -> String {
    let errors = non_2xx(stats);
    if errors.is_empty() {
        text
    } else {
        format!("{text} ({errors})")
    }
}

/// One line per phase, for progress output.
pub fn phase_summary(phase: &PhaseReport) -> String {
    let mut parts = vec![format!(
        "{:.1} s window, {}",
        phase.window.seconds, phase.window.ended_by
    )];
    for (name, stats) in &phase.window.requests {
        parts.push(with_errors(
            format!(
                "{name}: {} ({} ok), p50/p99 {}",
                stats.count,
                rate(stats.ok_per_s),
                p50_p99(&stats.latency)
            ),
            stats,
        ));
    }
    parts.join("; ")
}

fn phase<'a>(run: &'a RunReport, name: &str) -> Option<&'a PhaseReport> {
    run.phases.iter().find(|p| p.name == name)
}

fn request<'a>(run: &'a RunReport, phase_name: &str, request: &str) -> Option<&'a RequestStats> {
    phase(run, phase_name)?.window.requests.get(request)
}

/// One hash at a time: the median, the range and what else ran meanwhile.
fn single_hash(hash: &HashCost) -> String {
    format!(
        "{:.0} ms (min {:.0}, max {:.0}; other processes {:.2} cores meanwhile)",
        hash.single_median_ms,
        hash.single_ms.first().copied().unwrap_or(0.0),
        hash.single_ms.last().copied().unwrap_or(0.0),
        hash.other_cores
    )
}

/// "rate, p50 / p99" of one request in one phase, with its non-2xx answers.
fn throughput(run: &RunReport, phase_name: &str, name: &str) -> Option<String> {
    let s = request(run, phase_name, name)?;
    Some(with_errors(
        format!("{}, {}", rate(s.ok_per_s), p50_p99(&s.latency)),
        s,
    ))
}

/// The flood's logins, and the latency of those answered with `status`.
fn flood_logins(run: &RunReport, status: u16) -> Option<(&RequestStats, &Latency)> {
    let s = request(run, "flood10x", "POST /auth/login")?;
    Some((s, status_latency(s, status)?))
}

fn status_latency(stats: &RequestStats, status: u16) -> Option<&Latency> {
    stats.by_status.get(&status)
}

/// Cores used during the window by processes other than authd and goose (PostgreSQL, Redis, and
/// anything else running on the machine).
fn other_cores(ph: &PhaseReport) -> Option<f64> {
    let seconds = ph.cpu_seconds.max(f64::MIN_POSITIVE);
    Some((ph.machine_busy_s? - ph.server_cpu_s? - ph.client_cpu_s?).max(0.0) / seconds)
}

/// Cores used during the window by authd's threads whose names start with `prefix`.
fn thread_cores(ph: &PhaseReport, prefix: &str) -> f64 {
    ph.server_threads
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, cores)| cores)
        .sum()
}

/// Cores of authd's HTTP workers (`actix-rt` threads) during the window.
fn http_worker_cores(ph: &PhaseReport) -> f64 {
    thread_cores(ph, "actix-rt")
}

/// Cores of authd's hashing threads (named `authd-hasher`) during the window.
fn hasher_cores(ph: &PhaseReport) -> f64 {
    thread_cores(ph, "authd-hasher")
}

struct Row {
    figure: String,
    cells: Vec<String>,
    goal: String,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn users_of(run: &RunReport, phase_name: &str, scenario: &str) -> Option<usize> {
    phase(run, phase_name)?
        .users
        .iter()
        .find(|(s, _)| s == scenario)
        .map(|(_, n)| *n)
}

pub fn print_table(
    hash_path: &Path,
    hash_again: Option<&Path>,
    run_paths: &[PathBuf],
    notes: &[String],
) -> Result<(), String> {
    let hash: HashCost = read(hash_path)?;
    let again: Option<HashCost> = hash_again.map(read).transpose()?;
    let runs: Vec<RunReport> = run_paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<_, _>>()?;
    if runs.is_empty() {
        return Err("no run to tabulate".into());
    }
    let cores = hash.cores as f64;
    // The hash's time drifts with the machine (memory bandwidth is shared with whatever else runs
    // on the host): timed before and after the load, the ceiling uses the mean.
    let hash_ms = match &again {
        Some(a) => (hash.single_median_ms + a.single_median_ms) / 2.0,
        None => hash.single_median_ms,
    };
    let ceiling = cores / (hash_ms / 1000.0);
    let mut rows: Vec<Row> = Vec::new();
    let each = |f: &dyn Fn(&RunReport) -> Option<String>| -> Vec<String> {
        runs.iter()
            .map(|r| f(r).unwrap_or_else(|| "-".into()))
            .collect()
    };
    let first_only = |text: String| -> Vec<String> {
        let mut cells = vec![text];
        cells.resize(runs.len().max(1), String::new());
        cells
    };
    let mut row = |figure: String, cells: Vec<String>, goal: &str| {
        rows.push(Row {
            figure,
            cells,
            goal: goal.to_string(),
        })
    };

    let p = hash.params;
    row(
        format!(
            "argon2id hash (m={} KiB t={} p={}), one at a time, median of {}",
            p.m_kib,
            p.t,
            p.p,
            hash.single_ms.len()
        ),
        first_only(single_hash(&hash)),
        "",
    );
    if let Some(a) = &again {
        row(
            "  the same, timed again after the load".into(),
            first_only(single_hash(a)),
            "",
        );
    }
    row(
        format!("  {} hashes at once (one thread each)", hash.threads),
        first_only(format!(
            "{:.0} ms each, {}",
            hash.parallel_median_ms,
            rate(hash.parallel_per_s)
        )),
        "",
    );
    row(
        format!(
            "  login ceiling = cores / hash time ({} cores / {hash_ms:.0} ms)",
            hash.cores
        ),
        first_only(rate(ceiling)),
        "",
    );

    // Login throughput.
    row(
        format!(
            "login_flood ({} users = pool capacity): logins/s",
            runs.first()
                .map(|r| r.sizes.capacity().to_string())
                .unwrap_or_default()
        ),
        each(&|r| {
            let s = request(r, "login_flood", "POST /auth/login")?;
            Some(with_errors(rate(s.ok_per_s), s))
        }),
        "",
    );
    row(
        "  ratio to cores / hash time".into(),
        each(&|r| {
            let s = request(r, "login_flood", "POST /auth/login")?;
            let ratio = s.ok_per_s / ceiling;
            Some(format!("{ratio:.2} ({})", verdict(ratio >= 0.9)))
        }),
        ">= 0.9",
    );
    row(
        "  authd CPU per login (hashing, store, HTTP), in the phase".into(),
        each(&|r| {
            let ph = phase(r, "login_flood")?;
            let s = ph.window.requests.get("POST /auth/login")?;
            let ok = status_latency(s, 200)?.count.max(1) as f64;
            let cpu =
                ph.server_cpu_s? * (ph.window.seconds / ph.cpu_seconds.max(f64::MIN_POSITIVE));
            Some(format!("{:.0} ms", cpu / ok * 1e3))
        }),
        "",
    );
    row(
        "  login latency p50 / p99".into(),
        each(&|r| {
            Some(p50_p99(
                &request(r, "login_flood", "POST /auth/login")?.latency,
            ))
        }),
        "",
    );

    // /me under a saturated pool.
    let probe = |r: &RunReport, phase_name: &str| {
        request(r, phase_name, "GET /me (probe)").map(|s| s.latency.clone())
    };
    row(
        format!(
            "GET /me probe ({} users, {} ms pause), pool idle: p50 / p99",
            runs.first().map(|r| r.sizes.probe_users).unwrap_or(0),
            runs.first().map(|r| r.sizes.probe_wait_ms).unwrap_or(0)
        ),
        each(&|r| Some(p50_p99(&probe(r, "me_probe")?))),
        "",
    );
    row(
        "GET /me probe while login_flood saturates the pool: p50 / p99".into(),
        each(&|r| {
            let s = request(r, "login_flood+me_probe", "GET /me (probe)")?;
            Some(with_errors(p50_p99(&s.latency), s))
        }),
        "",
    );
    row(
        "  ratio saturated / idle: p50, p99".into(),
        each(&|r| {
            let idle = probe(r, "me_probe")?;
            let busy = probe(r, "login_flood+me_probe")?;
            let p50 = busy.p50_us as f64 / idle.p50_us.max(1) as f64;
            let p99 = busy.p99_us as f64 / idle.p99_us.max(1) as f64;
            Some(format!("{p50:.1}, {p99:.1} ({})", verdict(p99 <= 3.0)))
        }),
        "p99 <= 3",
    );
    row(
        "  logins/s meanwhile".into(),
        each(&|r| {
            let s = request(r, "login_flood+me_probe", "POST /auth/login")?;
            Some(with_errors(rate(s.ok_per_s), s))
        }),
        "",
    );

    // /me beside a 16-connection login flood, against /me alone.
    row(
        format!(
            "GET /me, {} users, beside a 16-connection login flood: throughput, p50 / p99",
            runs.first().map(|r| r.sizes.read_users).unwrap_or(0)
        ),
        each(&|r| throughput(r, "flood16+me", "GET /me")),
        "",
    );
    row(
        "  share of /me alone: throughput; p99 ratio".into(),
        each(&|r| {
            let alone = request(r, "me", "GET /me")?;
            let beside = request(r, "flood16+me", "GET /me")?;
            let share = beside.ok_per_s / alone.ok_per_s.max(f64::MIN_POSITIVE);
            let p99 = beside.latency.p99_us as f64 / alone.latency.p99_us.max(1) as f64;
            Some(format!(
                "{share:.2} ({}); {p99:.1} ({})",
                verdict(share >= 0.7),
                verdict(p99 <= 3.0)
            ))
        }),
        ">= 0.7; <= 3",
    );
    row(
        "  logins/s meanwhile; ratio to the cores left to hashing / hash time".into(),
        each(&|r| {
            let ph = phase(r, "flood16+me")?;
            let s = ph.window.requests.get("POST /auth/login")?;
            let seconds = ph.cpu_seconds.max(f64::MIN_POSITIVE);
            // The cores everything else (authd's other threads, goose, other processes) left.
            let authd_other = ph.server_cpu_s? / seconds - hasher_cores(ph);
            let left =
                (cores - authd_other - ph.client_cpu_s? / seconds - other_cores(ph).unwrap_or(0.0))
                    .max(f64::MIN_POSITIVE);
            let ratio = s.ok_per_s / (left / (hash_ms / 1000.0));
            Some(format!(
                "{}; {left:.2} cores left (hashers used {:.2}), {ratio:.2} ({})",
                rate(s.ok_per_s),
                hasher_cores(ph),
                verdict(ratio >= 0.9)
            ))
        }),
        ">= 0.9",
    );

    // /me against the framework's ceiling.
    let read_users = runs.first().map(|r| r.sizes.read_users).unwrap_or(0);
    row(
        format!("GET /me, {read_users} users: throughput, p50 / p99"),
        each(&|r| throughput(r, "me", "GET /me")),
        "",
    );
    row(
        format!("GET /health/live, {read_users} users: throughput, p50 / p99"),
        each(&|r| throughput(r, "live", "GET /health/live")),
        "",
    );
    row(
        "  ratio /me / /health/live throughput".into(),
        each(&|r| {
            let me = request(r, "me", "GET /me")?.ok_per_s;
            let live = request(r, "live", "GET /health/live")?.ok_per_s;
            let ratio = me / live.max(f64::MIN_POSITIVE);
            Some(format!("{ratio:.2} ({})", verdict(ratio >= 0.7)))
        }),
        ">= 0.7",
    );
    let cpu = |r: &RunReport, phase_name: &str, req: &str| -> Option<String> {
        let ph = phase(r, phase_name)?;
        let s = ph.window.requests.get(req)?;
        let server = ph.server_cpu_s?;
        let client = ph.client_cpu_s?;
        let seconds = ph.cpu_seconds.max(f64::MIN_POSITIVE);
        let per_req_us = server / (s.count.max(1) as f64) * 1e6;
        Some(format!(
            "{per_req_us:.0} us/req; authd {:.2} + goose {:.2} cores",
            server / seconds,
            client / seconds
        ))
    };
    let threads = |r: &RunReport, phase_name: &str| -> Option<String> {
        let ph = phase(r, phase_name)?;
        Some(
            ph.server_threads
                .iter()
                .take(4)
                .map(|(name, cores)| format!("{name} {cores:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    for (phase_name, request_name, path) in [
        ("me", "GET /me", "/me"),
        ("live", "GET /health/live", "/health/live"),
    ] {
        row(
            format!("  authd CPU per request, cores busy: {path}"),
            each(&|r| cpu(r, phase_name, request_name)),
            "",
        );
        row(
            format!("  authd's busiest threads (cores): {path}"),
            each(&|r| threads(r, phase_name)),
            "",
        );
    }

    // Flood past the pool's bound.
    row(
        format!(
            "flood ({} users = {} x capacity): answers/s, share 503",
            runs.first()
                .map(|r| r.sizes.flood_factor * r.sizes.capacity())
                .unwrap_or(0),
            runs.first().map(|r| r.sizes.flood_factor).unwrap_or(0)
        ),
        each(&|r| {
            let s = request(r, "flood10x", "POST /auth/login")?;
            let n503 = status_latency(s, 503).map(|l| l.count).unwrap_or(0);
            Some(format!(
                "{}, {:.1} % 503",
                rate(s.per_s),
                100.0 * n503 as f64 / s.count.max(1) as f64
            ))
        }),
        "",
    );
    row(
        "  503 latency p50 / p99".into(),
        each(&|r| {
            let (_, l) = flood_logins(r, 503)?;
            Some(format!("{} ({})", p50_p99(l), verdict(l.p99_us < 10_000)))
        }),
        "p99 < 10 ms",
    );
    row(
        "  logins served (200) meanwhile, their p50 / p99".into(),
        each(&|r| {
            let (s, l) = flood_logins(r, 200)?;
            Some(format!("{}, {}", rate(s.ok_per_s), p50_p99(l)))
        }),
        "",
    );
    row(
        "  HTTP workers' CPU per answer; cores: HTTP workers, other authd threads, goose, others"
            .into(),
        each(&|r| {
            let ph = phase(r, "flood10x")?;
            let s = ph.window.requests.get("POST /auth/login")?;
            let seconds = ph.cpu_seconds.max(f64::MIN_POSITIVE);
            let http = http_worker_cores(ph);
            let authd = ph.server_cpu_s? / seconds;
            Some(format!(
                "{:.0} us; {http:.2}, {:.2}, {:.2}, {:.2}",
                http * seconds / s.count.max(1) as f64 * 1e6,
                (authd - http).max(0.0),
                ph.client_cpu_s? / seconds,
                other_cores(ph)?
            ))
        }),
        "",
    );
    row(
        "  authd's busiest threads (cores)".into(),
        each(&|r| threads(r, "flood10x")),
        "",
    );
    row(
        "  authd peak RSS during the flood (VmRSS sampled every 20 ms)".into(),
        each(&|r| {
            let ph = phase(r, "flood10x")?;
            Some(format!(
                "{} (VmHWM {}; VmRSS {} before the flood)",
                mib(ph.rss_peak_kib?),
                ph.hwm_after_kib.map(mib).unwrap_or_default(),
                ph.rss_before_kib.map(mib).unwrap_or_default()
            ))
        }),
        "",
    );
    row(
        "  bound: workers x m_cost + idle baseline".into(),
        each(&|r| {
            let ph = phase(r, "flood10x")?;
            let baseline = r.baseline_rss_kib?;
            let bound = r.sizes.hasher_workers as u64 * hash.params.m_kib as u64 + baseline;
            let peak = ph.rss_peak_kib?;
            Some(format!(
                "{} x {} + {} = {} ({})",
                r.sizes.hasher_workers,
                mib(hash.params.m_kib as u64),
                mib(baseline),
                mib(bound),
                verdict(peak <= bound)
            ))
        }),
        "peak <= bound",
    );

    row(
        "  the flood's own growth: peak - VmRSS before it".into(),
        each(&|r| {
            let ph = phase(r, "flood10x")?;
            let growth = ph.rss_peak_kib?.saturating_sub(ph.rss_before_kib?);
            let hashing = r.sizes.hasher_workers as u64 * hash.params.m_kib as u64;
            Some(format!(
                "{} (hashing {} + {})",
                mib(growth),
                mib(hashing),
                mib(growth.saturating_sub(hashing))
            ))
        }),
        "",
    );

    // Rotations.
    row(
        format!(
            "refresh_storm ({} users): rotations/s, p50 / p99",
            runs.first().map(|r| r.sizes.refresh_users).unwrap_or(0)
        ),
        each(&|r| throughput(r, "refresh_storm", "POST /auth/refresh")),
        "",
    );

    row(
        "  cores: authd, goose, other processes (PostgreSQL, Redis, ...)".into(),
        each(&|r| {
            let ph = phase(r, "refresh_storm")?;
            let seconds = ph.cpu_seconds.max(f64::MIN_POSITIVE);
            Some(format!(
                "{:.2}, {:.2}, {:.2}",
                ph.server_cpu_s? / seconds,
                ph.client_cpu_s? / seconds,
                other_cores(ph)?
            ))
        }),
        "",
    );

    // Mixed.
    row(
        format!(
            "mixed ({} users): requests/s; share /me, refresh, login, signup",
            runs.iter()
                .find_map(|r| users_of(r, "mixed", "mixed"))
                .unwrap_or(0)
        ),
        each(&|r| {
            let ph = phase(r, "mixed")?;
            let total: u64 = ph.window.requests.values().map(|s| s.count).sum();
            let share = |name: &str| {
                let n = ph.window.requests.get(name).map(|s| s.count).unwrap_or(0);
                100.0 * n as f64 / total.max(1) as f64
            };
            Some(format!(
                "{}; {:.0} / {:.0} / {:.0} / {:.0} %",
                rate(ph.window.requests.values().map(|s| s.per_s).sum()),
                share("GET /me"),
                share("POST /auth/refresh"),
                share("POST /auth/login"),
                share("POST /auth/signup")
            ))
        }),
        "70/20/8/2",
    );
    for (req, label, ok) in [
        ("GET /me", "/me", 200),
        ("POST /auth/refresh", "refresh", 200),
        ("POST /auth/login", "login", 200),
        ("POST /auth/signup", "signup", 201),
    ] {
        row(
            format!("  mixed {label}: p50 / p99 of its {ok}s, other answers"),
            each(&|r| {
                let s = request(r, "mixed", req)?;
                let l = status_latency(s, ok)?;
                let others = non_2xx(s);
                Some(if others.is_empty() {
                    p50_p99(l)
                } else {
                    format!("{} ({others})", p50_p99(l))
                })
            }),
            "",
        );
    }
    row(
        "other processes' CPU during the windows: most, in phase; steal".into(),
        each(&|r| {
            let (name, cores) = r
                .phases
                .iter()
                .filter_map(|ph| Some((ph.name.as_str(), other_cores(ph)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))?;
            let steal = r
                .phases
                .iter()
                .filter_map(|ph| Some(ph.machine_steal_s? / ph.cpu_seconds.max(f64::MIN_POSITIVE)))
                .fold(0.0, f64::max);
            Some(format!("{cores:.2} cores ({name}); steal {steal:.2}"))
        }),
        "~0",
    );

    // Print.
    for note in notes {
        println!("{note}");
    }
    let mut header = vec!["figure".to_string()];
    header.extend(runs.iter().map(|r| r.backend.clone()));
    header.push("goal".into());
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut line = vec![r.figure.clone()];
            line.extend(r.cells.iter().cloned());
            line.push(r.goal.clone());
            line
        })
        .collect();
    let columns = header.len();
    let mut widths = vec![0usize; columns];
    for line in std::iter::once(&header).chain(body.iter()) {
        for (i, cell) in line.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let print_line = |line: &Vec<String>| {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    print_line(&header);
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for line in &body {
        print_line(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ms(780), "0.78 ms");
        assert_eq!(ms(12_345), "12.3 ms");
        assert_eq!(ms(588_000), "588 ms");
        assert_eq!(rate(37_436.2), "37,436/s");
        assert_eq!(rate(1_000.0), "1,000/s");
        assert_eq!(rate(13.25), "13.2/s");
        assert_eq!(rate(140.4), "140/s");
    }
}
