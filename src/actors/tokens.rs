//! The token actor: sessions, access JWTs, refresh rotation with reuse detection, and the check
//! of every access token against its session in the store (so a revocation holds across restarts,
//! nodes and cache evictions).
//!
//! One instance runs on each HTTP worker thread and owns that thread's signing key ring: it signs
//! and verifies with it, reloads it from the store every `tokens.key_refresh_seconds` and when a
//! token names a key it does not know yet (rotated in by another node), so no lock is shared
//! between workers. The store side of each step (sessions, rotation, revocation) is the
//! stateless [`TokenService`]; its futures run on their own (`ResponseActFuture`), so one slow
//! database round trip never holds up the others, and they come back to the actor only to sign.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseActFuture, ResponseFuture, WrapFuture,
};
use chrono::Utc;
use uuid::Uuid;

use crate::config::TokenSettings;
use crate::domain::assurance::AuthMethods;
use crate::domain::claims::{AccessClaims, Caller, SessionAssurance};
use crate::domain::opaque_token::RefreshToken;
use crate::domain::user::Role;
use crate::error::AppError;
use crate::keys::{DecodeError, KeyRing, KeySource};
use crate::store::{
    NewSession, RevokeReason, Rotation, RotationOutcome, SessionEpoch, SessionOwner, SessionProof,
    Store,
};

/// What a client receives after signup, login or refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: RefreshToken,
    pub session_id: Uuid,
}

/// Start a new session (a new refresh-token family) for a user who just proved who they are.
/// `None` when the proof was read under `epoch` and every session of the user has been ended
/// since ([`SessionEpoch`]): nothing is started.
#[derive(Message)]
#[rtype(result = "Result<Option<IssuedTokens>, AppError>")]
pub struct StartSession {
    pub user_id: Uuid,
    pub role: Role,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// What they proved it with.
    pub methods: AuthMethods,
    /// The user's [`SessionEpoch`] when the proof was read, where ending every session withdraws
    /// it.
    pub epoch: Option<SessionEpoch>,
}

/// A live session proved itself again (step-up): its assurance is now `methods`, as of now.
/// Answers a new access token that says so; the refresh token stays, and later rotations carry
/// the new assurance.
#[derive(Message)]
#[rtype(result = "Result<AccessToken, AppError>")]
pub struct Reauthenticate(pub SessionProof);

/// A signed access token and its lifetime in seconds.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Rotate a refresh token.
#[derive(Message)]
#[rtype(result = "Result<Rotated, AppError>")]
pub struct Rotate {
    pub presented: String,
}

/// What a rotation came to: new tokens, or a reused token whose session is now revoked (the
/// caller records it and answers `refresh_token_reused`).
#[derive(Debug)]
pub enum Rotated {
    Issued(IssuedTokens),
    Reused { session_id: Uuid, user_id: Uuid },
}

/// Verify an access token: signature, algorithm, `kid`, `iss`, `aud`, time, and that its session
/// is live and its user may still sign in.
#[derive(Message)]
#[rtype(result = "Result<Caller, AppError>")]
pub struct VerifyAccess {
    pub token: String,
}

/// End a session, by its refresh token and/or by an access token of it; answers whose it was.
#[derive(Message)]
#[rtype(result = "Result<Option<Uuid>, AppError>")]
pub struct Logout {
    pub refresh: Option<String>,
    pub access: Option<AccessClaims>,
}

/// End every session of a user; answers how many were live.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct LogoutAll {
    pub user_id: Uuid,
}

/// Which of a user's sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    All,
    AllExcept(Uuid),
    Only(Uuid),
}

/// Revoke some of a user's sessions (their access tokens stop working at once); answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct RevokeSessions {
    pub user_id: Uuid,
    pub scope: SessionScope,
    pub reason: RevokeReason,
}

/// The public keys that verify today's access tokens, as a JWKS.
#[derive(Message)]
#[rtype(result = "serde_json::Value")]
pub struct PublishedKeys;

/// The store side of the token flows: no keys, no state of its own.
pub struct TokenService {
    store: Arc<dyn Store>,
    settings: TokenSettings,
}

