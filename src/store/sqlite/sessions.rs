//! Sessions and their refresh tokens: creation, the access-token check, rotation, revocation.

use async_trait::async_trait;
use chrono::DateTime;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::users::user_from_row;
use super::{
    corrupt, now_micros, now_value, role_from, seconds_to_micros, text, time_at, uuid_at,
    SqliteStore,
};
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
        self.call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT u.id, u.email, u.name, u.role, u.email_verified, u.locked, u.created_at, u.updated_at
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL
                       AND u.deleted_at IS NULL AND NOT u.locked",
                )?
                .query_row(
                    params![session_id.to_string(), user_id.to_string()],
                    user_from_row,
                )
                .optional()?)
            })
            .await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.call(move |c| {
                let now = now_micros();
                let expires_at = now.saturating_add(seconds_to_micros(session.refresh_ttl_seconds));
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.prepare_cached(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
                                           auth_methods, authenticated_at)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?3)",
                )?
                .execute(params![
                    session.id.to_string(),
                    session.user_id.to_string(),
                    now,
                    expires_at,
                    session.user_agent,
                    session.ip,
                    session.methods.to_stored()
                ])?;
                tx.prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at)
                     VALUES (?1, ?2, 0, ?3, ?4)",
                )?
                .execute(params![
                    session.refresh_hash.as_slice(),
                    session.id.to_string(),
                    now,
                    expires_at
                ])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<RotationOutcome> {
        Ok(self.call(move |c| {
                let now = now_micros();
                // IMMEDIATE takes the write lock up front: rotations are serialised, each sees the
                // generation the previous one committed.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let presented = rotation.presented.as_slice();
                let found = tx
                    .prepare_cached(
                        "SELECT rt.session_id, rt.generation, rt.expires_at, rt.rotated_at,
                                s.generation, s.revoked_at IS NOT NULL, s.created_at, s.user_id,
                                u.role, (u.deleted_at IS NOT NULL OR u.locked),
                                s.auth_methods, COALESCE(s.authenticated_at, s.created_at)
                         FROM refresh_tokens rt
                         JOIN sessions s ON s.id = rt.session_id
                         JOIN users u ON u.id = s.user_id
                         WHERE rt.token_hash = ?1",
                    )?
                    .query_row([presented], |row| {
                        let token = PresentedToken {
                            generation: row.get(1)?,
                            expires_at: time_at(row, 2)?,
                            rotated_at: row
                                .get::<_, Option<i64>>(3)?
                                .map(|micros| {
                                    DateTime::from_timestamp_micros(micros)
                                        .ok_or_else(|| corrupt("timestamp"))
                                })
                                .transpose()?,
                        };
                        let session = SessionState {
                            generation: row.get(4)?,
                            revoked: row.get(5)?,
                            created_at: time_at(row, 6)?,
                            user_barred: row.get(9)?,
                        };
                        let owner = SessionOwner {
                            session_id: uuid_at(row, 0)?,
                            user_id: uuid_at(row, 7)?,
                            role: role_from(&row.get::<_, String>(8)?)?,
                            assurance: assurance_at(row, 10)?,
                        };
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
                            "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at)
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
                            "UPDATE sessions SET generation = ?2, last_used_at = ?3, expires_at = ?4 WHERE id = ?1",
                        )?
                        .execute(params![session_id, next_generation, now, child_expires_at])?;
                        tx.commit()?;
                        Ok(RotationOutcome::Rotated(owner))
                    }
                    RotationDecision::RevokeForReuse => {
                        tx.prepare_cached(
                            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                             WHERE id = ?1 AND revoked_at IS NULL",
                        )?
                        .execute(params![session_id, now, RevokeReason::Reuse.as_str()])?;
                        tx.commit()?;
                        Ok(RotationOutcome::Reused {
                            session_id: owner.session_id,
                            user_id: owner.user_id,
                        })
                    }
                }
            })
            .await?)
    }

    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> StoreResult<Option<RevokedSession>> {
        self.call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let found = tx
                    .prepare_cached(
                        "SELECT s.id, s.user_id FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
                         WHERE rt.token_hash = ?1",
                    )?
                    .query_row([presented.as_slice()], |row| Ok((uuid_at(row, 0)?, uuid_at(row, 1)?)))
                    .optional()?;
                let Some((session_id, user_id)) = found else {
                    return Ok(None);
                };
                tx.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![session_id.to_string(), now_micros(), reason.as_str()])?;
                tx.commit()?;
                Ok(Some(RevokedSession { session_id, user_id }))
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
        self.call(move |c| {
                let mut statement = c.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                     WHERE user_id = ?1 AND revoked_at IS NULL AND (?4 IS NULL OR id <> ?4) RETURNING id",
                )?;
                let ids = statement
                    .query_map(
                        params![
                            user_id.to_string(),
                            now_micros(),
                            reason.as_str(),
                            except.map(|id| id.to_string())
                        ],
                        |row| uuid_at(row, 0),
                    )?
                    .collect::<rusqlite::Result<Vec<Uuid>>>()?;
                Ok(ids)
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
        let (session_id, user_id) = (proof.session_id, proof.user_id);
        let methods = proof.methods.to_stored();
        self.call(move |c| {
            Ok(c.prepare_cached(
                "UPDATE sessions SET auth_methods = ?3, authenticated_at = ?4
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?4
                   AND EXISTS (SELECT 1 FROM users u
                               WHERE u.id = sessions.user_id AND u.deleted_at IS NULL AND NOT u.locked)
                 RETURNING (SELECT role FROM users WHERE id = sessions.user_id), auth_methods, authenticated_at",
            )?
            .query_row(
                params![session_id.to_string(), user_id.to_string(), methods, now_micros()],
                |row| {
                    Ok(SessionOwner {
                        session_id,
                        user_id,
                        role: role_from(&row.get::<_, String>(0)?)?,
                        assurance: assurance_at(row, 1)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn live_sessions(&self, user_id: Uuid) -> StoreResult<Vec<SessionInfo>> {
        self.call(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions
                     WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                     ORDER BY last_used_at DESC, id",
            )?;
            let sessions = statement
                .query_map(params![user_id.to_string(), now_micros()], |row| {
                    Ok(SessionInfo {
                        id: uuid_at(row, 0)?,
                        created_at: time_at(row, 1)?,
                        last_used_at: time_at(row, 2)?,
                        user_agent: row.get(3)?,
                        ip: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(sessions)
        })
        .await
    }
}

/// `auth_methods` at `index` and the time it was proved (micros) right after it.
fn assurance_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<SessionAssurance> {
    Ok(SessionAssurance {
        methods: AuthMethods::parse(&row.get::<_, String>(index)?),
        authenticated_at: time_at(row, index + 1)?.timestamp(),
    })
}
