use std::process::ExitCode;

use clap::{Parser, Subcommand};

use authd::app::{self, Application};
use authd::{config, telemetry};

/// authd: an authentication service over REST (passwords, sessions with refresh-token rotation and
/// reuse detection, second factors, passkeys, provider sign-in).
///
/// Configuration is layered: config/default.toml, then config/$AUTHD_ENV.toml (development when
/// unset), then DATABASE_URL / REDIS_URL / JWT_SECRET / PORT / ..., then AUTHD__SECTION__KEY
/// variables. Every key is listed in docs/configuration.md (`authd config reference` prints the table).
#[derive(Parser)]
#[command(name = "authd", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (the default). Applies pending migrations first when
    /// database.auto_migrate is on; stops gracefully on SIGTERM or Ctrl-C.
    Serve,
    /// Apply pending database migrations (sql/postgres or sql/sqlite, after database.url) and
    /// exit. Refuses a database that was migrated by a newer authd.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage users from the command line.
    #[command(alias = "user")]
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Password hashing.
    Hash {
        #[command(subcommand)]
        command: HashCommand,
    },
}

#[derive(Subcommand)]
enum HashCommand {
    /// Find argon2id parameters that take TARGET milliseconds on this machine, with
    /// hasher.argon2_parallelism: memory first, then passes. Prints each trial, the settings, and
    /// the login throughput the configured hasher.workers can then verify at most. Run it on the
    /// hardware authd runs on, while it is otherwise idle.
    Calibrate {
        /// The time one hash should take.
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
        target_ms: u64,
        /// Where memory starts (OWASP's floor for argon2id is 19 MiB).
        #[arg(long, default_value_t = 19456, value_parser = clap::value_parser!(u32).range(8..))]
        min_memory_kib: u32,
        /// The most memory one hash may take (at least --min-memory-kib); hasher.workers hashes
        /// run at once.
        #[arg(long, default_value_t = 1048576, value_parser = clap::value_parser!(u32).range(8..))]
        max_memory_kib: u32,
        /// Hashes timed per trial (the median counts).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        samples: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new key for tokens.algorithm (RS*/PS*/ES*/EdDSA). Every node publishes it at its next
    /// reload (within tokens.key_refresh_seconds), and all sign with it once that time and 5 s
    /// more have passed; tokens signed by the previous key keep verifying until they expire, then
    /// that key is retired from the JWKS.
    Rotate,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create an account, e.g. the first admin: `authd user create --admin --email a@b.c`.
    /// The password is read from a prompt, or from the first line of standard input when that is
    /// not a terminal; never from an argument, where it would land in shell history.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
    },
    /// Import users from a JSON-lines FILE ("-" for standard input), one object per line:
    /// {"email", "name"?, "passwordHash", "role"?, "emailVerified"?, "createdAt"?}. The hash is
    /// bcrypt ($2a$/$2b$/$2y$) or an argon2 PHC string; it is re-hashed with the current argon2id
    /// parameters at the user's first login. Emails that already have an account are left alone,
    /// so importing twice is harmless; bad lines are reported and skipped. Exits 1 if any line failed.
    Import { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the effective configuration and print it, secrets and URL passwords redacted.
    Check,
    /// Print every setting with its default, environment variables and meaning (Markdown; the
    /// README's table).
    Reference,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match config::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("authd: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config {
            command: ConfigCommand::Reference,
        } => {
            print!("{}", config::reference_markdown());
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!("# environment: {}", settings.environment.as_str());
            print!("{}", settings.redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Users {
            command: UsersCommand::Create { email, name, admin },
        } => {
            telemetry::init(&settings);
            create_user(&settings, &email, name.as_deref(), admin).await
        }
        Command::Users {
            command: UsersCommand::Import { file },
        } => {
            telemetry::init(&settings);
            import(&settings, &file).await
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            telemetry::init(&settings);
            let Some(store) = store_or_report(&settings).await else {
                return ExitCode::FAILURE;
            };
            match authd::keys::rotate(store.as_ref(), &settings.tokens).await {
                Ok(kid) => {
                    println!(
                        "new signing key {kid} ({})",
                        settings.tokens.algorithm.name()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("authd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hash {
            command:
                HashCommand::Calibrate {
                    min_memory_kib,
                    max_memory_kib,
                    ..
                },
        } if min_memory_kib > max_memory_kib => {
            eprintln!("authd: --min-memory-kib {min_memory_kib} is above --max-memory-kib {max_memory_kib}");
            ExitCode::from(2)
        }
        Command::Hash {
            command:
                HashCommand::Calibrate {
                    target_ms,
                    min_memory_kib,
                    max_memory_kib,
                    samples,
                },
        } => calibrate(
            &settings,
            authd::calibrate::Bounds {
                target: std::time::Duration::from_millis(target_ms),
                parallelism: settings.hasher.argon2_parallelism,
                min_memory_kib,
                max_memory_kib,
                max_iterations: 10,
            },
            usize::try_from(samples).unwrap_or(1),
        ),
        Command::Migrate => {
            telemetry::init(&settings);
            match app::open_store(&settings, true).await {
                Ok((_, applied)) => {
                    println!("applied {} migration(s)", applied.len());
                    for name in applied {
                        println!("  {name}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("authd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            telemetry::init(&settings);
            let application = match Application::build(settings).await {
                Ok(application) => application,
                Err(e) => {
                    eprintln!("authd: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            match application.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("authd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn calibrate(
    settings: &config::Settings,
    bounds: authd::calibrate::Bounds,
    samples: usize,
) -> ExitCode {
    println!(
        "calibrating argon2id for {} ms on this machine (parallelism {}, memory {}..={} KiB, {} samples a trial)",
        bounds.target.as_millis(),
        bounds.parallelism,
        bounds.min_memory_kib,
        bounds.max_memory_kib,
        samples
    );
    let measure = |m, t, p| {
        let time = authd::calibrate::measure(m, t, p, samples)?;
        println!(
            "  m={m} KiB t={t} p={p}: {:.1} ms",
            time.as_secs_f64() * 1000.0
        );
        Ok(time)
    };
    let (chosen, _) = match authd::calibrate::search(bounds, measure) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("authd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = settings.hasher.effective_workers();
    let ceiling = authd::calibrate::login_ceiling(workers, chosen.time);
    if chosen.time > bounds.target {
        println!("even the least memory takes longer than the target on this machine");
    }
    println!(
        "chosen: m={} KiB t={} p={}: {:.1} ms a hash",
        chosen.memory_kib,
        chosen.iterations,
        chosen.parallelism,
        chosen.time.as_secs_f64() * 1000.0
    );
    println!(
        "login ceiling with hasher.workers = {workers}: {ceiling:.1} logins/s (one hash each; \
         {} MiB of memory while all workers hash)",
        u64::from(chosen.memory_kib) * workers as u64 / 1024
    );
    println!();
    println!("[hasher]");
    println!("argon2_memory_kib = {}", chosen.memory_kib);
    println!("argon2_iterations = {}", chosen.iterations);
    println!("argon2_parallelism = {}", chosen.parallelism);
    println!();
    println!(
        "# or: AUTHD__HASHER__ARGON2_MEMORY_KIB={} AUTHD__HASHER__ARGON2_ITERATIONS={} AUTHD__HASHER__ARGON2_PARALLELISM={}",
        chosen.memory_kib, chosen.iterations, chosen.parallelism
    );
    ExitCode::SUCCESS
}

async fn import(settings: &config::Settings, file: &std::path::Path) -> ExitCode {
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(_) if file.is_dir() => {
                eprintln!("authd: {}: is a directory, not a file", file.display());
                return ExitCode::from(2);
            }
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("authd: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    let Some(store) = store_or_report(settings).await else {
        return ExitCode::FAILURE;
    };
    match authd::flows::import::import_users(
        store.as_ref(),
        input,
        settings.auth.allow_email_reuse_after_delete,
    )
    .await
    {
        Ok(report) => {
            for (line, reason) in &report.failures {
                eprintln!("line {line}: {reason}");
            }
            println!(
                "imported {}, already present {}, failed {}",
                report.imported,
                report.already_present,
                report.failures.len()
            );
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("authd: import stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_password() -> std::io::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            return Err(std::io::Error::other("the passwords differ"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn create_user(
    settings: &config::Settings,
    email: &str,
    name: Option<&str>,
    admin: bool,
) -> ExitCode {
    let password = match read_password() {
        Ok(password) => password,
        Err(e) => {
            eprintln!("authd: reading the password: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(store) = store_or_report(settings).await else {
        return ExitCode::FAILURE;
    };
    let hasher = match authd::actors::hasher::HasherPool::start(&settings.hasher) {
        Ok(hasher) => hasher,
        Err(e) => {
            eprintln!("authd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let breaches = match authd::breach::BreachChecker::new(&settings.auth.breached_passwords) {
        Ok(breaches) => breaches,
        Err(e) => {
            eprintln!("authd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rules = authd::flows::deps::PasswordRules {
        min_score: settings.auth.password_min_score,
        app_name: settings.auth.app_name.clone(),
        breaches,
    };
    let role = if admin {
        authd::domain::user::Role::Admin
    } else {
        authd::domain::user::Role::User
    };
    let request = authd::flows::admin::ProvisionRequest {
        email,
        name,
        role,
        password: &password,
        allow_email_reuse_after_delete: settings.auth.allow_email_reuse_after_delete,
    };
    match authd::flows::admin::provision_user(store.as_ref(), &hasher, &rules, request).await {
        Ok(user) => {
            println!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.id
            );
            ExitCode::SUCCESS
        }
        Err(authd::error::AppError::Validation(problems)) => {
            for p in problems {
                eprintln!("authd: {} {}", p.field, p.message);
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("authd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The store the settings name (migrated if `database.auto_migrate`), or `None` after saying why.
async fn store_or_report(
    settings: &config::Settings,
) -> Option<std::sync::Arc<dyn authd::store::Store>> {
    match app::open_store(settings, settings.database.auto_migrate).await {
        Ok((store, _)) => Some(store),
        Err(e) => {
            eprintln!("authd: {e:#}");
            None
        }
    }
}