/// What a rotation leaves the actor to do.
pub enum RotationStep {
    /// Sign an access token for this session; the client gets `refresh_token` back.
    Issue(SessionOwner, RefreshToken),
    Reused {
        session_id: Uuid,
        user_id: Uuid,
    },
}

impl TokenService {
    pub fn new(store: Arc<dyn Store>, settings: TokenSettings) -> Self {
        TokenService { store, settings }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    #[tracing::instrument(skip_all, fields(user_id = %msg.user_id))]
    pub async fn start_session(
        &self,
        msg: StartSession,
    ) -> Result<Option<(SessionOwner, RefreshToken)>, AppError> {
        let refresh_token = RefreshToken::generate();
        let session_id = Uuid::new_v4();
        let created = self
            .store
            .create_session(NewSession {
                id: session_id,
                user_id: msg.user_id,
                refresh_hash: refresh_token.hash(),
                refresh_ttl_seconds: self.settings.refresh_ttl_seconds,
                user_agent: msg.user_agent,
                ip: msg.ip,
                methods: msg.methods.clone(),
                epoch: msg.epoch,
            })
            .await?;
        if !created {
            tracing::info!("the user's sessions were ended after the proof was read; none started");
            return Ok(None);
        }
        let owner = SessionOwner {
            session_id,
            user_id: msg.user_id,
            role: msg.role,
            assurance: SessionAssurance {
                methods: msg.methods,
                authenticated_at: Utc::now().timestamp(),
            },
        };
        Ok(Some((owner, refresh_token)))
    }

    #[tracing::instrument(skip_all)]
    pub async fn rotate(&self, presented: &str) -> Result<RotationStep, AppError> {
        let presented = RefreshToken::parse(presented).ok_or(AppError::TokenInvalid)?;
        // Deterministic: the same parent always yields the same child, which is what lets a racing
        // tab inside the grace window receive the token the first request received.
        let child = presented.child(self.settings.refresh_secret.expose().as_bytes());
        let outcome = self
            .store
            .rotate_refresh_token(Rotation {
                presented: presented.hash(),
                child: child.hash(),
                refresh_ttl_seconds: self.settings.refresh_ttl_seconds,
                grace_seconds: self.settings.refresh_reuse_grace_seconds,
                session_max_lifetime_seconds: self.settings.session_max_lifetime_seconds,
            })
            .await?;
        match outcome {
            RotationOutcome::Rotated(owner) => Ok(RotationStep::Issue(owner, child)),
            RotationOutcome::GraceReplay(owner) => {
                tracing::info!(session_id = %owner.session_id, "refresh replayed within the grace window");
                Ok(RotationStep::Issue(owner, child))
            }
            RotationOutcome::Reused {
                session_id,
                user_id,
            } => {
                tracing::warn!(%session_id, %user_id, "refresh token reuse detected; session revoked");
                Ok(RotationStep::Reused {
                    session_id,
                    user_id,
                })
            }
            RotationOutcome::Expired => Err(AppError::TokenExpired),
            RotationOutcome::Invalid => Err(AppError::TokenInvalid),
        }
    }

    /// The caller behind claims whose signature checked out: their session must be live.
    pub async fn caller(&self, claims: AccessClaims) -> Result<Caller, AppError> {
        // The store is the authority on revocation: a logout, lock, deletion or password change
        // revoked the session row, and that holds after a restart and on every node. One indexed
        // read that also yields the account, which most callers need next anyway.
        let user = self
            .store
            .live_session_user(claims.sid, claims.sub)
            .await?
            .ok_or(AppError::TokenInvalid)?;
        Ok(Caller { claims, user })
    }

    #[tracing::instrument(skip_all, fields(session_id = %proof.session_id))]
    pub async fn reauthenticate(&self, proof: &SessionProof) -> Result<SessionOwner, AppError> {
        self.store
            .reauthenticate_session(proof)
            .await?
            .ok_or(AppError::TokenInvalid)
    }

    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, msg: Logout) -> Result<Option<Uuid>, AppError> {
        let mut user_id = None;
        if let Some(claims) = &msg.access {
            self.store
                .revoke_session(claims.sid, RevokeReason::Logout)
                .await?;
            user_id = Some(claims.sub);
        }
        if let Some(token) = msg.refresh.as_deref().and_then(RefreshToken::parse) {
            if let Some(revoked) = self
                .store
                .revoke_session_by_refresh(token.hash(), RevokeReason::Logout)
                .await?
            {
                user_id = user_id.or(Some(revoked.user_id));
            }
        }
        Ok(user_id)
    }

