//! Applying the migrations, each in a transaction.

use rusqlite::params;

use super::SqliteStore;
use crate::domain::email::CanonicalEmail;
use crate::store::{
    applies_canonical_emails, check_schema, configured_runner, migration_error, stamps,
    MigrationTarget, StoreError, StoreResult,
};

mod embedded {
    refinery::embed_migrations!("sql/sqlite");
}

impl SqliteStore {
    /// Applies pending migrations, each in a transaction; refuses a database that holds migrations
    /// this build does not know.
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        self.migrate_to(None).await
    }

    /// Refuses a database whose schema is not the one this authd ships, without changing it (a
    /// start with `database.auto_migrate = false`).
    pub async fn check_schema(&self) -> StoreResult<()> {
        self.connection
            .call(move |c| {
                let runner = embedded::migrations::runner();
                // A database never migrated has no history table: "none", not a failed query.
                let history = "SELECT count(*) FROM sqlite_master
                               WHERE type = 'table' AND name = 'refinery_schema_history'";
                let shipped = stamps(runner.get_migrations());
                if c.query_row(history, [], |row| row.get::<_, i64>(0))? == 0 {
                    return Ok(check_schema(&[], &shipped));
                }
                Ok(match runner.get_applied_migrations(c) {
                    Ok(applied) => check_schema(&stamps(&applied), &shipped),
                    Err(e) => Err(migration_error(&e)),
                })
            })
            .await
            .map_err(|e| StoreError::Backend(format!("schema check failed: {e}")))?
    }

    /// Applies migrations up to `target` (all when `None`).
    pub async fn migrate_to(&self, target: MigrationTarget) -> StoreResult<Vec<String>> {
        self.connection
            .call(move |c| {
                let report = match configured_runner(embedded::migrations::runner(), target).run(c)
                {
                    Ok(report) => report,
                    Err(e) => return Ok(Err(migration_error(&e))),
                };
                if applies_canonical_emails(&report) {
                    recanonicalize_emails(c)?;
                }
                Ok(Ok(report
                    .applied_migrations()
                    .iter()
                    .map(|m| m.to_string())
                    .collect()))
            })
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?
    }
}

/// Once, with the migration that introduced Unicode-aware canonical emails: recomputes the
/// comparison key of every account (see the PostgreSQL backend; the same rule).
fn recanonicalize_emails(c: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let accounts: Vec<(String, String, String)> = c
        .prepare("SELECT id, email, email_canonical FROM users ORDER BY created_at, id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, address, old) in accounts {
        let new = CanonicalEmail::of(&address).as_str().to_string();
        if new == old {
            continue;
        }
        match c.execute(
            "UPDATE users SET email_canonical = ?2 WHERE id = ?1",
            params![id, new],
        ) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                tracing::warn!(
                    user_id = %id,
                    "two live accounts hold one mailbox under Unicode normalisation; this one keeps its old key"
                )
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
