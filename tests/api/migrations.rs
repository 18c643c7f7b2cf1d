//! Data safety across versions: migrations upgrade a database that holds data, running them again
//! changes nothing, and a database migrated by a newer authd is refused.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use authd::store::postgres::PostgresStore;
use authd::store::sqlite::SqliteStore;
use serde_json::Value;

use crate::helpers::{spawn_app_on, test_settings, Backend, TestDatabase, PASSWORD};

/// Applies migrations up to `target` on the test database, as an older authd would have.
async fn migrate_to(backend: Backend, database: &TestDatabase, target: Option<u32>) -> Vec<String> {
    let settings = test_settings(backend, database);
    match backend {
        Backend::PostgresRedis => {
            PostgresStore::create_database_if_missing(&settings.database)
                .await
                .unwrap();
            PostgresStore::migrate_to(&settings.database, target)
                .await
                .unwrap()
        }
        Backend::SqliteInProcess => {
            let TestDatabase::Sqlite { path } = database else {
                unreachable!()
            };
            SqliteStore::open(Some(path))
                .await
                .unwrap()
                .migrate_to(target)
                .await
                .unwrap()
        }
    }
}

/// Why authd refuses to start with `settings`.
async fn refused_start(settings: authd::config::Settings) -> String {
    let error = authd::app::Application::build(settings).await.err();
    format!("{:#}", error.expect("refused"))
}

async fn run_sql(database: &TestDatabase, sql: &str) {
    match database {
        TestDatabase::Postgres { url, .. } => {
            crate::helpers::postgres_client(url)
                .await
                .batch_execute(sql)
                .await
                .unwrap();
        }
        TestDatabase::Sqlite { path } => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
    }
}

async fn a_first_schema_database_with_users_upgrades_in_place(backend: Backend) {
    let database = TestDatabase::new(backend);
    let applied = migrate_to(backend, &database, Some(1)).await;
    assert_eq!(applied.len(), 1, "{applied:?}");

    // A user as the first release stored them.
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes(), &salt)
    .unwrap()
    .to_string();
    let id = uuid::Uuid::new_v4();
    let insert = match backend {
        Backend::PostgresRedis => format!(
            "INSERT INTO users (id, email, email_canonical, name, password_hash) \
             VALUES ('{id}', 'Early@Example.com', 'early@example.com', 'Early', '{hash}')"
        ),
        Backend::SqliteInProcess => format!(
            "INSERT INTO users (id, email, email_canonical, name, password_hash, created_at, updated_at) \
             VALUES ('{id}', 'Early@Example.com', 'early@example.com', 'Early', '{hash}', 1600000000000000, 1600000000000000)"
        ),
    };
    run_sql(&database, &insert).await;

    // Today's authd migrates at start, and the early user signs in as before.
    let app = spawn_app_on(backend, database, |_| {}).await;
    let response = app.login("early@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], id.to_string());
    assert_eq!(body["user"]["name"], "Early");
    let events = app
        .query_integers("SELECT CAST(count(*) AS BIGINT) FROM auth_events")
        .await;
    assert_eq!(
        events[0][0], 1,
        "the new audit table works on the upgraded database"
    );
}

