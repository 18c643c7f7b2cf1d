//! How a session was authenticated, and what that is worth: the `amr` values (RFC 8176) and the
//! authenticator assurance level (NIST SP 800-63B) its access tokens carry, and the step-up rule
//! for sensitive actions. Pure rules, no I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::user::Role;

/// One way a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthMethod {
    /// The account's password (something you know).
    Password,
    /// A TOTP code (something you have: the device holding the secret).
    Totp,
    /// A single-use recovery code (a look-up secret: something you have).
    RecoveryCode,
    /// A passkey bound to one device (not backup-eligible), with user verification: a key the
    /// user has and a PIN or biometric they give, so a factor of two kinds on its own.
    DevicePasskey,
    /// A passkey that syncs between devices (backup-eligible), with user verification.
    SyncedPasskey,
    /// A link mailed to the account's address. Proves control of the mailbox, never counted
    /// as a second factor: whoever resets a password through the mailbox holds both.
    EmailLink,
    /// A sign-in at another provider (OAuth 2.0 / OpenID Connect): one factor, whatever the
    /// provider did, since authd cannot see it.
    Federated,
}

/// What kind of proof a method is; the assurance level counts distinct kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FactorClass {
    Knowledge,
    Possession,
    /// Possession and user verification in one (a passkey): level 2 on its own.
    Verified,
    /// Never combines with another class into multi-factor.
    Mailbox,
    /// The account at another provider: a factor of its own kind, which a TOTP code or a passkey
    /// completes to level 2.
    Federation,
}

impl AuthMethod {
    /// The name kept in the store (and in audit details).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Totp => "totp",
            AuthMethod::RecoveryCode => "recovery_code",
            AuthMethod::DevicePasskey => "passkey",
            AuthMethod::SyncedPasskey => "synced_passkey",
            AuthMethod::EmailLink => "email_link",
            AuthMethod::Federated => "federated",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            AuthMethod::Password,
            AuthMethod::Totp,
            AuthMethod::RecoveryCode,
            AuthMethod::DevicePasskey,
            AuthMethod::SyncedPasskey,
            AuthMethod::EmailLink,
            AuthMethod::Federated,
        ]
        .into_iter()
        .find(|m| m.as_str() == stored)
    }

    /// The RFC 8176 `amr` value. A recovery code is a one-time password in the RFC's sense.
    fn amr(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Totp | AuthMethod::RecoveryCode => "otp",
            AuthMethod::DevicePasskey => "hwk",
            AuthMethod::SyncedPasskey => "swk",
            AuthMethod::EmailLink => "email",
            // What Microsoft's identity platform says for a federated sign-in; RFC 8176 has none.
            AuthMethod::Federated => "fed",
        }
    }

    fn class(self) -> FactorClass {
        match self {
            AuthMethod::Password => FactorClass::Knowledge,
            AuthMethod::Totp | AuthMethod::RecoveryCode => FactorClass::Possession,
            AuthMethod::DevicePasskey | AuthMethod::SyncedPasskey => FactorClass::Verified,
            AuthMethod::EmailLink => FactorClass::Mailbox,
            AuthMethod::Federated => FactorClass::Federation,
        }
    }
}

/// The methods a session was authenticated with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthMethods(BTreeSet<AuthMethod>);

impl AuthMethods {
    pub fn of(methods: &[AuthMethod]) -> Self {
        AuthMethods(methods.iter().copied().collect())
    }

    pub fn password() -> Self {
        AuthMethods::of(&[AuthMethod::Password])
    }

    /// Reads the stored form; unknown names are dropped (they can only lower the level).
    pub fn parse(stored: &str) -> Self {
        AuthMethods(stored.split(' ').filter_map(AuthMethod::parse).collect())
    }

    /// The stored form: names separated by one space, in a fixed order.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn with(mut self, method: AuthMethod) -> Self {
        self.0.insert(method);
        self
    }

    pub fn contains(&self, method: AuthMethod) -> bool {
        self.0.contains(&method)
    }

    /// 2 when two different kinds of proof were given (a mailbox never counts), else 1.
    pub fn aal(&self) -> u8 {
        let classes: BTreeSet<FactorClass> = self
            .0
            .iter()
            .map(|m| m.class())
            .filter(|c| *c != FactorClass::Mailbox)
            .collect();
        if classes.len() >= 2 || classes.contains(&FactorClass::Verified) {
            2
        } else {
            1
        }
    }

    /// The `amr` claim: each method's RFC 8176 value once, plus `mfa` at level 2.
    pub fn amr(&self) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for method in &self.0 {
            let value = method.amr().to_string();
            if !values.contains(&value) {
                values.push(value);
            }
        }
        if self.aal() >= 2 {
            values.push("mfa".to_string());
        }
        values
    }
}

