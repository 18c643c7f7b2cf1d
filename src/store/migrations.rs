//! Migrations: one refinery runner per backend, configured the same way.

use super::StoreError;

/// Which migrations to apply: all of them, or up to a version (tests of upgrades).
pub type MigrationTarget = Option<u32>;

/// Turns a refinery error into one line an operator can act on.
pub(crate) fn migration_error(e: &refinery::Error) -> StoreError {
    let message = match e.kind() {
        refinery::error::Kind::MissingVersion(m) => format!(
            "the database holds migration {m}, which this authd does not know: it was migrated by a newer \
             version; refusing to run against it"
        ),
        refinery::error::Kind::DivergentVersion(applied, ours) => format!(
            "migration {applied} in the database differs from {ours} shipped with this authd; refusing to run"
        ),
        _ => format!("migration failed: {e}"),
    };
    StoreError::Backend(message)
}

/// Every migration in its own transaction; a database that diverges from, or runs ahead of, the
/// migrations shipped here is refused.
pub(crate) fn configured_runner(
    runner: refinery::Runner,
    target: MigrationTarget,
) -> refinery::Runner {
    let runner = runner.set_abort_divergent(true).set_abort_missing(true);
    match target {
        Some(version) => runner.set_target(refinery::Target::Version(version)),
        None => runner,
    }
}

/// The migration whose schema change comes with Unicode-aware canonical emails: when a run
/// applies it, the backend recomputes every account's comparison key once.
const CANONICAL_EMAILS_VERSION: u32 = 5;

pub(crate) fn applies_canonical_emails(report: &refinery::Report) -> bool {
    report
        .applied_migrations()
        .iter()
        .any(|m| m.version() == CANONICAL_EMAILS_VERSION)
}
