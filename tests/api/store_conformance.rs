//! One suite for the `Store` trait, run against every backend: the same cases, the same answers.

use std::sync::Arc;

use authd::config::StoreBackend;
use authd::domain::assurance::AuthMethods;
use authd::domain::email::{CanonicalEmail, EmailAddress};
use authd::domain::opaque_token::RefreshToken;
use authd::domain::user::{Role, User};
use authd::store::postgres::PostgresStore;
use authd::store::sqlite::SqliteStore;
use authd::store::{
    FactorChoice, FactorState, NewIdentity, NewSession, NewUser, RevokeReason, Rotation,
    RotationOutcome, SessionEpoch, Store, StoreError, StoredPasskey, TotpConfirmation, TotpFactor,
    UserUpdate,
};
use uuid::Uuid;

use crate::helpers::{test_settings, Backend, TestDatabase};

/// A store on a database of its own, removed afterwards.
struct TestStore {
    store: Arc<dyn Store>,
    database: TestDatabase,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.database.remove();
    }
}

impl TestStore {
    /// Creates a user with `email`: the first step of most cases.
    async fn user(&self, email: &str) -> User {
        self.store.create_user(new_user(email)).await.unwrap()
    }

    /// Opens a session of `user_id` whose refresh token lives `ttl` seconds.
    async fn session(&self, user_id: Uuid, ttl: u64) -> (Uuid, RefreshToken) {
        let (started, id, token) = self.session_since(user_id, ttl, None).await;
        assert!(started, "a session without an epoch starts");
        (id, token)
    }

    /// Asks for a session of `user_id` whose proof was read under `epoch`: whether it started.
    async fn session_since(
        &self,
        user_id: Uuid,
        ttl: u64,
        epoch: Option<SessionEpoch>,
    ) -> (bool, Uuid, RefreshToken) {
        let token = RefreshToken::generate();
        let id = Uuid::new_v4();
        let started = self
            .store
            .create_session(NewSession {
                id,
                user_id,
                refresh_hash: token.hash(),
                refresh_ttl_seconds: ttl,
                user_agent: Some("test".into()),
                ip: Some("127.0.0.1".into()),
                methods: AuthMethods::password(),
                epoch,
            })
            .await
            .unwrap();
        (started, id, token)
    }

    /// Whether the session is live (what an access token of it is checked against).
    async fn is_live(&self, session_id: Uuid, user_id: Uuid) -> bool {
        let user = self.store.live_session_user(session_id, user_id).await;
        user.unwrap().is_some()
    }

    /// The user's session epoch as a password login reads it.
    async fn epoch(&self, user: &User) -> SessionEpoch {
        let canonical = CanonicalEmail::of(&user.email);
        let credentials = self.store.user_by_email(&canonical).await.unwrap();
        credentials.expect("the user exists").session_epoch
    }

    /// Presents `token` for rotation with a grace window of `grace_seconds`: the outcome.
    async fn rotate(&self, token: &RefreshToken, grace_seconds: u64) -> RotationOutcome {
        self.store
            .rotate_refresh_token(rotation(token, grace_seconds))
            .await
            .unwrap()
    }

    /// `token` is current: it rotates (with `grace_seconds` for its replays).
    async fn assert_rotates(&self, token: &RefreshToken, grace_seconds: u64) {
        let outcome = self.rotate(token, grace_seconds).await;
        assert!(
            matches!(outcome, RotationOutcome::Rotated(_)),
            "{outcome:?}"
        );
    }
}

async fn open(backend: Backend) -> TestStore {
    let database = TestDatabase::new(backend);
    let settings = test_settings(backend, &database);
    let store: Arc<dyn Store> = match settings.store_backend().unwrap() {
        StoreBackend::Postgres => {
            PostgresStore::create_database_if_missing(&settings.database)
                .await
                .unwrap();
            PostgresStore::migrate(&settings.database).await.unwrap();
            Arc::new(PostgresStore::connect(&settings.database).await.unwrap())
        }
        StoreBackend::Sqlite(path) => {
            let store = SqliteStore::open(path.as_deref()).await.unwrap();
            store.migrate().await.unwrap();
            Arc::new(store)
        }
    };
    TestStore { store, database }
}

fn new_user(email: &str) -> NewUser {
    NewUser::new(
        EmailAddress::parse(email).expect("a valid address"),
        Some("Ada".into()),
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        Role::User,
    )
}

fn rotation(presented: &RefreshToken, grace_seconds: u64) -> Rotation {
    Rotation {
        presented: presented.hash(),
        child: presented.child(b"conformance-key").hash(),
        refresh_ttl_seconds: 3600,
        grace_seconds,
        session_max_lifetime_seconds: 86400,
    }
}

