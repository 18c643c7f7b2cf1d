//! Creating the database and applying the migrations, under an advisory lock.

use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::{pg_config, unavailable, PostgresStore, Use};
use crate::config::DatabaseSettings;
use crate::domain::email::CanonicalEmail;
use crate::store::{
    applies_canonical_emails, check_schema, configured_runner, migration_error, stamps,
    MigrationTarget, StoreResult,
};

mod embedded {
    refinery::embed_migrations!("sql/postgres");
}

/// Serialises migrations of several nodes starting at once (any constant works; this is "authd").
const MIGRATION_LOCK_KEY: i64 = 0x0061_7574_6864;

impl PostgresStore {
    /// Creates the database named in the URL if it is missing (development convenience).
    pub async fn create_database_if_missing(settings: &DatabaseSettings) -> StoreResult<bool> {
        let target = pg_config(settings, Use::Migrations)?;
        let Some(name) = target.get_dbname().map(str::to_string) else {
            return Ok(false);
        };
        let mut admin = target.clone();
        admin.dbname("postgres");
        let (client, connection) = admin.connect(NoTls).await.map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => {}
                // Another node created it in the meantime.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(!exists)
    }

    /// Applies pending migrations under an advisory lock, each in its own transaction. Refuses a
    /// database that holds migrations this build does not know (migrated by a newer authd).
    pub async fn migrate(settings: &DatabaseSettings) -> StoreResult<Vec<String>> {
        Self::migrate_to(settings, None).await
    }

    /// Refuses a database whose schema is not the one this authd ships, without changing it (a
    /// start with `database.auto_migrate = false`).
    pub async fn check_schema(settings: &DatabaseSettings) -> StoreResult<()> {
        let (mut client, connection) = pg_config(settings, Use::Migrations)?
            .connect(NoTls)
            .await
            .map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        let runner = embedded::migrations::runner();
        // A database never migrated has no history table: "none", not a failed query.
        let history = "SELECT to_regclass('refinery_schema_history') IS NOT NULL";
        let applied = match client.query_one(history, &[]).await {
            Ok(row) if row.get::<_, bool>(0) => runner
                .get_applied_migrations_async(&mut client)
                .await
                .map_err(|e| migration_error(&e)),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        };
        drop(client);
        let _ = driver.await;
        check_schema(&stamps(&applied?), &stamps(runner.get_migrations()))
    }

    /// Applies migrations up to `target` (all when `None`).
    pub async fn migrate_to(
        settings: &DatabaseSettings,
        target: MigrationTarget,
    ) -> StoreResult<Vec<String>> {
        let (mut client, connection) = pg_config(settings, Use::Migrations)?
            .connect(NoTls)
            .await
            .map_err(unavailable)?;
        let driver = tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        let report = configured_runner(embedded::migrations::runner(), target)
            .run_async(&mut client)
            .await;
        let recanonicalized = match &report {
            Ok(report) if applies_canonical_emails(report) => recanonicalize_emails(&client).await,
            _ => Ok(()),
        };
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        drop(client);
        let _ = driver.await;
        let report = report.map_err(|e| migration_error(&e))?;
        recanonicalized?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
}

/// Once, with the migration that introduced Unicode-aware canonical emails: recomputes the
/// comparison key of every account. Two accounts that now fold to one mailbox keep their rows; the
/// younger keeps its old key (logged), so nothing is lost and an operator can merge them.
async fn recanonicalize_emails(client: &tokio_postgres::Client) -> StoreResult<()> {
    let rows = client
        .query(
            "SELECT id, email, email_canonical FROM users ORDER BY created_at, id",
            &[],
        )
        .await?;
    for row in rows {
        let (id, address, old): (Uuid, String, String) = (row.get(0), row.get(1), row.get(2));
        let new = CanonicalEmail::of(&address).as_str().to_string();
        if new == old {
            continue;
        }
        match client
            .execute(
                "UPDATE users SET email_canonical = $2 WHERE id = $1",
                &[&id, &new],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => tracing::warn!(
                user_id = %id,
                "two live accounts hold one mailbox under Unicode normalisation; this one keeps its old key"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
