//! Is a new password among those known from breaches? (NIST SP 800-63B §5.1.1.2.) A local list
//! is looked at first; then the range API of Have I Been Pwned (or a mirror) with k-anonymity:
//! only the first five hex digits of the password's SHA-1 leave authd, and the answer is asked
//! padded (`Add-Padding`), so its size says nothing either. When the API cannot be reached, the
//! configured fallback decides (fail open by default: logged and counted).

use std::collections::HashSet;
use std::time::Duration;

use openidconnect::reqwest;
use sha1::{Digest, Sha1};

use crate::config::{BreachFallback, BreachedPasswordSettings};

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreachVerdict {
    /// Not known from any breach (or checks are off).
    Clean,
    /// Seen in a breach: not to be used.
    Breached,
    /// The range API could not answer, and the fallback refuses.
    Unknown,
}

pub struct BreachChecker {
    settings: BreachedPasswordSettings,
    http: reqwest::Client,
    /// SHA-1 digests from `offline_list`.
    offline: HashSet<[u8; 20]>,
}

impl BreachChecker {
    pub fn new(settings: &BreachedPasswordSettings) -> Result<Self, String> {
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent("authd")
            .build()
            .map_err(|e| format!("the HTTP client for breach checks: {e}"))?;
        let offline = match settings.offline_list.trim() {
            "" => HashSet::new(),
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("auth.breached_passwords.offline_list {path:?}: {e}"))?;
                parse_list(&text).map_err(|line| {
                    format!("auth.breached_passwords.offline_list line {line}: not a SHA-1 in hex")
                })?
            }
        };
        Ok(BreachChecker {
            settings: settings.clone(),
            http,
            offline,
        })
    }

    /// Whether `password` (as it will be hashed: NFKC) is known from a breach.
    pub async fn check(&self, password: &str) -> BreachVerdict {
        if !self.settings.enabled {
            return BreachVerdict::Clean;
        }
        let digest: [u8; 20] = Sha1::digest(password.as_bytes()).into();
        if self.offline.contains(&digest) {
            crate::metrics::breach_check("breached");
            return BreachVerdict::Breached;
        }
        let hex = hex_upper(&digest);
        let (prefix, suffix) = hex.split_at(5);
        match self.range(prefix).await {
            Ok(body) if in_range(&body, suffix) => {
                crate::metrics::breach_check("breached");
                BreachVerdict::Breached
            }
            Ok(_) => {
                crate::metrics::breach_check("clean");
                BreachVerdict::Clean
            }
            Err(e) => {
                crate::metrics::breach_check("unavailable");
                tracing::warn!(error = %e, fallback = ?self.settings.on_unavailable, "the breached-password range API is unavailable");
                match self.settings.on_unavailable {
                    BreachFallback::Allow => BreachVerdict::Clean,
                    BreachFallback::Refuse => BreachVerdict::Unknown,
                }
            }
        }
    }

    /// The range of `prefix`. Errors leave the URL out: its last five characters are the
    /// password's SHA-1 prefix, which a log line beside the user's id must not carry.
    async fn range(&self, prefix: &str) -> Result<String, String> {
        let url = format!("{}{prefix}", self.settings.range_url);
        let unreachable = |e: reqwest::Error| e.without_url().to_string();
        let response = self
            .http
            .get(&url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(format!("the range API answered {}", response.status()));
        }
        response.text().await.map_err(unreachable)
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Whether a range answer (`SUFFIX:COUNT` lines; padding lines count 0) holds `suffix`.
fn in_range(body: &str, suffix: &str) -> bool {
    body.lines().any(|line| {
        let (found, count) = line.trim().split_once(':').unwrap_or((line.trim(), "1"));
        found.eq_ignore_ascii_case(suffix) && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
    })
}

/// The digests of a local list; on a bad line, its number.
fn parse_list(text: &str) -> Result<HashSet<[u8; 20]>, usize> {
    let mut digests = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let hex = line.split(':').next().unwrap_or("").trim();
        if hex.is_empty() {
            continue;
        }
        let mut digest = [0u8; 20];
        if hex.len() != 40 {
            return Err(number + 1);
        }
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| number + 1)?;
        }
        digests.insert(digest);
    }
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8.
    const PASSWORD_SUFFIX: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

    #[test]
    fn a_range_answer_is_read_with_its_padding() {
        let body = format!("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{PASSWORD_SUFFIX}:9659365\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0");
        assert!(in_range(&body, PASSWORD_SUFFIX));
        assert!(in_range(&body, &PASSWORD_SUFFIX.to_lowercase()));
        // A padding line (count 0) is no breach.
        assert!(!in_range(&body, "00D4F6E8FA6EECAD2A3AA415EEC418D38EC"));
        assert!(!in_range(&body, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"));
    }

    #[test]
    fn only_the_first_five_hex_digits_would_leave() {
        let digest: [u8; 20] = Sha1::digest(b"password").into();
        let hex = hex_upper(&digest);
        assert_eq!(&hex[..5], "5BAA6");
        assert_eq!(&hex[5..], PASSWORD_SUFFIX);
    }

    #[test]
    fn a_local_list_takes_hashes_with_or_without_counts() {
        let list = parse_list("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n\n7c4a8d09ca3762af61e59520943dc26494f8941b\n").unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&<[u8; 20]>::from(Sha1::digest(b"password"))));
        assert!(list.contains(&<[u8; 20]>::from(Sha1::digest(b"123456"))));
        assert_eq!(parse_list("not-a-hash\n"), Err(1));
    }
}