async fn users_are_found_by_email_whatever_its_case(backend: Backend) {
    let t = open(backend).await;
    let created = t.user("Grace@Example.com").await;
    assert_eq!(created.email, "Grace@Example.com");
    assert_eq!(created.role, Role::User);
    let found = t
        .store
        .user_by_email(&CanonicalEmail::of(" grace@EXAMPLE.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, created);
    assert!(found.password_hash.starts_with("$argon2id$"));
    assert_eq!(t.store.user_by_id(created.id).await.unwrap(), Some(created));
    assert!(t
        .store
        .user_by_email(&CanonicalEmail::of("nobody@example.com"))
        .await
        .unwrap()
        .is_none());
    assert!(t.store.user_by_id(Uuid::new_v4()).await.unwrap().is_none());
}

async fn an_email_holds_one_live_account(backend: Backend) {
    let t = open(backend).await;
    t.user("one@example.com").await;
    let second = t.store.create_user(new_user("ONE@example.com")).await;
    assert!(
        matches!(second, Err(StoreError::EmailTaken)),
        "{:?}",
        second.err()
    );
    // Unicode case folding (here of an internationalised domain) is the same on both backends.
    t.user("emile@Éxample.com").await;
    let again = t.store.create_user(new_user("emile@éxample.com")).await;
    assert!(matches!(again, Err(StoreError::EmailTaken)));
}

async fn a_current_token_rotates_once_and_its_replays_follow_the_rules(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("rotate@example.com").await;
    let (session_id, parent) = t.session(user.id, 3600).await;

    let first = t.rotate(&parent, 10).await;
    let RotationOutcome::Rotated(owner) = first else {
        panic!("expected a rotation, got {first:?}");
    };
    assert_eq!(
        (owner.session_id, owner.user_id, owner.role),
        (session_id, user.id, Role::User)
    );

    // Within the grace window the parent replays to the same (current) child.
    let replay = t.rotate(&parent, 10).await;
    assert_eq!(replay, RotationOutcome::GraceReplay(owner));

    // The child is current and rotates in turn; now the parent is two behind: reuse.
    let child = parent.child(b"conformance-key");
    t.assert_rotates(&child, 10).await;
    assert_eq!(
        t.rotate(&parent, 10).await,
        RotationOutcome::Reused {
            session_id,
            user_id: user.id
        }
    );
    // The session is revoked: even its newest token is now invalid.
    let grandchild = child.child(b"conformance-key");
    assert_eq!(t.rotate(&grandchild, 10).await, RotationOutcome::Invalid);
}

async fn a_replay_after_the_grace_window_is_reuse(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("late@example.com").await;
    let (_, parent) = t.session(user.id, 3600).await;
    t.assert_rotates(&parent, 0).await;
    assert!(matches!(
        t.rotate(&parent, 0).await,
        RotationOutcome::Reused { .. }
    ));
}

async fn expired_unknown_and_barred_tokens_do_not_rotate(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("expired@example.com").await;
    let (_, expired) = t.session(user.id, 0).await;
    assert_eq!(t.rotate(&expired, 10).await, RotationOutcome::Expired);
    assert_eq!(
        t.rotate(&RefreshToken::generate(), 10).await,
        RotationOutcome::Invalid
    );
}

async fn a_session_past_its_absolute_lifetime_does_not_rotate(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("aged@example.com").await;
    let (_, token) = t.session(user.id, 3600).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut aged = rotation(&token, 10);
    aged.session_max_lifetime_seconds = 1;
    assert_eq!(
        t.store.rotate_refresh_token(aged).await.unwrap(),
        RotationOutcome::Expired
    );
    t.assert_rotates(&token, 10).await;
}

async fn concurrent_rotations_of_one_token_make_one_child(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("race@example.com").await;
    let (_, parent) = t.session(user.id, 3600).await;
    let attempts = (0..20).map(|_| t.store.rotate_refresh_token(rotation(&parent, 10)));
    let outcomes = futures_util::future::join_all(attempts).await;
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(RotationOutcome::Rotated(_))))
        .count();
    let replayed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(RotationOutcome::GraceReplay(_))))
        .count();
    assert_eq!((rotated, replayed), (1, 19), "{outcomes:?}");
}

