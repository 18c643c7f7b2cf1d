//! `authd users import`: users from another system (the seed apps: bcrypt; or argon2), one JSON
//! object per line: `{email, name?, passwordHash, role?, emailVerified?, createdAt?}`.
//!
//! The hashes are stored as they are and verified on the hasher pool at login; the first
//! successful login re-hashes the password with today's argon2id parameters. Importing is
//! idempotent (an email that already has an account is left alone, and one a deleted account
//! held is refused unless `auth.allow_email_reuse_after_delete`) and a bad line is reported and
//! skipped, never the end of the import.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::actors::hasher::check_stored_hash;
use crate::domain::email::EmailAddress;
use crate::domain::user::{check_name, Role};
use crate::flows::deps::{address_retired, RETIRED_ADDRESS};
use crate::store::{NewUser, Store, StoreError, StoreResult};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportLine {
    email: String,
    #[serde(default)]
    name: Option<String>,
    password_hash: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    /// Lines whose email already has an account: left as they are.
    pub already_present: usize,
    /// (line number from 1, why).
    pub failures: Vec<(usize, String)>,
}

fn new_user(line: &str) -> Result<NewUser, String> {
    let record: ImportLine =
        serde_json::from_str(line).map_err(|e| format!("not a valid record: {e}"))?;
    let email =
        EmailAddress::parse_new(&record.email).map_err(|e| format!("email {}", e.message()))?;
    check_stored_hash(&record.password_hash).map_err(|e| format!("passwordHash {e}"))?;
    let role = match record.role.as_deref() {
        None => Role::User,
        Some(role) => {
            Role::parse(role).ok_or_else(|| format!("role {role:?} is not user or admin"))?
        }
    };
    let name = check_name(record.name.as_deref()).map_err(|e| format!("name {e}"))?;
    Ok(NewUser {
        email_verified: record.email_verified.unwrap_or(false),
        created_at: record.created_at,
        ..NewUser::new(email, name, record.password_hash, role)
    })
}

/// What became of one line's account.
enum Imported {
    New,
    /// A live account holds the address: left as it is.
    AlreadyPresent,
    /// A deleted account held the address, and it may not be taken again.
    Retired,
}

/// Creates `user` unless a live account holds its address (whatever an older, deleted account
/// of it says) or a deleted one did and `allow_reuse` is off.
async fn import_one(store: &dyn Store, user: NewUser, allow_reuse: bool) -> StoreResult<Imported> {
    let email = user.email.canonical();
    if store.user_by_email(email).await?.is_some() {
        return Ok(Imported::AlreadyPresent);
    }
    if address_retired(store, allow_reuse, email).await? {
        return Ok(Imported::Retired);
    }
    match store.create_user(user).await {
        Ok(_) => Ok(Imported::New),
        Err(StoreError::EmailTaken) => Ok(Imported::AlreadyPresent),
        Err(e) => Err(e),
    }
}

/// Imports every line of `input`; stops early only if the store itself becomes unreachable. An
/// address a deleted account held is refused unless `allow_email_reuse_after_delete`, so running
/// an import again does not bring back an account its owner deleted.
pub async fn import_users(
    store: &dyn Store,
    input: impl BufRead,
    allow_email_reuse_after_delete: bool,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            // A line that is not UTF-8 was read past; any other error would come back on every
            // read (a directory, a device): the import stops there.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                report.failures.push((number, format!("unreadable: {e}")));
                continue;
            }
            Err(e) => {
                report
                    .failures
                    .push((number, format!("unreadable: {e}; stopped")));
                break;
            }
        };
        // A byte-order mark some editors put before the first line.
        let line = match number {
            1 => line.trim_start_matches('\u{feff}').to_string(),
            _ => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        let user = match new_user(&line) {
            Ok(user) => user,
            Err(reason) => {
                report.failures.push((number, reason));
                continue;
            }
        };
        let outcome = import_one(store, user, allow_email_reuse_after_delete).await;
        match outcome {
            Ok(Imported::New) => report.imported += 1,
            Ok(Imported::AlreadyPresent) => report.already_present += 1,
            Ok(Imported::Retired) => {
                let reason = format!("email {RETIRED_ADDRESS}");
                report.failures.push((number, reason));
            }
            Err(unavailable @ StoreError::Unavailable(_)) => return Err(unavailable),
            Err(e) => report.failures.push((number, format!("store: {e}"))),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";

    #[test]
    fn a_full_record_becomes_a_user() {
        let line = format!(
            r#"{{"email":" Ada@Example.com","name":"Ada","passwordHash":"{BCRYPT}","role":"admin","emailVerified":true,"createdAt":"2020-01-02T03:04:05Z"}}"#
        );
        let user = new_user(&line).unwrap();
        assert_eq!(user.email.as_str(), "Ada@Example.com");
        assert_eq!(user.role, Role::Admin);
        assert!(user.email_verified);
        assert_eq!(
            user.created_at.unwrap().to_rfc3339(),
            "2020-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("not json", "not a valid record"),
            (r#"{"email":"x","passwordHash":"h"}"#, "email"),
            (
                r#"{"email":"a@example.com","passwordHash":"plaintext"}"#,
                "passwordHash",
            ),
            (
                &*format!(r#"{{"email":"a@example.com","passwordHash":"{BCRYPT}","role":"root"}}"#),
                "role",
            ),
            (
                &*format!(r#"{{"email":"a@example.com","passwordHash":"{BCRYPT}","extra":1}}"#),
                "unknown field",
            ),
        ];
        for (line, expected) in cases {
            let reason = new_user(line).err().unwrap();
            assert!(reason.contains(expected), "{line}: {reason}");
        }
    }
}
