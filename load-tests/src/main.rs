//! authd-load: goose load tests for authd, the hasher's own cost on this machine, and the table of
//! figures. `load-tests/run.sh` drives it end to end; see load-tests/README.md.
//!
//!   authd-load hash-cost  --m-kib 65536 --t 3 --p 4 --threads 2 > hash.json
//!   authd-load seed-file  --count 400 --m-kib 65536 --t 3 --p 4 > users.jsonl   (for `authd users import`)
//!   authd-load run        --host http://127.0.0.1:18080 --pid PID --phases login_flood,me > run.json
//!   authd-load table      hash.json embedded.json postgres.json
//!
//! Targets loopback only: any --host outside 127.0.0.0/8, ::1 and localhost is refused.

mod hashcost;
mod phases;
mod procfs;
mod record;
mod report;
mod scenarios;
mod target;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use hashcost::Argon2Params;
use phases::{PhaseReport, Sizes};

/// The password of every seeded account and of the mixed scenario's signups.
const DEFAULT_PASSWORD: &str = "kiwi orbit lantern glacier 42";

#[derive(Parser)]
#[command(
    name = "authd-load",
    about = "Load tests and figures for authd (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Copy)]
struct ParamArgs {
    /// argon2id memory in KiB (authd: hasher.argon2_memory_kib)
    #[arg(long, default_value_t = 65536)]
    m_kib: u32,
    /// argon2id iterations (hasher.argon2_iterations)
    #[arg(long, default_value_t = 3)]
    t: u32,
    /// argon2id parallelism (hasher.argon2_parallelism)
    #[arg(long, default_value_t = 4)]
    p: u32,
}