async fn sessions_are_revoked_by_token_by_id_and_all_at_once(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("revoke@example.com").await;
    let (first_id, first) = t.session(user.id, 3600).await;
    let (second_id, _) = t.session(user.id, 3600).await;
    let (third_id, third) = t.session(user.id, 3600).await;

    let revoked = t
        .store
        .revoke_session_by_refresh(first.hash(), RevokeReason::Logout)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((revoked.session_id, revoked.user_id), (first_id, user.id));
    assert!(t
        .store
        .revoke_session_by_refresh(RefreshToken::generate().hash(), RevokeReason::Logout)
        .await
        .unwrap()
        .is_none());
    assert_eq!(t.rotate(&first, 10).await, RotationOutcome::Invalid);

    assert!(t
        .store
        .revoke_session(second_id, RevokeReason::Logout)
        .await
        .unwrap());
    assert!(!t
        .store
        .revoke_session(second_id, RevokeReason::Logout)
        .await
        .unwrap());

    let all = t
        .store
        .revoke_user_sessions(user.id, None, RevokeReason::LogoutAll)
        .await
        .unwrap();
    assert_eq!(all, vec![third_id], "only the sessions still live");
    assert_eq!(t.rotate(&third, 10).await, RotationOutcome::Invalid);
}

/// Ending every session of a user counts its epoch up; a session asked for under an older epoch
/// (its proof read before the ending) is refused and nothing is written, and the pending sign-ins
/// keep the epoch they were made under (a first step's, or the user's when none is given).
async fn a_session_starts_only_under_the_epoch_its_proof_was_read_at(backend: Backend) {
    use authd::store::{NewEmailLogin, NewMfaChallenge, OutboxEmail};

    let t = open(backend).await;
    let user = t.user("epoch@example.com").await;
    let before = t.epoch(&user).await;
    let (started, _, live) = t.session_since(user.id, 3600, Some(before)).await;
    assert!(started, "nothing ended since the proof");

    let challenge = |epoch| NewMfaChallenge {
        hash: RefreshToken::generate().hash(),
        user_id: user.id,
        methods: AuthMethods::password(),
        ttl_seconds: 300,
        epoch,
    };
    let first_step = challenge(Some(before));
    t.store.create_mfa_challenge(&first_step).await.unwrap();

    let ended = t
        .store
        .revoke_user_sessions(user.id, None, RevokeReason::PasswordReset)
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    let after = t.epoch(&user).await;
    assert_eq!(after, before.next(), "one ending, one count");

    let (started, id, token) = t.session_since(user.id, 3600, Some(before)).await;
    assert!(!started, "a proof read before the ending opens nothing");
    assert!(!t.is_live(id, user.id).await);
    assert_eq!(t.rotate(&token, 10).await, RotationOutcome::Invalid);
    assert_eq!(t.rotate(&live, 10).await, RotationOutcome::Invalid);
    let (started, id, _) = t.session_since(user.id, 3600, Some(after)).await;
    assert!(started, "a proof read after it does");
    assert!(t.is_live(id, user.id).await);

    // A second step made now, without a first step's epoch, holds the user's current one; one
    // made with the first step's keeps that.
    for (made, expected) in [(challenge(None), after), (challenge(Some(before)), before)] {
        t.store.create_mfa_challenge(&made).await.unwrap();
        let pending = t.store.attempt_mfa_challenge(made.hash, 5).await.unwrap();
        assert_eq!(pending.expect("live").epoch, expected);
    }
    // The one made before the ending was retired by it.
    let retired = t.store.attempt_mfa_challenge(first_step.hash, 5).await;
    assert!(retired.unwrap().is_none());

    // A sign-in mail keeps the epoch it was sent under.
    let link = RefreshToken::generate();
    let login = NewEmailLogin {
        link_hash: link.hash(),
        user_id: user.id,
        address: CanonicalEmail::of(&user.email),
        code_hash: RefreshToken::generate().hash(),
        ttl_seconds: 300,
    };
    let mail = OutboxEmail {
        id: Uuid::new_v4(),
        message_id: format!("<{}@test>", Uuid::new_v4()),
        recipient: user.email.clone(),
        subject: "s".into(),
        text_body: "t".into(),
        html_body: "h".into(),
    };
    assert!(t.store.create_email_login(&login, &mail).await.unwrap());
    let used = t.store.use_email_login(link.hash()).await.unwrap();
    let used = used.expect("a live sign-in mail");
    assert_eq!((used.user_id, used.epoch), (user.id, after));
}

/// Whatever the proof, no session is written for a locked or a deleted user (a passkey or a
/// provider's sign-in racing a lock or a deletion included).
async fn no_session_starts_for_a_locked_or_deleted_user(backend: Backend) {
    let t = open(backend).await;
    let locked = t.user("locked@example.com").await;
    let lock = UserUpdate {
        locked: Some(true),
        ..UserUpdate::default()
    };
    t.store.update_user(locked.id, lock).await.unwrap();
    let deleted = t.user("deleted@example.com").await;
    assert!(t.store.soft_delete_user(deleted.id).await.unwrap());
    for user in [&locked, &deleted] {
        let (started, id, _) = t.session_since(user.id, 3600, None).await;
        assert!(!started, "{}", user.email);
        assert!(!t.is_live(id, user.id).await);
    }
}

