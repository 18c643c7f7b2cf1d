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

/// Whether a database whose newest applied migration is `applied` is the schema this authd
/// ships (`shipped`, its newest migration), for a start that does not migrate
/// (`database.auto_migrate = false`): behind, it needs `authd migrate`; ahead, a newer authd
/// migrated it (a rollback), and running against it is refused as migrating would.
pub(crate) fn check_schema(applied: Option<u32>, shipped: u32) -> Result<(), StoreError> {
    match applied {
        Some(version) if version == shipped => Ok(()),
        Some(version) if version > shipped => Err(StoreError::Backend(format!(
            "the database holds migration {version}, which this authd does not know: it was \
             migrated by a newer version; refusing to run against it"
        ))),
        applied => Err(StoreError::Backend(format!(
            "the database schema is at migration {}, this authd needs {shipped}: run `authd \
             migrate` (database.auto_migrate is off)",
            applied.map_or("none".to_string(), |v| v.to_string())
        ))),
    }
}

/// The newest migration of `runner`.
pub(crate) fn newest(runner: &refinery::Runner) -> u32 {
    runner
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_without_migrating_needs_the_schema_it_ships() {
        assert!(check_schema(Some(14), 14).is_ok());
        let behind = check_schema(Some(1), 14).unwrap_err().to_string();
        assert!(behind.contains("authd migrate"), "{behind}");
        assert!(check_schema(None, 14).is_err());
        let ahead = check_schema(Some(15), 14).unwrap_err().to_string();
        assert!(ahead.contains("newer version"), "{ahead}");
    }
}