    #[tracing::instrument(skip_all, fields(user_id = %msg.user_id))]
    pub async fn logout_all(&self, msg: LogoutAll) -> Result<usize, AppError> {
        let sessions = self
            .store
            .revoke_user_sessions(msg.user_id, None, RevokeReason::LogoutAll)
            .await?;
        Ok(sessions.len())
    }

    #[tracing::instrument(skip_all, fields(user_id = %msg.user_id))]
    pub async fn revoke_sessions(&self, msg: RevokeSessions) -> Result<usize, AppError> {
        let revoked = match msg.scope {
            SessionScope::All => self
                .store
                .revoke_user_sessions(msg.user_id, None, msg.reason)
                .await?
                .len(),
            SessionScope::AllExcept(keep) => self
                .store
                .revoke_user_sessions(msg.user_id, Some(keep), msg.reason)
                .await?
                .len(),
            SessionScope::Only(session_id) => usize::from(
                self.store
                    .revoke_session_of(msg.user_id, session_id, msg.reason)
                    .await?,
            ),
        };
        Ok(revoked)
    }
}

/// How often an unknown `kid` may trigger a reload of the stored keys, at most: forged kids
/// cannot turn into a flood of store reads.
const RELOAD_ON_MISS_EVERY: Duration = Duration::from_secs(5);

/// Start one per HTTP worker; each owns its key ring.
pub struct TokenActor {
    sessions: Arc<TokenService>,
    keys: KeySource,
    ring: Arc<KeyRing>,
    last_reload: Instant,
}

impl TokenActor {
    /// `ring`: the ring loaded at start (every actor begins with the same one).
    pub fn new(sessions: Arc<TokenService>, keys: KeySource, ring: Arc<KeyRing>) -> Self {
        TokenActor {
            sessions,
            keys,
            ring,
            last_reload: Instant::now(),
        }
    }

    fn sign_access(&self, owner: &SessionOwner) -> Result<AccessToken, AppError> {
        let settings = self.sessions.settings();
        let expires_in = settings.access_ttl_seconds;
        let claims = AccessClaims::new(
            owner.user_id,
            owner.session_id,
            owner.role,
            &owner.assurance,
            (&settings.issuer, &settings.audience),
            Utc::now().timestamp(),
            expires_in as i64,
        );
        Ok(AccessToken {
            token: self.ring.sign(&claims)?,
            expires_in,
        })
    }

    fn issue(
        &self,
        owner: SessionOwner,
        refresh_token: RefreshToken,
    ) -> Result<IssuedTokens, AppError> {
        let access = self.sign_access(&owner)?;
        Ok(IssuedTokens {
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token,
            session_id: owner.session_id,
        })
    }

    /// Replaces the ring with the store's, keeping the current one if that fails.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let keys = self.keys.clone();
        self.last_reload = Instant::now();
        ctx.spawn(
            async move { keys.load_ring().await }
                .into_actor(self)
                .map(|loaded, actor, _| match loaded {
                    Ok(ring) => actor.ring = Arc::new(ring),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones")
                    }
                }),
        );
    }
}

impl Actor for TokenActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = self.sessions.settings().key_refresh_seconds;
        if every > 0 && !self.keys.is_fixed() {
            ctx.run_interval(Duration::from_secs(every), |actor, ctx| actor.reload(ctx));
        }
    }
}

impl Handler<StartSession> for TokenActor {
    type Result = ResponseActFuture<Self, Result<Option<IssuedTokens>, AppError>>;

    fn handle(&mut self, msg: StartSession, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(
            async move { sessions.start_session(msg).await }
                .into_actor(self)
                .map(|started, actor, _| match started? {
                    Some((owner, refresh_token)) => actor.issue(owner, refresh_token).map(Some),
                    None => Ok(None),
                }),
        )
    }
}

impl Handler<Reauthenticate> for TokenActor {
    type Result = ResponseActFuture<Self, Result<AccessToken, AppError>>;