/// A session asked for while every session of its user is being ended: either the ending comes
/// first and the session is refused, or the session comes first and the ending revokes it; never
/// a live session from a proof read before the ending (on PostgreSQL, the session's check holds
/// the user's row, which the ending updates first).
async fn an_ending_and_a_session_asked_for_at_once_leave_no_session_from_before(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("ending-race@example.com").await;
    for round in 1..=30 {
        let epoch = t.epoch(&user).await;
        let ((started, id, _), ended) = tokio::join!(
            t.session_since(user.id, 3600, Some(epoch)),
            t.store
                .revoke_user_sessions(user.id, None, RevokeReason::LogoutAll),
        );
        ended.unwrap();
        assert!(
            !(started && t.is_live(id, user.id).await),
            "round {round}: a session from before the ending is live"
        );
    }
}

fn passkey_of(user: &User, credential_id: u8) -> StoredPasskey {
    StoredPasskey {
        id: Uuid::new_v4(),
        user_id: user.id,
        credential_id: vec![credential_id; 16],
        name: "key".into(),
        credential: r#"{"counter":0}"#.into(),
        created_at: chrono::Utc::now(),
        last_used_at: None,
    }
}

/// What a signed-in session adds to its account or changes of it (a passkey, an identity, a
/// TOTP factor, the address) is written only while that session lives, checked in the write's
/// own transaction: once it is revoked (or its user locked), nothing is written.
async fn what_a_session_adds_is_written_only_while_it_lives(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("adder@example.com").await;
    let other = t.user("other@example.com").await;
    let (live, _) = t.session(user.id, 3600).await;
    let (ended, _) = t.session(user.id, 3600).await;
    let (others, _) = t.session(other.id, 3600).await;
    assert!(t
        .store
        .revoke_session(ended, RevokeReason::Logout)
        .await
        .unwrap());
    let refused =
        |outcome: &Result<bool, StoreError>| matches!(outcome, Err(StoreError::SessionEnded));
    let identity = |subject: &str| NewIdentity {
        provider: "example".into(),
        subject: subject.into(),
        user_id: user.id,
        email: None,
    };
    let factor = TotpFactor {
        id: Uuid::new_v4(),
        user_id: user.id,
        sealed_secret: vec![1, 2, 3],
        created_at: chrono::Utc::now(),
        confirmed_at: None,
    };
    t.store.create_totp_factor(&factor).await.unwrap();
    let confirmation = |session_id| TotpConfirmation {
        factor_id: factor.id,
        session_id,
        step: 100,
        recovery_codes: Vec::new(),
    };
    let address = EmailAddress::parse("moved@example.com").unwrap();
    for session in [ended, others] {
        let added = t.store.add_passkey(&passkey_of(&user, 1), session).await;
        assert!(refused(&added), "{added:?}");
        let linked = t.store.link_identity(&identity("one"), session).await;
        assert!(refused(&linked), "{linked:?}");
        let confirmed = t.store.confirm_totp_factor(&confirmation(session)).await;
        assert!(refused(&confirmed), "{confirmed:?}");
        let changed = t.store.change_email(user.id, &address, session).await;
        assert!(refused(&changed), "{changed:?}");
    }
    assert!(t.store.passkeys_of(user.id).await.unwrap().is_empty());
    assert!(t.store.identities_of(user.id).await.unwrap().is_empty());
    assert!(!t.store.mfa_status(user.id).await.unwrap().enabled());
    let unmoved = t.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(unmoved.email, "adder@example.com");

    // The live session's writes go through.
    let added = t.store.add_passkey(&passkey_of(&user, 1), live).await;
    assert!(added.unwrap());
    assert!(t.store.link_identity(&identity("one"), live).await.unwrap());
    let confirmed = t.store.confirm_totp_factor(&confirmation(live)).await;
    assert!(confirmed.unwrap());
    assert!(t.store.change_email(user.id, &address, live).await.unwrap());

    // A lock ends what the session may add, whatever its row says.
    let lock = UserUpdate {
        locked: Some(true),
        ..UserUpdate::default()
    };
    t.store.update_user(user.id, lock).await.unwrap();
    let added = t.store.add_passkey(&passkey_of(&user, 2), live).await;
    assert!(refused(&added), "{added:?}");
    assert_eq!(t.store.passkeys_of(user.id).await.unwrap().len(), 1);
}

