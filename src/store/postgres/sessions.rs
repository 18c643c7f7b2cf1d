//! Sessions and their refresh tokens: creation, the access-token check, rotation, revocation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::user_from_row;
use super::{ttl, PostgresStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::claims::SessionAssurance;
use crate::domain::opaque_token::TokenHash;
use crate::domain::rotation::{self, PresentedToken, RotationDecision, SessionState};
use crate::domain::user::{Role, User};
use crate::store::*;

#[async_trait]
impl SessionStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt(
                "SELECT u.id, u.email, u.name, u.role, u.email_verified, u.locked, u.created_at, u.updated_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
                   AND u.deleted_at IS NULL AND NOT u.locked",
                &[&session_id, &user_id],
            )
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert_session = tx
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip, auth_methods)
                 VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5, $6)",
            )
            .await?;
        tx.execute(
            &insert_session,
            &[
                &session.id,
                &session.user_id,
                &ttl(session.refresh_ttl_seconds),
                &session.user_agent,
                &session.ip,
                &session.methods.to_stored(),
            ],
        )
        .await?;
        let insert_token = tx
            .prepare_cached(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                 VALUES ($1, $2, 0, now() + make_interval(secs => $3))",
            )
            .await?;
        tx.execute(
            &insert_token,
            &[
                &session.refresh_hash.as_slice(),
                &session.id,
                &ttl(session.refresh_ttl_seconds),
            ],
        )
        .await?;
        Ok(tx.commit().await?)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        rotation: Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let presented = rotation.presented.as_slice();

        // The session id of a token never changes, so it can be read before taking the lock.
        let find = tx
            .prepare_cached("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
            .await?;
        let Some(row) = tx.query_opt(&find, &[&presented]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let session_id: Uuid = row.try_get(0)?;

        // Every rotation of this family queues here; whoever gets the lock sees the committed
        // generation of whoever went before.
        let lock = tx
            .prepare_cached(
                "SELECT s.generation, s.revoked_at IS NOT NULL AS revoked, s.created_at, s.user_id,
                        u.role, (u.deleted_at IS NOT NULL OR u.locked) AS barred, now() AS now,
                        s.auth_methods, s.authenticated_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id = $1 FOR UPDATE OF s",
            )
            .await?;
        let Some(locked) = tx.query_opt(&lock, &[&session_id]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let session = SessionState {
            generation: locked.try_get("generation")?,
            revoked: locked.try_get("revoked")?,
            user_barred: locked.try_get("barred")?,
            created_at: locked.try_get("created_at")?,
        };
        let now: DateTime<Utc> = locked.try_get("now")?;
        let user_id: Uuid = locked.try_get("user_id")?;
        let role = role_at(&locked, "role")?;

        // Read after the lock: this statement sees what the previous holder committed.
        let read = tx
            .prepare_cached(
                "SELECT generation, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = $1",
            )
            .await?;
        let Some(token) = tx.query_opt(&read, &[&presented]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let token = PresentedToken {
            generation: token.try_get("generation")?,
            expires_at: token.try_get("expires_at")?,
            rotated_at: token.try_get("rotated_at")?,
        };
        let owner = SessionOwner {
            session_id,
            user_id,
            role,
            assurance: assurance_from(&locked)?,
        };

        match rotation::decide(&session, &token, rotation.window(), now) {
            RotationDecision::Invalid => Ok(RotationOutcome::Invalid),
            RotationDecision::Expired => Ok(RotationOutcome::Expired),
            RotationDecision::GraceReplay => Ok(RotationOutcome::GraceReplay(owner)),
            RotationDecision::Rotate { next_generation } => {
                let retire = tx
                    .prepare_cached(
                        "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1",
                    )
                    .await?;
                tx.execute(&retire, &[&presented]).await?;
                let insert = tx
                    .prepare_cached(
                        "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                    )
                    .await?;
                let lifetime = ttl(rotation.refresh_ttl_seconds);
                tx.execute(
                    &insert,
                    &[
                        &rotation.child.as_slice(),
                        &session_id,
                        &next_generation,
                        &lifetime,
                    ],
                )
                .await?;
                let advance = tx
                    .prepare_cached(
                        "UPDATE sessions SET generation = $2, last_used_at = now(),
                                expires_at = now() + make_interval(secs => $3)
                         WHERE id = $1",
                    )
                    .await?;
                tx.execute(&advance, &[&session_id, &next_generation, &lifetime])
                    .await?;
                tx.commit().await?;
                Ok(RotationOutcome::Rotated(owner))
            }
            RotationDecision::RevokeForReuse => {
                let revoke = tx
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                         WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .await?;
                tx.execute(&revoke, &[&session_id, &RevokeReason::Reuse.as_str()])
                    .await?;
                tx.commit().await?;
                Ok(RotationOutcome::Reused {
                    session_id,
                    user_id,
                })
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session_by_refresh(
        &self,
        presented: TokenHash,
        reason: RevokeReason,
    ) -> Result<Option<RevokedSession>, StoreError> {
        let row = self
            .query_opt(
                "UPDATE sessions s SET revoked_at = COALESCE(s.revoked_at, now()),
                        revoked_reason = COALESCE(s.revoked_reason, $2)
                 FROM refresh_tokens rt
                 WHERE rt.token_hash = $1 AND s.id = rt.session_id
                 RETURNING s.id, s.user_id",
                &[&presented.as_slice(), &reason.as_str()],
            )
            .await?;
        row.map(|row| {
            Ok(RevokedSession {
                session_id: row.try_get(0)?,
                user_id: row.try_get(1)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(
        &self,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE id = $1 AND revoked_at IS NULL",
                &[&session_id, &reason.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .query(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)
                 RETURNING id",
                &[&user_id, &reason.as_str(), &except],
            )
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }

    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                &[&session_id, &user_id, &reason.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn reauthenticate_session(
        &self,
        proof: &SessionProof,
    ) -> Result<Option<SessionOwner>, StoreError> {
        let (session_id, user_id) = (proof.session_id, proof.user_id);
        let row = self
            .query_opt(
                "UPDATE sessions s SET auth_methods = $3, authenticated_at = now()
                 FROM users u
                 WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
                   AND u.id = s.user_id AND u.deleted_at IS NULL AND NOT u.locked
                 RETURNING u.role, s.auth_methods, s.authenticated_at",
                &[&session_id, &user_id, &proof.methods.to_stored()],
            )
            .await?;
        row.map(|row| {
            Ok(SessionOwner {
                session_id,
                user_id,
                role: role_at(&row, "role")?,
                assurance: assurance_from(&row)?,
            })
        })
        .transpose()
    }

    async fn live_sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = self
            .query(
                "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
                 ORDER BY last_used_at DESC, id",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionInfo {
                    id: row.try_get(0)?,
                    created_at: row.try_get(1)?,
                    last_used_at: row.try_get(2)?,
                    user_agent: row.try_get(3)?,
                    ip: row.try_get(4)?,
                })
            })
            .collect()
    }
}

fn role_at(row: &tokio_postgres::Row, column: &str) -> Result<Role, StoreError> {
    Role::parse(&row.try_get::<_, String>(column)?)
        .ok_or_else(|| StoreError::Backend("unknown role".into()))
}

/// The `auth_methods` and `authenticated_at` columns of a session row.
fn assurance_from(row: &tokio_postgres::Row) -> Result<SessionAssurance, StoreError> {
    let authenticated_at: DateTime<Utc> = row.try_get("authenticated_at")?;
    Ok(SessionAssurance {
        methods: AuthMethods::parse(&row.try_get::<_, String>("auth_methods")?),
        authenticated_at: authenticated_at.timestamp(),
    })
}