    fn handle(&mut self, msg: Reauthenticate, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(
            async move { sessions.reauthenticate(&msg.0).await }
                .into_actor(self)
                .map(|owner, actor, _| actor.sign_access(&owner?)),
        )
    }
}

impl Handler<Rotate> for TokenActor {
    type Result = ResponseActFuture<Self, Result<Rotated, AppError>>;

    fn handle(&mut self, msg: Rotate, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(
            async move { sessions.rotate(&msg.presented).await }
                .into_actor(self)
                .map(|step, actor, _| match step? {
                    RotationStep::Issue(owner, child) => {
                        actor.issue(owner, child).map(Rotated::Issued)
                    }
                    RotationStep::Reused {
                        session_id,
                        user_id,
                    } => Ok(Rotated::Reused {
                        session_id,
                        user_id,
                    }),
                }),
        )
    }
}

impl Handler<VerifyAccess> for TokenActor {
    type Result = ResponseActFuture<Self, Result<Caller, AppError>>;

    fn handle(&mut self, msg: VerifyAccess, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        let decoded = self.ring.decode(&msg.token);
        // A key another node rotated in: reload (rarely), then decide with the new ring.
        let reload = matches!(decoded, Err(DecodeError::UnknownKey))
            && !self.keys.is_fixed()
            && self.last_reload.elapsed() >= RELOAD_ON_MISS_EVERY;
        if !reload {
            return Box::pin(async move { sessions.caller(decoded?).await }.into_actor(self));
        }
        self.last_reload = Instant::now();
        let keys = self.keys.clone();
        Box::pin(
            async move { keys.load_ring().await }
                .into_actor(self)
                .map(move |loaded, actor, _| {
                    match loaded {
                        Ok(ring) => actor.ring = Arc::new(ring),
                        Err(e) => tracing::warn!(error = %e, "reloading signing keys failed"),
                    }
                    actor.ring.decode(&msg.token)
                })
                .then(move |claims, actor, _| {
                    async move { sessions.caller(claims?).await }.into_actor(actor)
                }),
        )
    }
}

impl Handler<Logout> for TokenActor {
    type Result = ResponseFuture<Result<Option<Uuid>, AppError>>;

    fn handle(&mut self, msg: Logout, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(async move { sessions.logout(msg).await })
    }
}

impl Handler<LogoutAll> for TokenActor {
    type Result = ResponseFuture<Result<usize, AppError>>;

    fn handle(&mut self, msg: LogoutAll, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(async move { sessions.logout_all(msg).await })
    }
}

impl Handler<PublishedKeys> for TokenActor {
    type Result = MessageResult<PublishedKeys>;

    fn handle(&mut self, _: PublishedKeys, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.ring.jwks().clone())
    }
}

impl Handler<RevokeSessions> for TokenActor {
    type Result = ResponseFuture<Result<usize, AppError>>;