/// A passkey registered by a session while the owner's recovery ends every session and removes
/// every factor: either the registration comes first and the removal takes its passkey, or the
/// ending comes first and the registration is refused; never a passkey left after the recovery
/// (on PostgreSQL, the write holds the user's row, which the ending updates first). The window
/// without that lock is one round trip wide, which these rounds rarely hit: the case above is
/// what fails without the check.
async fn a_passkey_added_while_the_owner_recovers_does_not_outlive_the_recovery(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("recovered@example.com").await;
    for round in 1..=30u8 {
        let (session_id, _) = t.session(user.id, 3600).await;
        // Staggered by a few hundred microseconds, so that over the rounds the ending lands
        // before, inside and after the registration's transaction.
        let stagger = std::time::Duration::from_micros(u64::from(round % 6) * 300);
        let recovery = async {
            tokio::time::sleep(stagger).await;
            let ended = t
                .store
                .revoke_user_sessions(user.id, None, RevokeReason::PasswordReset)
                .await;
            ended.unwrap();
            t.store
                .remove_factors(user.id, FactorChoice::All)
                .await
                .unwrap();
        };
        let passkey = passkey_of(&user, round);
        let (added, ()) = tokio::join!(t.store.add_passkey(&passkey, session_id), recovery);
        assert!(
            matches!(added, Ok(true) | Err(StoreError::SessionEnded)),
            "round {round}: {added:?}"
        );
        let left = t.store.passkeys_of(user.id).await.unwrap();
        assert!(
            left.is_empty(),
            "round {round}: a passkey outlived the recovery"
        );
    }
}

/// On PostgreSQL, the moment the race above rarely hits, made to happen: an ending of every
/// session of the user is in flight (its transaction has updated the user's row and not yet
/// committed) when a passkey is added for one of those sessions. The write waits for it, then
/// finds the session ended and writes nothing; without the lock on the user's row it would
/// read the session as live (the ending not yet committed) and keep its passkey.
#[actix_web::test]
async fn on_postgresql_a_write_for_a_session_waits_for_an_ending_in_flight() {
    let t = open(Backend::PostgresRedis).await;
    let user = t.user("in-flight@example.com").await;
    let (session_id, _) = t.session(user.id, 3600).await;
    // The ending's statements, in the order `revoke_user_sessions` runs them (the user's row
    // first, then the sessions): should that order change, this test must follow it.
    let ending = crate::helpers::postgres_client(&t.database.url()).await;
    let begin = format!(
        "BEGIN; UPDATE users SET session_epoch = session_epoch + 1 WHERE id = '{}'",
        user.id
    );
    ending.batch_execute(&begin).await.unwrap();
    let store = Arc::clone(&t.store);
    let passkey = passkey_of(&user, 9);
    let adding = actix_web::rt::spawn(async move { store.add_passkey(&passkey, session_id).await });
    // Room for the write to reach the lock (were it not waiting, it would be done by now).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let end = format!(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = '{}'; COMMIT",
        user.id
    );
    ending.batch_execute(&end).await.unwrap();
    let added = adding.await.unwrap();
    assert!(matches!(added, Err(StoreError::SessionEnded)), "{added:?}");
    assert!(t.store.passkeys_of(user.id).await.unwrap().is_empty());
}

async fn the_store_answers_a_ping(backend: Backend) {
    let t = open(backend).await;
    t.store.ping().await.unwrap();
}

async fn the_janitor_purges_what_has_outlived_its_use_in_batches(backend: Backend) {
    use authd::domain::one_time::TokenKind;
    use authd::store::{DeliveryOutcome, NewOneTimeToken, OutboxEmail, PurgeBatch, PurgeTarget};

    let t = open(backend).await;
    let user = t.user("old@example.com").await;
    for _ in 0..5 {
        t.session(user.id, 0).await;
    }
    let (live_id, live) = t.session(user.id, 3600).await;
    let (revoked_id, _) = t.session(user.id, 3600).await;
    t.store
        .revoke_session(revoked_id, RevokeReason::Logout)
        .await
        .unwrap();
    for ttl in [0, 3600] {
        t.store
            .create_one_time_token(
                &NewOneTimeToken {
                    hash: RefreshToken::generate().hash(),
                    kind: TokenKind::PasswordReset,
                    user_id: Some(user.id),
                    email: user.email.clone(),
                    metadata: "{}".into(),
                    ttl_seconds: ttl,
                    follow_up: false,
                },
                None,
            )
            .await
            .unwrap();
    }
    let mail = OutboxEmail {
        id: Uuid::new_v4(),
        message_id: format!("<{}@test>", Uuid::new_v4()),
        recipient: "old@example.com".into(),
        subject: "s".into(),
        text_body: "t".into(),
        html_body: "h".into(),
    };
    t.store.enqueue_email(&mail).await.unwrap();
    t.store
        .record_delivery(mail.id, &DeliveryOutcome::Sent)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Within the retention, revoked sessions and sent mail stay; expired ones go, batch by batch.
    let store = t.store.as_ref();
    let purge = move |target, retention_seconds, limit| async move {
        let batch = PurgeBatch {
            target,
            retention_seconds,
            limit,
        };
        store.purge(batch).await.unwrap()
    };
    assert_eq!(purge(PurgeTarget::DeadSessions, 3600, 2).await, 2);
    let settings = authd::config::JanitorSettings {
        enabled: true,
        interval_seconds: 60,
        batch_size: 2,
        retention_seconds: 3600,
        events_retention_seconds: 3600,
    };
    authd::actors::janitor::sweep_once(t.store.as_ref(), &settings).await;
    for target in [
        PurgeTarget::DeadSessions,
        PurgeTarget::DeliveredEmails,
        PurgeTarget::SpentOneTimeTokens,
    ] {
        assert_eq!(
            purge(target, 3600, 100).await,
            0,
            "{target:?} after the sweep"
        );
    }
    // With no retention, the revoked session and the sent mail go too; the live session stays.
    for target in [PurgeTarget::DeadSessions, PurgeTarget::DeliveredEmails] {
        assert_eq!(
            purge(target, 0, 100).await,
            1,
            "{target:?} with no retention"
        );
    }
    let sessions = t.store.live_sessions(user.id).await.unwrap();
    assert_eq!(sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [live_id]);
    t.assert_rotates(&live, 10).await;
}

