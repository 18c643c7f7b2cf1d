//! The emails authd sends, rendered from the templates in `templates/email/` (plain text and HTML,
//! built into the binary). Values are HTML-escaped in the HTML part.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    VerifyEmail,
    /// The verification of an address a provider's sign-in (`{{provider}}`) gave a new account
    /// without having verified it: the mailbox's owner is told not to confirm unless it was them
    /// (confirming would keep that sign-in as the account's way in).
    VerifyEmailFromProvider,
    ResetPassword,
    Invitation,
    /// Somebody signed up with an address that has an account (sent instead of revealing it).
    AccountExists,
    /// The password was changed or reset (ASVS 2.5.5: tell the owner).
    PasswordChanged,
    /// A second factor was enrolled.
    MfaEnabled,
    /// The second factors were removed, by the owner or an admin.
    MfaDisabled,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRegenerated,
    /// Passwordless sign-in: a link and a code (`{{code}}`).
    EmailLogin,
    /// To a new address: confirm it as the account's.
    ConfirmEmailChange,
    /// To the old address: a change to `{{new_email}}` was asked for.
    EmailChangeRequested,
    /// To the old address: the account's address is now `{{new_email}}`.
    EmailChanged,
    /// A provider's sign-in (`{{provider}}`) was linked to the account.
    IdentityLinked,
}

/// A rendered email, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn templates(kind: MessageKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        MessageKind::VerifyEmail => (
            "Confirm your email address",
            include_str!("../../templates/email/verify.txt"),
            include_str!("../../templates/email/verify.html"),
        ),
        MessageKind::VerifyEmailFromProvider => (
            "Confirm your email address, if this account is yours",
            include_str!("../../templates/email/verify_provider.txt"),
            include_str!("../../templates/email/verify_provider.html"),
        ),
        MessageKind::ResetPassword => (
            "Reset your password",
            include_str!("../../templates/email/reset.txt"),
            include_str!("../../templates/email/reset.html"),
        ),
        MessageKind::Invitation => (
            "You are invited",
            include_str!("../../templates/email/invitation.txt"),
            include_str!("../../templates/email/invitation.html"),
        ),
        MessageKind::AccountExists => (
            "Somebody tried to use your address for an account",
            include_str!("../../templates/email/account_exists.txt"),
            include_str!("../../templates/email/account_exists.html"),
        ),
        MessageKind::PasswordChanged => (
            "Your password was changed",
            include_str!("../../templates/email/password_changed.txt"),
            include_str!("../../templates/email/password_changed.html"),
        ),
        MessageKind::MfaEnabled => (
            "Two-step verification is on",
            include_str!("../../templates/email/mfa_enabled.txt"),
            include_str!("../../templates/email/mfa_enabled.html"),
        ),
        MessageKind::MfaDisabled => (
            "Two-step verification was turned off",
            include_str!("../../templates/email/mfa_disabled.txt"),
            include_str!("../../templates/email/mfa_disabled.html"),
        ),
        MessageKind::RecoveryCodeUsed => (
            "A recovery code was used",
            include_str!("../../templates/email/recovery_code_used.txt"),
            include_str!("../../templates/email/recovery_code_used.html"),
        ),
        MessageKind::RecoveryCodesRegenerated => (
            "New recovery codes",
            include_str!("../../templates/email/recovery_codes_regenerated.txt"),
            include_str!("../../templates/email/recovery_codes_regenerated.html"),
        ),
        MessageKind::EmailLogin => (
            "Your sign-in link",
            include_str!("../../templates/email/email_login.txt"),
            include_str!("../../templates/email/email_login.html"),
        ),
        MessageKind::ConfirmEmailChange => (
            "Confirm your new address",
            include_str!("../../templates/email/email_change.txt"),
            include_str!("../../templates/email/email_change.html"),
        ),
        MessageKind::EmailChangeRequested => (
            "A change of your address was asked for",
            include_str!("../../templates/email/email_change_requested.txt"),
            include_str!("../../templates/email/email_change_requested.html"),
        ),
        MessageKind::EmailChanged => (
            "Your address was changed",
            include_str!("../../templates/email/email_changed.txt"),
            include_str!("../../templates/email/email_changed.html"),
        ),
        MessageKind::IdentityLinked => (
            "A new way to sign in was added",
            include_str!("../../templates/email/identity_linked.txt"),
            include_str!("../../templates/email/identity_linked.html"),
        ),
    }
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "1 hour", "24 hours", "7 days".
pub fn human_duration(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    match hours {
        0 => format!("{} minutes", (d.as_secs() / 60).max(1)),
        1 => "1 hour".into(),
        h if h % 24 == 0 && h > 24 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

/// What a mail says besides its template: the link, and the values of its own placeholders.
#[derive(Debug, Clone, Copy)]
pub struct MessageValues<'a> {
    pub app_name: &'a str,
    pub name: Option<&'a str>,
    pub link: &'a str,
    pub expires_in: Duration,
    /// `{{code}}` (a sign-in code).
    pub code: &'a str,
    /// What a notice is about: `{{new_email}}` of an address change, `{{provider}}` of a
    /// provider's sign-in linked to the account.
    pub about: &'a str,
}

/// The mail of `kind` with `values` filled in (HTML-escaped in the HTML part).
pub fn render_with(kind: MessageKind, values: &MessageValues<'_>) -> Message {
    let (subject, text, html) = templates(kind);
    let (app_name, name) = (values.app_name, values.name.unwrap_or("there"));
    let expires = human_duration(values.expires_in);
    let fill = |template: &str, escape: fn(&str) -> String| {
        template
            .replace("{{name}}", &escape(name))
            .replace("{{app_name}}", &escape(app_name))
            .replace("{{link}}", &escape(values.link))
            .replace("{{expires}}", &escape(&expires))
            .replace("{{code}}", &escape(values.code))
            .replace("{{new_email}}", &escape(values.about))
            .replace("{{provider}}", &escape(values.about))
    };
    Message {
        subject: format!("{app_name}: {subject}"),
        text: fill(text, str::to_string),
        html: fill(html, escape_html),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_carry_the_link_and_html_is_escaped() {
        let values = MessageValues {
            app_name: "authd",
            name: Some("<Ada>"),
            link: "https://app.example.com/reset-password?token=abc&x=1",
            expires_in: Duration::from_secs(3600),
            code: "",
            about: "",
        };
        let message = render_with(MessageKind::ResetPassword, &values);
        assert_eq!(message.subject, "authd: Reset your password");
        assert!(message
            .text
            .contains("https://app.example.com/reset-password?token=abc&x=1"));
        assert!(message.text.contains("Hello <Ada>,"));
        assert!(message
            .html
            .contains("href=\"https://app.example.com/reset-password?token=abc&amp;x=1\""));
        assert!(message.html.contains("&lt;Ada&gt;"));
        assert!(message.text.contains("expires in 1 hour"));
        assert!(!message.text.contains("{{"));
        assert!(!message.html.contains("{{"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(86400)), "24 hours");
        assert_eq!(human_duration(Duration::from_secs(7 * 86400)), "7 days");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
    }
}