/// When a sensitive action may go ahead: the session proved itself within `window_seconds`, and
/// at level 2 when the account has a second factor (a session from before the enrolment, or one
/// that never gave the second factor, must step up first).
#[derive(Debug, Clone, Copy)]
pub struct StepUpRule {
    pub window_seconds: u64,
}

impl StepUpRule {
    pub fn allows(
        &self,
        authenticated_at: i64,
        aal: u8,
        account_has_second_factor: bool,
        now: i64,
    ) -> bool {
        let age = now.saturating_sub(authenticated_at);
        let recent = (0..=i64::try_from(self.window_seconds).unwrap_or(i64::MAX)).contains(&age);
        recent && (aal >= 2 || !account_has_second_factor)
    }
}

/// Whose accounts must have a second factor (`auth.mfa.required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaRequirement {
    /// Users choose.
    #[default]
    Optional,
    /// Admin accounts must have one.
    Admins,
    /// Every account must have one.
    Everyone,
}

impl MfaRequirement {
    pub fn covers(self, role: Role) -> bool {
        match self {
            MfaRequirement::Optional => false,
            MfaRequirement::Admins => role == Role::Admin,
            MfaRequirement::Everyone => true,
        }
    }

    /// A session of a covered account below level 2 may only set up (or give) a second factor:
    /// an account without one yet is not locked out, and one signed in before the requirement or
    /// before its promotion to admin is held to it from its next request, not its next login.
    pub fn restricts(self, role: Role, aal: u8) -> bool {
        self.covers(role) && aal < 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMethod::*;

    #[test]
    fn the_requirement_holds_covered_sessions_below_level_two() {
        use MfaRequirement::*;
        let cases = [
            (Optional, Role::Admin, 1, false),
            (Optional, Role::User, 1, false),
            (Admins, Role::Admin, 1, true),
            (Admins, Role::Admin, 2, false),
            (Admins, Role::User, 1, false),
            (Everyone, Role::User, 1, true),
            (Everyone, Role::User, 2, false),
            (Everyone, Role::Admin, 0, true),
        ];
        for (requirement, role, aal, restricted) in cases {
            assert_eq!(
                requirement.restricts(role, aal),
                restricted,
                "{requirement:?} {role:?} aal {aal}"
            );
        }
    }

    #[test]
    fn levels_count_distinct_kinds_and_a_mailbox_never_counts() {
        let cases: [(&[AuthMethod], u8, &[&str]); 9] = [
            (&[Password], 1, &["pwd"]),
            (&[Password, Totp], 2, &["pwd", "otp", "mfa"]),
            (&[Password, RecoveryCode], 2, &["pwd", "otp", "mfa"]),
            (&[Totp, RecoveryCode], 1, &["otp"]),
            (&[Password, EmailLink], 1, &["pwd", "email"]),
            (&[EmailLink, Totp], 1, &["otp", "email"]),
            (&[DevicePasskey], 2, &["hwk", "mfa"]),
            (&[SyncedPasskey], 2, &["swk", "mfa"]),
            (&[Password, DevicePasskey], 2, &["pwd", "hwk", "mfa"]),
        ];
        for (methods, aal, amr) in cases {
            let methods = AuthMethods::of(methods);
            assert_eq!(methods.aal(), aal, "{methods:?}");
            assert_eq!(methods.amr(), amr, "{methods:?}");
        }
    }

    #[test]
    fn the_stored_form_reads_back_and_ignores_what_it_does_not_know() {
        let methods = AuthMethods::of(&[Totp, Password]);
        assert_eq!(methods.to_stored(), "pwd totp");
        assert_eq!(AuthMethods::parse(&methods.to_stored()), methods);
        assert_eq!(AuthMethods::parse("pwd webauthn"), AuthMethods::password());
        assert_eq!(AuthMethods::parse("").aal(), 1);
    }

    #[test]
    fn step_up_needs_a_recent_proof_and_level_2_once_a_factor_exists() {
        let rule = StepUpRule {
            window_seconds: 300,
        };
        let now = 10_000;
        assert!(rule.allows(now - 300, 1, false, now));
        assert!(!rule.allows(now - 301, 1, false, now));
        assert!(
            !rule.allows(now - 301, 2, true, now),
            "level 2 is not recent"
        );
        assert!(!rule.allows(now - 10, 1, true, now), "a factor exists");
        assert!(rule.allows(now - 10, 2, true, now));
        assert!(!rule.allows(now + 60, 2, true, now), "from the future");
        assert!(
            !rule.allows(0, 2, true, now),
            "tokens from before assurance"
        );
    }
}