/// Two enrolments raced (begun in two tabs, the first confirmed between the second's check and
/// its insert): the second confirmation must answer "not confirmed", not break the one-active-
/// factor rule with an error.
async fn a_second_totp_enrolment_cannot_be_confirmed_beside_an_active_one(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("two-tabs@example.com").await;
    let factor = |id| TotpFactor {
        id,
        user_id: user.id,
        sealed_secret: vec![1, 2, 3],
        created_at: chrono::Utc::now(),
        confirmed_at: None,
    };
    let (session_id, _) = t.session(user.id, 3600).await;
    let confirmation = |factor_id| TotpConfirmation {
        factor_id,
        session_id,
        step: 100,
        recovery_codes: Vec::new(),
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    t.store.create_totp_factor(&factor(first)).await.unwrap();
    assert!(t
        .store
        .confirm_totp_factor(&confirmation(first))
        .await
        .unwrap());
    t.store.create_totp_factor(&factor(second)).await.unwrap();
    let confirmed = t.store.confirm_totp_factor(&confirmation(second)).await;
    assert!(matches!(confirmed, Ok(false)), "{confirmed:?}");
    let active = t
        .store
        .totp_factor(user.id, FactorState::Active)
        .await
        .unwrap()
        .expect("the first factor stays active");
    assert_eq!(active.id, first);
}

/// A passkey's use is recorded only over the credential it was checked against: of two answers
/// checked against one stored credential (one counter value: a cloned authenticator), the second
/// to be recorded finds it changed and records nothing.
async fn a_passkey_use_is_recorded_over_the_credential_it_was_checked_against(backend: Backend) {
    let t = open(backend).await;
    let user = t.user("cloned-key@example.com").await;
    let passkey = StoredPasskey {
        id: Uuid::new_v4(),
        user_id: user.id,
        credential_id: vec![7; 16],
        name: "key".into(),
        credential: r#"{"counter":1}"#.into(),
        created_at: chrono::Utc::now(),
        last_used_at: None,
    };
    let (session_id, _) = t.session(user.id, 3600).await;
    assert!(t.store.add_passkey(&passkey, session_id).await.unwrap());
    let (checked, first, second) = (
        r#"{"counter":1}"#,
        r#"{"counter":2}"#,
        r#"{"counter":2,"b":1}"#,
    );
    assert!(t
        .store
        .record_passkey_use(passkey.id, checked, first)
        .await
        .unwrap());
    let raced = t
        .store
        .record_passkey_use(passkey.id, checked, second)
        .await;
    assert!(matches!(raced, Ok(false)), "{raced:?}");
    let stored = t.store.passkeys_of(user.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].credential, first, "the first use stands");
    assert!(stored[0].last_used_at.is_some());
    // The next use is checked against what the first one stored.
    assert!(t
        .store
        .record_passkey_use(passkey.id, first, second)
        .await
        .unwrap());
}

