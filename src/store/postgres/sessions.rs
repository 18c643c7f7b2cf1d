//! Sessions and their refresh tokens: creation, the access-token check, rotation, revocation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::user_from_row;
use super::{begin, commit, execute, query, query_opt, ttl, Columns, Params, PostgresStore};
use crate::domain::assurance::AuthMethods;
use crate::domain::claims::SessionAssurance;
use crate::domain::opaque_token::TokenHash;
use crate::domain::rotation::{self, PresentedToken, RotationDecision, SessionState};
use crate::domain::user::User;
use crate::store::*;

#[async_trait]
impl SessionStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn live_session_user(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<User>> {
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
    async fn create_session(&self, session: NewSession) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // FOR SHARE waits for an ending or a lock in flight (each updates this row first) and
        // then reads its outcome; one that comes after waits for this session and revokes it.
        let current = "SELECT session_epoch FROM users
                       WHERE id = $1 AND deleted_at IS NULL AND NOT locked FOR SHARE";
        let Some(row) = query_opt(&tx, current, &[&session.user_id]).await? else {
            return Ok(false);
        };
        let current = SessionEpoch(row.column("session_epoch")?);
        if session.epoch.is_some_and(|epoch| epoch != current) {
            return Ok(false);
        }
        let lifetime = ttl(session.refresh_ttl_seconds);
        let insert_session =
            "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip, auth_methods)
                              VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5, $6)";
        let methods = session.methods.to_stored();
        let (agent, ip) = (&session.user_agent, &session.ip);
        let values: Params = &[
            &session.id,
            &session.user_id,
            &lifetime,
            agent,
            ip,
            &methods,
        ];
        execute(&tx, insert_session, values).await?;
        let insert_token =
            "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                            VALUES ($1, $2, 0, now() + make_interval(secs => $3))";
        let hash = session.refresh_hash.as_slice();
        execute(&tx, insert_token, &[&hash, &session.id, &lifetime]).await?;
        commit(tx).await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<RotationOutcome> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let presented = rotation.presented.as_slice();

        // The session id of a token never changes, so it can be read before taking the lock.
        let find = "SELECT session_id FROM refresh_tokens WHERE token_hash = $1";
        let Some(row) = query_opt(&tx, find, &[&presented]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let session_id: Uuid = row.column("session_id")?;

        // Every rotation of this family queues here; whoever gets the lock sees the committed
        // generation of whoever went before.
        let lock = "SELECT s.generation, s.revoked_at IS NOT NULL AS revoked, s.created_at, s.user_id,
                           u.role, (u.deleted_at IS NOT NULL OR u.locked) AS user_barred, now() AS now,
                           s.auth_methods, s.authenticated_at
                    FROM sessions s JOIN users u ON u.id = s.user_id
                    WHERE s.id = $1 FOR UPDATE OF s";
        let Some(locked) = query_opt(&tx, lock, &[&session_id]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let session =
            record!(locked => SessionState { generation, revoked, user_barred, created_at });
        let now: DateTime<Utc> = locked.column("now")?;
        let (user_id, role) = (locked.column("user_id")?, locked.column("role")?);

        // Read after the lock: this statement sees what the previous holder committed.
        let read =
            "SELECT generation, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = $1";
        let Some(token) = query_opt(&tx, read, &[&presented]).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        let token = record!(token => PresentedToken { generation, expires_at, rotated_at });
        let assurance = assurance_from(&locked)?;
        let owner = SessionOwner {
            session_id,
            user_id,
            role,
            assurance,
        };

        match rotation::decide(&session, &token, rotation.window(), now) {
            RotationDecision::Invalid => Ok(RotationOutcome::Invalid),
            RotationDecision::Expired => Ok(RotationOutcome::Expired),
            RotationDecision::GraceReplay => Ok(RotationOutcome::GraceReplay(owner)),
            RotationDecision::Rotate { next_generation } => {
                let retire = "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1";
                execute(&tx, retire, &[&presented]).await?;
                let insert =
                    "INSERT INTO refresh_tokens (token_hash, session_id, generation, expires_at)
                              VALUES ($1, $2, $3, now() + make_interval(secs => $4))";
                let lifetime = ttl(rotation.refresh_ttl_seconds);
                let child = rotation.child.as_slice();
                execute(
                    &tx,
                    insert,
                    &[&child, &session_id, &next_generation, &lifetime],
                )
                .await?;
                let advance = "UPDATE sessions SET generation = $2, last_used_at = now(),
                                      expires_at = now() + make_interval(secs => $3)
                               WHERE id = $1";
                execute(&tx, advance, &[&session_id, &next_generation, &lifetime]).await?;
                commit(tx).await?;
                Ok(RotationOutcome::Rotated(owner))
            }
            RotationDecision::RevokeForReuse => {
                let revoke = "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
                              WHERE id = $1 AND revoked_at IS NULL";
                execute(&tx, revoke, &[&session_id, &RevokeReason::Reuse.as_str()]).await?;
                commit(tx).await?;
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
    ) -> StoreResult<Option<RevokedSession>> {
        let row = self
            .query_opt(
                "UPDATE sessions s SET revoked_at = COALESCE(s.revoked_at, now()),
                        revoked_reason = COALESCE(s.revoked_reason, $2)
                 FROM refresh_tokens rt
                 WHERE rt.token_hash = $1 AND s.id = rt.session_id
                 RETURNING s.id AS session_id, s.user_id",
                &[&presented.as_slice(), &reason.as_str()],
            )
            .await?;
        row.map(|row| Ok(record!(row => RevokedSession { session_id, user_id })))
            .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(&self, session_id: Uuid, reason: RevokeReason) -> StoreResult<bool> {
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
    ) -> StoreResult<Vec<Uuid>> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let count_up = "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1";
        execute(&tx, count_up, &[&user_id]).await?;
        let rows = query(
            &tx,
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
             WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)
             RETURNING id",
            &[&user_id, &reason.as_str(), &except],
        )
        .await?;
        for table in PENDING_SIGN_INS {
            let sql = format!(
                "UPDATE {table} SET consumed_at = now() WHERE user_id = $1 AND consumed_at IS NULL"
            );
            execute(&tx, &sql, &[&user_id]).await?;
        }
        commit(tx).await?;
        rows.iter().map(|row| row.column("id")).collect()
    }

    async fn revoke_session_of(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> StoreResult<bool> {
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
    ) -> StoreResult<Option<SessionOwner>> {
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
            let (role, assurance) = (row.column("role")?, assurance_from(&row)?);
            Ok(SessionOwner {
                session_id,
                user_id,
                role,
                assurance,
            })
        })
        .transpose()
    }

    async fn live_sessions(&self, user_id: Uuid) -> StoreResult<Vec<SessionInfo>> {
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
                Ok(record!(row => SessionInfo { id, created_at, last_used_at, user_agent, ip }))
            })
            .collect()
    }
}

/// The `auth_methods` and `authenticated_at` columns of a session row.
fn assurance_from(row: &tokio_postgres::Row) -> StoreResult<SessionAssurance> {
    let authenticated_at: DateTime<Utc> = row.column("authenticated_at")?;
    Ok(SessionAssurance {
        methods: AuthMethods::parse(row.column("auth_methods")?),
        authenticated_at: authenticated_at.timestamp(),
    })
}