/// Admin events written before V14 (the admin in `details`, an invitation filed under its
/// admin) come out of it with the admin as their actor, so `?actorId=` finds them and
/// `/me/events` hides the admin from the affected user.
async fn admin_events_from_before_the_actor_column_get_their_actor(backend: Backend) {
    let database = TestDatabase::new(backend);
    migrate_to(backend, &database, Some(13)).await;
    let (admin, user) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let time = match backend {
        Backend::PostgresRedis => "now()",
        Backend::SqliteInProcess => "1600000000000000",
    };
    let event = |id: u128, kind: &str, user_id: &uuid::Uuid, details: &str| {
        let id = uuid::Uuid::from_u128(id);
        format!(
            "INSERT INTO auth_events (id, user_id, kind, details, created_at) \
             VALUES ('{id}', '{user_id}', '{kind}', '{details}', {time});"
        )
    };
    let users = format!(
        "INSERT INTO users (id, email, email_canonical, password_hash, role, created_at, updated_at) \
         VALUES ('{admin}', 'a@example.com', 'a@example.com', 'x', 'admin', {time}, {time}), \
                ('{user}', 'u@example.com', 'u@example.com', 'x', 'user', {time}, {time});"
    );
    let locked = format!(r#"{{"adminId":"{admin}","locked":true}}"#);
    let reset = format!(r#"{{"by":"{admin}"}}"#);
    let sql = [
        users,
        event(1, "admin_user_updated", &user, &locked),
        event(2, "admin_mfa_reset", &user, &reset),
        event(3, "invitation_sent", &admin, r#"{"role":"user"}"#),
        event(4, "login_succeeded", &user, "{}"),
    ]
    .concat();
    run_sql(&database, &sql).await;

    let app = spawn_app_on(backend, database, |_| {}).await;
    let rows = app
        .query_texts(
            "SELECT COALESCE(CAST(user_id AS TEXT), '-') || ' ' || COALESCE(CAST(actor_id AS TEXT), '-') \
             || ' ' || details FROM auth_events ORDER BY id",
        )
        .await;
    // PostgreSQL writes JSON back with a space after each colon; SQLite without.
    let rows: Vec<String> = rows
        .into_iter()
        .flatten()
        .map(|row| row.replace(": ", ":"))
        .collect();
    assert_eq!(
        rows,
        [
            format!(r#"{user} {admin} {{"locked":true}}"#),
            format!("{user} {admin} {{}}"),
            format!(r#"- {admin} {{"role":"user"}}"#),
            format!("{user} - {{}}"),
        ]
    );
}

async fn migrating_again_changes_nothing(backend: Backend) {
    let database = TestDatabase::new(backend);
    assert!(!migrate_to(backend, &database, None).await.is_empty());
    assert!(migrate_to(backend, &database, None).await.is_empty());
    database.remove();
}

async fn a_database_migrated_by_a_newer_authd_is_refused(backend: Backend) {
    let tampered = "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
                    VALUES (99, 'from_a_newer_authd', '2030-01-01T00:00:00Z', '0')";
    let refusals = refusals_of_a_migrated_database(backend, tampered).await;
    for message in refusals {
        assert!(message.contains("newer version"), "{message}");
    }
}

/// What a start answers, migrating and not, on a database migrated in full and then changed by
/// `tampering` (SQL).
async fn refusals_of_a_migrated_database(backend: Backend, tampering: &str) -> Vec<String> {
    let database = TestDatabase::new(backend);
    migrate_to(backend, &database, None).await;
    run_sql(&database, tampering).await;
    let mut refusals = Vec::new();
    for auto_migrate in [true, false] {
        let mut settings = test_settings(backend, &database);
        settings.database.auto_migrate = auto_migrate;
        refusals.push(refused_start(settings).await);
    }
    database.remove();
    refusals
}

/// A database whose migration of some number is not the one shipped (edited by hand, or another
/// build's) is refused whether the start migrates or not, though its newest number is this
/// authd's.
async fn a_database_with_a_different_migration_is_refused(backend: Backend) {
    let tampered = "UPDATE refinery_schema_history SET checksum = '1' WHERE version = 3";
    let refusals = refusals_of_a_migrated_database(backend, tampered).await;
    for message in refusals {
        let said = "migration V3__one_time_tokens_and_outbox in the database differs";
        assert!(message.contains(said), "{message}");
    }
}

/// A start that does not migrate (`database.auto_migrate = false`) on a database behind this
/// authd's schema is refused with what to do, not with the first statement that fails.
async fn a_database_behind_is_refused_when_not_migrating(backend: Backend) {
    // None: created, never migrated (no history table at all).
    for behind in [None, Some(1)] {
        let database = TestDatabase::new(backend);
        match behind {
            Some(version) => {
                migrate_to(backend, &database, Some(version)).await;
            }
            None if backend == Backend::PostgresRedis => {
                let settings = test_settings(backend, &database);
                let database_settings = &settings.database;
                PostgresStore::create_database_if_missing(database_settings)
                    .await
                    .unwrap();
            }
            None => {}
        }
        let mut settings = test_settings(backend, &database);
        settings.database.auto_migrate = false;
        let message = refused_start(settings).await;
        assert!(message.contains("authd migrate"), "{behind:?}: {message}");
        database.remove();
    }
}

crate::backend_tests!(
    admin_events_from_before_the_actor_column_get_their_actor,
    a_first_schema_database_with_users_upgrades_in_place,
    migrating_again_changes_nothing,
    a_database_migrated_by_a_newer_authd_is_refused,
    a_database_with_a_different_migration_is_refused,
    a_database_behind_is_refused_when_not_migrating,
);