/// Two admins demoted at once, on connections of their own: exactly one demotion stands, every
/// time, so the store is never left without an admin (on PostgreSQL both would pass their own
/// "another admin remains" check without the lock the store takes).
async fn two_admins_demoted_at_once_leave_one_admin(backend: Backend) {
    let t = open(backend).await;
    let admin = |email: &str| NewUser {
        role: Role::Admin,
        ..new_user(email)
    };
    let demote = || UserUpdate {
        role: Some(Role::User),
        ..UserUpdate::default()
    };
    let mut survivor = t
        .store
        .create_user(admin("admin-0@example.com"))
        .await
        .unwrap();
    for round in 1..=20 {
        let newcomer = t
            .store
            .create_user(admin(&format!("admin-{round}@example.com")))
            .await
            .unwrap();
        let (first, second) = tokio::join!(
            t.store.update_user(survivor.id, demote()),
            t.store.update_user(newcomer.id, demote()),
        );
        let refused =
            |outcome: &Result<_, StoreError>| matches!(outcome, Err(StoreError::LastAdmin));
        let demoted = |outcome: &Result<Option<User>, StoreError>| matches!(outcome, Ok(Some(user)) if user.role == Role::User);
        survivor = match (
            demoted(&first),
            refused(&first),
            demoted(&second),
            refused(&second),
        ) {
            (true, _, _, true) => newcomer,
            (_, true, true, _) => survivor,
            _ => panic!("round {round}: one demotion stands, not {first:?} and {second:?}"),
        };
    }
    let last = t.store.update_user(survivor.id, demote()).await;
    assert!(matches!(last, Err(StoreError::LastAdmin)), "{last:?}");
}

/// A claimed delivery as the admin's log shows it.
async fn logged_delivery(
    t: &TestStore,
    delivery: &authd::store::ClaimedWebhook,
) -> authd::store::WebhookDelivery {
    let found = t.store.webhook_delivery(delivery.endpoint_id, delivery.id);
    found.await.unwrap().expect("the delivery is in the log")
}

