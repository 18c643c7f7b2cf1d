//! Sessions and their refresh tokens: creation, the access-token check, rotation, revocation.

use async_trait::async_trait;
use chrono::DateTime;
use rusqlite::{params, OptionalExtension, Row};
use uuid::Uuid;

use super::users::user_from_row;
use super::{now_micros, now_value, seconds_to_micros, text, Columns, SqliteStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::claims::SessionAssurance;
use crate::domain::opaque_token::TokenHash;
use crate::domain::rotation::{self, PresentedToken, RotationDecision, SessionState};
use crate::domain::user::User;
use crate::store::*;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<User>> {
        let sql = "SELECT u.id, u.email, u.name, u.role, u.email_verified, u.locked, u.created_at,
                          u.updated_at
                   FROM sessions s JOIN users u ON u.id = s.user_id
                   WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL
                     AND u.deleted_at IS NULL AND NOT u.locked";
        self.query_opt(
            sql.into(),
            vec![text(session_id), text(user_id)],
            user_from_row,
        )
        .await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<bool> {
        self.write(move |tx| {
            // Write transactions take turns: an ending or a lock came wholly before or comes
            // after (and revokes this session).
            let current: Option<i64> = tx
                .prepare_cached(
                    "SELECT session_epoch FROM users
                     WHERE id = ?1 AND deleted_at IS NULL AND NOT locked",
                )?
                .query_row([session.user_id.to_string()], |row| row.get(0))
                .optional()?;
            let Some(current) = current.map(SessionEpoch) else {
                return Ok(false);
            };
            if session.epoch.is_some_and(|epoch| epoch != current) {
                return Ok(false);
            }
            let now = now_micros();
            let expires_at = now.saturating_add(seconds_to_micros(session.refresh_ttl_seconds));
            let id = session.id.to_string();
            tx.prepare_cached(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent,
                                       ip, auth_methods, authenticated_at)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?3)",
            )?
            .execute(params![
                id,
                session.user_id.to_string(),
                now,
                expires_at,
                session.user_agent,
                session.ip,
                session.methods.to_stored()
            ])?;
            tx.prepare_cached(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at,
                                             expires_at)
                 VALUES (?1, ?2, 0, ?3, ?4)",
            )?
            .execute(params![session.refresh_hash.as_slice(), id, now, expires_at])?;
            Ok(true)
        })
        .await
    }

    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<RotationOutcome> {
        // The write transaction serialises rotations: each sees the generation the previous one
        // committed.
        self.write(move |tx| {
            let now = now_micros();
            let presented = rotation.presented.as_slice();
            let found = tx
                .prepare_cached(
                    "SELECT rt.session_id, rt.generation AS token_generation, rt.expires_at,
                            rt.rotated_at, s.generation, s.revoked_at IS NOT NULL AS revoked,
                            s.created_at, s.user_id, u.role,
                            (u.deleted_at IS NOT NULL OR u.locked) AS user_barred,
                            s.auth_methods, COALESCE(s.authenticated_at, s.created_at)
                              AS authenticated_at
                     FROM refresh_tokens rt
                     JOIN sessions s ON s.id = rt.session_id
                     JOIN users u ON u.id = s.user_id
                     WHERE rt.token_hash = ?1",
                )?
                .query_row([presented], |row| {
                    let generation = row.column("token_generation")?;
                    let token =
                        record!(row => PresentedToken { expires_at, rotated_at; generation });
                    let session = record!(row => SessionState {
                        generation, revoked, created_at, user_barred
                    });
                    let assurance = assurance_from(row)?;
                    let owner =
                        record!(row => SessionOwner { session_id, user_id, role; assurance });
                    Ok((token, session, owner))
                })
                .optional()?;
            let Some((token, session, owner)) = found else {
                return Ok(RotationOutcome::Invalid);
            };
            let clock = DateTime::from_timestamp_micros(now).unwrap_or_default();
            let session_id = owner.session_id.to_string();
            match rotation::decide(&session, &token, rotation.window(), clock) {
                RotationDecision::Invalid => Ok(RotationOutcome::Invalid),
                RotationDecision::Expired => Ok(RotationOutcome::Expired),
                RotationDecision::GraceReplay => Ok(RotationOutcome::GraceReplay(owner)),
                RotationDecision::Rotate { next_generation } => {
                    let child_expires_at =
                        now.saturating_add(seconds_to_micros(rotation.refresh_ttl_seconds));
                    tx.prepare_cached(
                        "UPDATE refresh_tokens SET rotated_at = ?2 WHERE token_hash = ?1",
                    )?
                    .execute(params![presented, now])?;
                    tx.prepare_cached(
                        "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at,
                                                     expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        rotation.child.as_slice(),
                        session_id,
                        next_generation,
                        now,
                        child_expires_at
                    ])?;
                    tx.prepare_cached(
                        "UPDATE sessions SET generation = ?2, last_used_at = ?3, expires_at = ?4
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        session_id,
                        next_generation,
                        now,
                        child_expires_at
                    ])?;
                    Ok(RotationOutcome::Rotated(owner))
                }
                RotationDecision::RevokeForReuse => {
                    tx.prepare_cached(
                        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                         WHERE id = ?1 AND revoked_at IS NULL",
                    )?
                    .execute(params![
                        session_id,
                        now,
                        RevokeReason::Reuse.as_str()
                    ])?;
                    let (session_id, user_id) = (owner.session_id, owner.user_id);
                    Ok(RotationOutcome::Reused {
                        session_id,
                        user_id,
                    })
                }
            }
        })
        .await
    }

    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> StoreResult<Option<RevokedSession>> {
        self.write(move |tx| {
            let found = tx
                .prepare_cached(
                    "SELECT s.id AS session_id, s.user_id
                     FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
                     WHERE rt.token_hash = ?1",
                )?
                .query_row([presented.as_slice()], |row| {
                    Ok(record!(row => RevokedSession { session_id, user_id }))
                })
                .optional()?;
            if let Some(revoked) = &found {
                tx.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                     WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![
                    revoked.session_id.to_string(),
                    now_micros(),
                    reason.as_str()
                ])?;
            }
            Ok(found)
        })
        .await
    }

    async fn revoke_session(&self, session_id: Uuid, reason: RevokeReason) -> StoreResult<bool> {
        let sql = "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                   WHERE id = ?1 AND revoked_at IS NULL";
        let values = vec![text(session_id), now_value(), text(reason.as_str())];
        Ok(self.execute(sql, values).await? > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> StoreResult<Vec<Uuid>> {
        let sql = "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                   WHERE user_id = ?1 AND revoked_at IS NULL AND (?4 IS NULL OR id <> ?4)
                   RETURNING id";
        let except = except.map(|id| id.to_string());
        let (user, now) = (text(user_id), now_value());
        let values = vec![
            user.clone(),
            now.clone(),
            text(reason.as_str()),
            except.into(),
        ];
        self.write(move |tx| {
            let count_up = "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?1";
            tx.prepare_cached(count_up)?.execute([&user])?;
            let mut statement = tx.prepare_cached(sql)?;
            let rows =
                statement.query_map(rusqlite::params_from_iter(values), |row| row.column("id"))?;
            let revoked = rows.collect::<rusqlite::Result<Vec<Uuid>>>()?;
            for table in PENDING_SIGN_INS {
                let sql = format!(
                    "UPDATE {table} SET consumed_at = ?2 WHERE user_id = ?1 AND consumed_at IS NULL"
                );
                tx.prepare_cached(&sql)?.execute([&user, &now])?;
            }
            Ok(revoked)
        })
        .await
    }

    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> StoreResult<bool> {
        let sql = "UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4
                   WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL";
        let values = vec![
            text(session_id),
            text(user_id),
            now_value(),
            text(reason.as_str()),
        ];
        Ok(self.execute(sql, values).await? > 0)
    }

    async fn reauthenticate_session(
        &self,
        proof: &SessionProof,
    ) -> StoreResult<Option<SessionOwner>> {
        let sql = "UPDATE sessions SET auth_methods = ?3, authenticated_at = ?4
                   WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?4
                     AND EXISTS (SELECT 1 FROM users u
                                 WHERE u.id = sessions.user_id AND u.deleted_at IS NULL
                                   AND NOT u.locked)
                   RETURNING id AS session_id, user_id,
                             (SELECT role FROM users WHERE id = sessions.user_id) AS role,
                             auth_methods, authenticated_at";
        let (session_id, user_id) = (text(proof.session_id), text(proof.user_id));
        let values = vec![
            session_id,
            user_id,
            text(proof.methods.to_stored()),
            now_value(),
        ];
        self.query_opt(sql.into(), values, |row| {
            let assurance = assurance_from(row)?;
            Ok(record!(row => SessionOwner { session_id, user_id, role; assurance }))
        })
        .await
    }

    async fn live_sessions(&self, user_id: Uuid) -> StoreResult<Vec<SessionInfo>> {
        let sql = "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions
                   WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                   ORDER BY last_used_at DESC, id";
        self.query(sql.into(), vec![text(user_id), now_value()], |row| {
            Ok(record!(row => SessionInfo { id, created_at, last_used_at, user_agent, ip }))
        })
        .await
    }
}

/// The `auth_methods` and `authenticated_at` (microseconds) columns of a session row.
fn assurance_from(row: &Row<'_>) -> rusqlite::Result<SessionAssurance> {
    let authenticated_at: chrono::DateTime<chrono::Utc> = row.column("authenticated_at")?;
    Ok(SessionAssurance {
        methods: AuthMethods::parse(&row.column::<String>("auth_methods")?),
        authenticated_at: authenticated_at.timestamp(),
    })
}