    fn handle(&mut self, msg: RevokeSessions, _: &mut Self::Context) -> Self::Result {
        let sessions = self.sessions.clone();
        Box::pin(async move { sessions.revoke_sessions(msg).await })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::config::Environment;
    use crate::domain::jwt_algorithm::JwtAlgorithm;
    use crate::store::sqlite::SqliteStore;
    use crate::store::NewUser;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A token service on an in-memory SQLite store, with the development
    /// settings and `algorithm`; and one valid access token it issued.
    fn service(runtime: &tokio::runtime::Runtime, algorithm: JwtAlgorithm) -> (KeyRing, String) {
        runtime.block_on(async {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
            let mut settings =
                crate::config::load_from(&dir, Environment::Development, &[]).unwrap();
            settings.tokens.algorithm = algorithm;
            let sqlite = SqliteStore::open(None).await.unwrap();
            sqlite.migrate().await.unwrap();
            let store: Arc<dyn Store> = Arc::new(sqlite);
            let ring = KeySource::new(store.clone(), settings.tokens.clone())
                .initial_ring()
                .await
                .unwrap();
            let service = TokenService::new(store.clone(), settings.tokens.clone());
            let user = store
                .create_user(NewUser {
                    email_verified: true,
                    ..NewUser::new(
                        crate::domain::email::EmailAddress::parse("tokens@example.com").unwrap(),
                        None,
                        "unused".into(),
                        Role::User,
                    )
                })
                .await
                .unwrap();
            let (owner, _) = service
                .start_session(StartSession {
                    user_id: user.id,
                    role: Role::User,
                    user_agent: None,
                    ip: None,
                    methods: AuthMethods::password(),
                    epoch: None,
                })
                .await
                .unwrap()
                .unwrap();
            let claims = AccessClaims::new(
                owner.user_id,
                owner.session_id,
                owner.role,
                &owner.assurance,
                (&settings.tokens.issuer, &settings.tokens.audience),
                Utc::now().timestamp(),
                settings.tokens.access_ttl_seconds as i64,
            );
            let token = ring.sign(&claims).unwrap();
            let claims = ring.decode(&token).expect("the issued token decodes");
            assert!(
                service.caller(claims).await.is_ok(),
                "the issued token's session is live"
            );
            (ring, token)
        })
    }

    fn refused(result: Result<AccessClaims, AppError>) -> bool {
        matches!(result, Err(AppError::TokenInvalid | AppError::TokenExpired))
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Text shaped like a JWT: three base64url-ish segments, sometimes a real header.
    fn jwt_like() -> impl Strategy<Value = String> {
        let segment = "[A-Za-z0-9_=+/-]{0,80}";
        prop_oneof![
            (segment, segment, segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
            (segment, segment).prop_map(|(b, c)| {
                // {"alg":"HS256","kid":"hs-1","typ":"JWT"} and {"alg":"none"}
                let header = if c.len() % 2 == 0 {
                    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzLTEiLCJ0eXAiOiJKV1QifQ"
                } else {
                    "eyJhbGciOiJub25lIn0"
                };
                format!("{header}.{b}.{c}")
            }),
        ]
    }

    /// A replacement for one character of a token: mostly base64url and `.`, sometimes anything.
    fn replacement() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".chars().collect::<Vec<_>>()
            ),
            1 => any::<char>(),
        ]
    }

    #[test]
    fn arbitrary_text_is_never_an_access_token() {
        let runtime = runtime();
        let (ring, _) = service(&runtime, JwtAlgorithm::HS256);
        let mut runner = proptest::test_runner::TestRunner::new(config());
        runner
            .run(&prop_oneof![any::<String>(), jwt_like()], |text| {
                let result = ring.decode(&text).map_err(AppError::from);
                prop_assert!(refused(result), "{text:?}");
                Ok(())
            })
            .unwrap();
    }

    /// One service per algorithm for all cases (key generation is the slow part).
    fn mutations_are_refused(algorithm: JwtAlgorithm) {
        let runtime = runtime();
        let (ring, token) = service(&runtime, algorithm);
        let length = token.chars().count();
        let mut runner = proptest::test_runner::TestRunner::new(config());
        runner
            .run(
                &(0..length, replacement(), any::<bool>()),
                |(index, replacement, truncate)| {
                    let mut chars: Vec<char> = token.chars().collect();
                    if truncate {
                        chars.truncate(index);
                    } else {
                        chars[index] = replacement;
                    }
                    let mutated: String = chars.into_iter().collect();
                    if mutated != token {
                        let result = ring.decode(&mutated).map_err(AppError::from);
                        prop_assert!(refused(result), "{algorithm:?} accepted {mutated}");
                    }
                    Ok(())
                },
            )
            .unwrap();
        // A token signed with another key, however valid its claims, is refused too.
        let mut runner = proptest::test_runner::TestRunner::new(config());
        runner
            .run(&any::<[u8; 32]>(), |secret| {
                let claims = ring.decode(&token).unwrap();
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.kid = Some(jsonwebtoken::decode_header(&token).unwrap().kid.unwrap());
                let forged = jsonwebtoken::encode(
                    &header,
                    &claims,
                    &jsonwebtoken::EncodingKey::from_secret(&secret),
                )
                .unwrap();
                let result = ring.decode(&forged).map_err(AppError::from);
                prop_assert!(refused(result), "{algorithm:?} accepted a forgery");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn mutated_hs256_tokens_are_refused() {
        mutations_are_refused(JwtAlgorithm::HS256);
    }

    #[test]
    fn mutated_es256_tokens_are_refused() {
        mutations_are_refused(JwtAlgorithm::ES256);
    }
}
