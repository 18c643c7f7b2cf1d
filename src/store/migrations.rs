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

/// A migration as the schema check compares it: its version and refinery's checksum of its
/// name and SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationStamp {
    pub version: u32,
    /// `V<version>__<name>`, as refinery names it.
    pub name: String,
    pub checksum: u64,
}

pub(crate) fn stamps<'a>(
    migrations: impl IntoIterator<Item = &'a refinery::Migration>,
) -> Vec<MigrationStamp> {
    migrations
        .into_iter()
        .map(|m| MigrationStamp {
            version: m.version(),
            name: m.to_string(),
            checksum: m.checksum(),
        })
        .collect()
}

/// Whether a database that has had the migrations `applied` is the schema this authd ships
/// (`shipped`), for a start that does not migrate (`database.auto_migrate = false`), with the
/// refusals migrating would give: a migration this authd does not know (a newer authd migrated
/// it: a rollback), or one that differs from the one of its number shipped here; then, behind,
/// it needs `authd migrate`.
pub(crate) fn check_schema(
    applied: &[MigrationStamp],
    shipped: &[MigrationStamp],
) -> Result<(), StoreError> {
    let shipped_as = |version| shipped.iter().find(|m| m.version == version);
    for migration in applied {
        match shipped_as(migration.version) {
            None => {
                return Err(StoreError::Backend(format!(
                    "the database holds migration {}, which this authd does not know: it was \
                     migrated by a newer version; refusing to run against it",
                    migration.version
                )))
            }
            Some(ours) if ours.checksum != migration.checksum => {
                return Err(StoreError::Backend(format!(
                    "migration {} in the database differs from the one shipped with this authd; \
                     refusing to run",
                    migration.name
                )))
            }
            Some(_) => {}
        }
    }
    if shipped.len() == applied.len() {
        return Ok(());
    }
    let newest = |migrations: &[MigrationStamp]| migrations.iter().map(|m| m.version).max();
    Err(StoreError::Backend(format!(
        "the database schema is at migration {}, this authd needs {}: run `authd migrate` \
         (database.auto_migrate is off)",
        newest(applied).map_or("none".to_string(), |v| v.to_string()),
        newest(shipped).unwrap_or(0),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: u32, checksum: u64) -> MigrationStamp {
        let name = format!("V{version}__step");
        MigrationStamp {
            version,
            name,
            checksum,
        }
    }

    #[test]
    fn a_start_without_migrating_needs_the_schema_it_ships() {
        let shipped: Vec<_> = (1..=14).map(|v| stamp(v, u64::from(v) * 7)).collect();
        assert!(check_schema(&shipped, &shipped).is_ok());
        let behind = check_schema(&shipped[..1], &shipped)
            .unwrap_err()
            .to_string();
        assert!(
            behind.contains("at migration 1, this authd needs 14"),
            "{behind}"
        );
        assert!(behind.contains("authd migrate"), "{behind}");
        let never = check_schema(&[], &shipped).unwrap_err().to_string();
        assert!(never.contains("at migration none"), "{never}");
        let mut ahead = shipped.clone();
        ahead.push(stamp(15, 1));
        let ahead = check_schema(&ahead, &shipped).unwrap_err().to_string();
        assert!(
            ahead.contains("migration 15") && ahead.contains("newer version"),
            "{ahead}"
        );
    }

    /// A database whose migration of some number is not the one shipped (edited by hand, or
    /// another build's) is refused, as migrating refuses it, even when the newest numbers agree.
    #[test]
    fn a_migration_that_differs_from_the_one_shipped_is_refused() {
        let shipped: Vec<_> = (1..=14).map(|v| stamp(v, u64::from(v) * 7)).collect();
        let mut edited = shipped.clone();
        edited[4].checksum += 1;
        let refused = check_schema(&edited, &shipped).unwrap_err().to_string();
        assert!(
            refused.contains("migration V5__step in the database differs"),
            "{refused}"
        );
        // Behind, and one of those applied differs: the difference is what is said.
        let refused = check_schema(&edited[..6], &shipped)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("differs"), "{refused}");
    }
}