/// Deliveries are queued with their event for exactly the enabled endpoints subscribed to its
/// kind (by `domain::webhooks::subscribes`, the rule both backends write in SQL), claimed once
/// under a lease even by claims made at once, claimed again when a retry is due, requeued only
/// when dead, purged once delivered, and deleted with their endpoint.
async fn webhook_deliveries_follow_their_event_and_are_claimed_once(backend: Backend) {
    use authd::domain::webhooks::subscribes;
    use authd::store::{
        DeliveryOutcome, DeliveryPage, EndpointSource, NewEvent, NewWebhookEndpoint, PurgeBatch,
        PurgeTarget, WebhookAttempt,
    };

    let t = open(backend).await;
    let endpoint = |events: &[&str], source| NewWebhookEndpoint {
        id: Uuid::new_v4(),
        url: format!("https://hooks.example.com/{}", Uuid::new_v4()),
        description: None,
        sealed_secret: vec![1, 2, 3],
        events: events.iter().map(|e| e.to_string()).collect(),
        source,
    };
    let signups = endpoint(&["signup"], EndpointSource::Api);
    let everything = endpoint(&["*"], EndpointSource::Api);
    let failures = endpoint(&["login_failed"], EndpointSource::Api);
    for new in [&signups, &everything, &failures] {
        let stored = t.store.create_webhook_endpoint(new).await.unwrap();
        assert_eq!((stored.id, stored.enabled), (new.id, true));
        assert_eq!(stored.events, new.events);
    }
    // A configured endpoint that has left the configuration: disabled, kept.
    let gone = endpoint(&["*"], EndpointSource::Config);
    t.store
        .sync_configured_endpoints(std::slice::from_ref(&gone))
        .await
        .unwrap();
    t.store.sync_configured_endpoints(&[]).await.unwrap();
    let endpoints = t.store.webhook_endpoints().await.unwrap();
    assert_eq!(endpoints.len(), 4);
    let stored_gone = t.store.webhook_endpoint(gone.id).await.unwrap().unwrap();
    assert_eq!(
        (stored_gone.enabled, stored_gone.source),
        (false, EndpointSource::Config)
    );

    let event = |kind: &'static str| NewEvent {
        id: Uuid::new_v4(),
        user_id: None,
        actor_id: None,
        kind,
        ip: None,
        user_agent: None,
        request_id: None,
        details: "{}".into(),
        webhook_message: Some(format!(r#"{{"type":"{kind}"}}"#)),
    };
    for kind in ["signup", "login_failed", "logout"] {
        let expected = endpoints
            .iter()
            .filter(|e| e.enabled && subscribes(&e.events, kind))
            .count();
        let queued = t.store.record_event(&event(kind)).await.unwrap();
        assert_eq!(queued, expected as u64, "{kind}");
    }
    let quiet = NewEvent {
        webhook_message: None,
        ..event("signup")
    };
    assert_eq!(t.store.record_event(&quiet).await.unwrap(), 0);
    assert_eq!(t.store.webhook_queue_depth().await.unwrap(), 5);

    // Two claims at once never share a delivery; a claimed one is leased.
    let (a, b) = tokio::join!(
        t.store.claim_due_webhooks(3, 60),
        t.store.claim_due_webhooks(3, 60)
    );
    let claimed: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let ids: std::collections::BTreeSet<Uuid> = claimed.iter().map(|c| c.id).collect();
    assert_eq!((claimed.len(), ids.len()), (5, 5));
    assert!(claimed
        .iter()
        .all(|c| c.attempts == 1 && c.sealed_secret == [1, 2, 3]));
    assert!(t.store.claim_due_webhooks(10, 60).await.unwrap().is_empty());

    let attempt = |outcome| WebhookAttempt {
        outcome,
        status: Some(503),
    };
    let (retried, dead, sent) = (&claimed[0], &claimed[1], &claimed[2]);
    let retry = DeliveryOutcome::Retry {
        after_seconds: 0,
        error: "busy".into(),
    };
    t.store
        .record_webhook_attempt(retried.id, &attempt(retry))
        .await
        .unwrap();
    let again = t.store.claim_due_webhooks(10, 60).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (retried.id, 2));
    assert_eq!(again[0].payload, retried.payload);
    assert_eq!(again[0].event_id, retried.event_id);

    let died = DeliveryOutcome::Dead {
        error: "gone".into(),
    };
    t.store
        .record_webhook_attempt(dead.id, &attempt(died))
        .await
        .unwrap();
    let logged = logged_delivery(&t, dead).await;
    assert_eq!(logged.status, "dead");
    assert_eq!(logged.last_status, Some(503));
    assert_eq!(logged.last_error.as_deref(), Some("gone"));
    assert!(!t
        .store
        .requeue_webhook_delivery(Uuid::new_v4(), dead.id)
        .await
        .unwrap());
    assert!(t
        .store
        .requeue_webhook_delivery(dead.endpoint_id, dead.id)
        .await
        .unwrap());
    assert!(!t
        .store
        .requeue_webhook_delivery(dead.endpoint_id, dead.id)
        .await
        .unwrap());
    let requeued = t.store.claim_due_webhooks(10, 60).await.unwrap();
    assert_eq!((requeued[0].id, requeued[0].attempts), (dead.id, 1));

    t.store
        .record_webhook_attempt(
            sent.id,
            &WebhookAttempt {
                outcome: DeliveryOutcome::Sent,
                status: Some(204),
            },
        )
        .await
        .unwrap();
    let logged = logged_delivery(&t, sent).await;
    assert_eq!(logged.status, "sent");
    assert_eq!(logged.last_status, Some(204));
    assert!(logged.delivered_at.is_some() && logged.last_error.is_none());

    let page = |endpoint_id| DeliveryPage {
        endpoint_id,
        before: None,
        limit: 10,
    };
    let log = t
        .store
        .webhook_deliveries(&page(everything.id))
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .map(|d| d.event_kind.as_str())
            .collect::<Vec<_>>(),
        ["logout", "login_failed", "signup"],
        "newest first"
    );

    let purge = PurgeBatch {
        target: PurgeTarget::DeliveredWebhooks,
        retention_seconds: 0,
        limit: 100,
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(t.store.purge(purge).await.unwrap(), 1, "the sent one");
    assert!(t
        .store
        .webhook_delivery(sent.endpoint_id, sent.id)
        .await
        .unwrap()
        .is_none());

    assert!(t
        .store
        .delete_webhook_endpoint(everything.id)
        .await
        .unwrap());
    assert!(!t
        .store
        .delete_webhook_endpoint(everything.id)
        .await
        .unwrap());
    assert!(t
        .store
        .webhook_deliveries(&page(everything.id))
        .await
        .unwrap()
        .is_empty());
}

crate::backend_tests!(
    what_a_session_adds_is_written_only_while_it_lives,
    a_passkey_added_while_the_owner_recovers_does_not_outlive_the_recovery,
    a_session_starts_only_under_the_epoch_its_proof_was_read_at,
    no_session_starts_for_a_locked_or_deleted_user,
    an_ending_and_a_session_asked_for_at_once_leave_no_session_from_before,
    two_admins_demoted_at_once_leave_one_admin,
    a_passkey_use_is_recorded_over_the_credential_it_was_checked_against,
    webhook_deliveries_follow_their_event_and_are_claimed_once,
    a_second_totp_enrolment_cannot_be_confirmed_beside_an_active_one,
    the_janitor_purges_what_has_outlived_its_use_in_batches,
    users_are_found_by_email_whatever_its_case,
    an_email_holds_one_live_account,
    a_current_token_rotates_once_and_its_replays_follow_the_rules,
    a_replay_after_the_grace_window_is_reuse,
    expired_unknown_and_barred_tokens_do_not_rotate,
    concurrent_rotations_of_one_token_make_one_child,
    a_session_past_its_absolute_lifetime_does_not_rotate,
    sessions_are_revoked_by_token_by_id_and_all_at_once,
    the_store_answers_a_ping,
);
