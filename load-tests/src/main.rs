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

use gumdrop::Options;
use serde::{Deserialize, Serialize};

use hashcost::Argon2Params;
use phases::{PhaseReport, Sizes};

/// Load tests and figures for authd (loopback only). Commands: hash-cost, seed-file, run, table;
/// `authd-load COMMAND --help` for each.
#[derive(Options)]
struct Cli {
    /// print help
    help: bool,
    #[options(command)]
    command: Option<Command>,
}

#[derive(Options)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    #[options(
        help = "time one argon2id hash with these parameters (median of --runs), and --threads at once"
    )]
    HashCost(HashCostArgs),
    #[options(
        help = "print a JSON-lines file for `authd users import`: --count accounts \
                <prefix>-<i>@example.com, all with one argon2id hash of --password made with \
                today's parameters (logins verify at full cost and never trigger a re-hash)"
    )]
    SeedFile(SeedFileArgs),
    #[options(help = "run phases against a running authd and write their figures as JSON")]
    Run(RunArgs),
    #[options(help = "print the table from a hash-cost JSON and run JSONs: table HASH RUN...")]
    Table(TableArgs),
}

// Each option's help is its doc comment; only --help has a short form (-h).

#[derive(Options)]
#[options(no_short)]
struct HashCostArgs {
    /// print help
    #[options(short = "h")]
    help: bool,
    /// argon2id memory in KiB (hasher.argon2_memory_kib)
    #[options(default = "65536")]
    m_kib: u32,
    /// argon2id iterations (hasher.argon2_iterations)
    #[options(default = "3")]
    t: u32,
    /// argon2id parallelism (hasher.argon2_parallelism)
    #[options(default = "4")]
    p: u32,
    /// hashes timed one at a time
    #[options(default = "11")]
    runs: usize,
    /// hashes at once (authd's hasher workers)
    #[options(default = "2")]
    threads: usize,
}

#[derive(Options)]
#[options(no_short)]
struct SeedFileArgs {
    /// print help
    #[options(short = "h")]
    help: bool,
    /// argon2id memory in KiB
    #[options(default = "65536")]
    m_kib: u32,
    /// argon2id iterations
    #[options(default = "3")]
    t: u32,
    /// argon2id parallelism
    #[options(default = "4")]
    p: u32,
    /// accounts
    #[options(default = "400")]
    count: usize,
    /// email prefix
    #[options(default = "load")]
    prefix: String,
    /// their password
    #[options(default = "kiwi orbit lantern glacier 42")]
    password: String,
}

#[derive(Options)]
#[options(no_short)]
struct TableArgs {
    /// print help
    #[options(short = "h")]
    help: bool,
    /// a line printed above the table (repeatable)
    note: Vec<String>,
    /// a second hash-cost JSON (timed after the load): the ceiling uses the mean
    hash_again: Option<PathBuf>,
    /// hash-cost JSON, then one run JSON per column
    #[options(free)]
    files: Vec<PathBuf>,
}

#[derive(Options)]
#[options(no_short)]
struct RunArgs {
    /// print help
    #[options(short = "h")]
    help: bool,
    /// authd's origin; loopback only
    #[options(default = "http://127.0.0.1:18080")]
    host: String,
    /// authd's process id, for its memory and CPU
    pid: Option<u32>,
    /// a label for the table's column
    #[options(default = "embedded")]
    backend: String,
    #[options(
        help = "comma-separated phases, in order (live, me, me_probe, login_flood, \
                login_flood+me_probe, flood10x, refresh_storm, mixed) or all",
        default = "all"
    )]
    phases: String,
    /// seeded accounts' email prefix
    #[options(default = "load")]
    prefix: String,
    /// how many seeded accounts exist
    #[options(default = "400")]
    seeded: usize,
    /// their password
    #[options(default = "kiwi orbit lantern glacier 42")]
    password: String,
    /// authd's hasher workers
    #[options(default = "2")]
    hasher_workers: usize,
    /// authd's hasher queue capacity
    #[options(default = "8")]
    hasher_queue: usize,
    /// users of the me and live phases
    #[options(default = "32")]
    read_users: usize,
    /// users of the /me latency probe
    #[options(default = "4")]
    probe_users: usize,
    /// the probe's pause after each request (ms)
    #[options(default = "5")]
    probe_wait_ms: u64,
    /// users of refresh_storm
    #[options(default = "16")]
    refresh_users: usize,
    /// users of mixed
    #[options(default = "32")]
    mixed_users: usize,
    /// flood10x's users per unit of pool capacity
    #[options(default = "10")]
    flood_factor: usize,
    /// measured seconds per phase (login phases 1.5 x)
    #[options(default = "8")]
    seconds: f64,
    /// warm-up before each window (s)
    #[options(default = "1")]
    warmup_seconds: f64,
    /// requests counted per phase at most
    #[options(default = "1000000")]
    max_requests: u64,
    /// pause between phases (s)
    #[options(default = "2")]
    settle_seconds: f64,
    /// write the JSON here rather than to standard output
    out: Option<PathBuf>,
    /// after --: goose options for every phase, e.g. -- --report-file r.html
    #[options(free)]
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match Cli::parse_args_default(&args) {
        Ok(cli) => cli,
        Err(e) => return fail(&format!("{e} (authd-load --help)")),
    };
    let Some(command) = cli.command else {
        println!("{}", Cli::usage());
        if let Some(commands) = Cli::command_list() {
            println!("\nCommands:\n{commands}");
        }
        return if cli.help {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    };
    if command_help(&command) {
        return ExitCode::SUCCESS;
    }
    match command {
        Command::HashCost(a) => {
            let params = Argon2Params::new(a.m_kib, a.t, a.p);
            match hashcost::measure(params, a.runs, a.threads) {
                Ok(cost) => print_json(&cost),
                Err(e) => fail(&e),
            }
        }
        Command::SeedFile(a) => {
            let params = Argon2Params::new(a.m_kib, a.t, a.p);
            seed_file(params, a.count, &a.prefix, &a.password)
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(run(args))
        }
        Command::Table(a) => {
            let Some((hash, runs)) = a.files.split_first() else {
                return fail("table HASH.json RUN.json...");
            };
            match report::print_table(hash, a.hash_again.as_deref(), runs, &a.note) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
    }
}

/// Prints a command's help when asked; answers whether it did.
fn command_help(command: &Command) -> bool {
    let usage = match command {
        Command::HashCost(a) if a.help => HashCostArgs::usage(),
        Command::SeedFile(a) if a.help => SeedFileArgs::usage(),
        Command::Run(a) if a.help => RunArgs::usage(),
        Command::Table(a) if a.help => TableArgs::usage(),
        _ => return false,
    };
    println!("{usage}");
    true
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
    if args.password.is_empty() || args.seeded == 0 {
        return fail("--password and --seeded must not be empty");
    }
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