impl ParamArgs {
    fn params(self) -> Argon2Params {
        Argon2Params {
            m_kib: self.m_kib,
            t: self.t,
            p: self.p,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Time one argon2id hash with these parameters (median of --runs), and --threads at once.
    HashCost {
        #[command(flatten)]
        params: ParamArgs,
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Hashes at once for the parallel figure (authd's hasher workers).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Print a JSON-lines file for `authd users import`: --count accounts
    /// `<prefix>-<i>@example.com`, all with one argon2id hash of --password made with today's
    /// parameters (so logins verify at full cost and never trigger a re-hash).
    SeedFile {
        #[command(flatten)]
        params: ParamArgs,
        #[arg(long, default_value_t = 400)]
        count: usize,
        #[arg(long, default_value = "load")]
        prefix: String,
        #[arg(long, default_value = DEFAULT_PASSWORD)]
        password: String,
    },
    /// Run phases against a running authd and print their figures as JSON.
    Run(Box<RunArgs>),
    /// Print the table from a hash-cost JSON and one or more run JSONs.
    Table {
        hash: PathBuf,
        runs: Vec<PathBuf>,
        /// Lines printed above the table (date, load, config...).
        #[arg(long)]
        note: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// authd's origin; loopback only.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    host: String,
    /// authd's process id, for its memory and CPU (optional).
    #[arg(long)]
    pid: Option<u32>,
    /// A label for the table, e.g. embedded or postgres+redis.
    #[arg(long, default_value = "embedded")]
    backend: String,
    /// Comma-separated phases, in order: live, me, me_probe, login_flood, login_flood+me_probe,
    /// flood10x, refresh_storm, mixed; or "all".
    #[arg(long, default_value = "all")]
    phases: String,
    #[arg(long, default_value = "load")]
    prefix: String,
    /// How many seeded accounts exist (`<prefix>-0` ..).
    #[arg(long, default_value_t = 400)]
    seeded: usize,
    #[arg(long, default_value = DEFAULT_PASSWORD)]
    password: String,
    #[arg(long, default_value_t = 2)]
    hasher_workers: usize,
    #[arg(long, default_value_t = 8)]
    hasher_queue: usize,
    #[arg(long, default_value_t = 32)]
    read_users: usize,
    #[arg(long, default_value_t = 4)]
    probe_users: usize,
    #[arg(long, default_value_t = 10)]
    probe_wait_ms: u64,
    #[arg(long, default_value_t = 16)]
    refresh_users: usize,
    #[arg(long, default_value_t = 32)]
    mixed_users: usize,
    #[arg(long, default_value_t = 10)]
    flood_factor: usize,
    /// Measured seconds per phase (login phases: 1.5 x).
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Seconds to wait between phases (the hasher queue drains, connections close).
    #[arg(long, default_value_t = 2.0)]
    settle_seconds: f64,
    /// Write the JSON here rather than to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra goose options for every phase (after --), e.g. -- --report-file report.html
    #[arg(last = true)]
    goose_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub backend: String,
    pub base_url: String,
    pub sizes: Sizes,
    /// authd's VmRSS before the first phase (KiB): the idle baseline.
    pub baseline_rss_kib: Option<u64>,
    pub phases: Vec<PhaseReport>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::HashCost {
            params,
            runs,
            threads,
        } => match hashcost::measure(params.params(), runs, threads) {
            Ok(cost) => print_json(&cost),
            Err(e) => fail(&e),
        },
        Command::SeedFile {
            params,
            count,
            prefix,
            password,
        } => seed_file(params.params(), count, &prefix, &password),
        Command::Run(args) => {
            let args = *args;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(run(args))
        }
        Command::Table { hash, runs, note } => match report::print_table(&hash, &runs, &note) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("authd-load: {message}");
    ExitCode::FAILURE
}

fn print_json<T: Serialize>(value: &T) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
    ExitCode::SUCCESS
}

fn seed_file(params: Argon2Params, count: usize, prefix: &str, password: &str) -> ExitCode {
    let hash = match hashcost::phc_hash(params, password) {
        Ok(hash) => hash,
        Err(e) => return fail(&e),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for i in 0..count {
        let line = serde_json::json!({
            "email": format!("{prefix}-{i}@example.com"),
            "name": format!("Load {i}"),
            "passwordHash": hash,
            "emailVerified": true,
        });
        if writeln!(out, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn run(args: RunArgs) -> ExitCode {
    let base_url = match target::loopback_base_url(&args.host) {
        Ok(url) => url,
        Err(e) => return fail(&e),
    };
    let names: Vec<String> = if args.phases == "all" {
        phases::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.phases
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let sizes = Sizes {
        hasher_workers: args.hasher_workers,
        hasher_queue: args.hasher_queue,
        read_users: args.read_users,
        probe_users: args.probe_users,
        probe_wait_ms: args.probe_wait_ms,
        refresh_users: args.refresh_users,
        mixed_users: args.mixed_users,
        flood_factor: args.flood_factor,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        max_requests: args.max_requests,
    };
    for name in &names {
        if let Err(e) = phases::composition(name, &sizes) {
            return fail(&e);
        }
    }
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string();
    scenarios::init(scenarios::Shared {
        email_prefix: args.prefix.clone(),
        seeded: args.seeded,
        password: args.password.clone(),
        run_id,
    });
    let baseline_rss_kib = args.pid.and_then(procfs::rss_kib);
    let mut reports = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(args.settle_seconds)).await;
        }
        eprintln!("authd-load: {} phase {name} ...", args.backend);
        match phases::run_phase(name, &base_url, &sizes, args.pid, &args.goose_args).await {
            Ok(report) => {
                eprintln!("authd-load:   {}", report::phase_summary(&report));
                reports.push(report);
            }
            Err(e) => return fail(&e),
        }
    }
    let run = RunReport {
        backend: args.backend,
        base_url,
        sizes,
        baseline_rss_kib,
        phases: reports,
    };
    let text = serde_json::to_string_pretty(&run).expect("serialisable");
    match &args.out {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{}: {e}", path.display())),
        },
        None => {
            println!("{text}");
            ExitCode::SUCCESS
        }
    }
}
