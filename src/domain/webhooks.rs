//! Rules of webhooks (Standard Webhooks, <https://www.standardwebhooks.com>): the signing secret
//! and the signature of a message, which kinds of events an endpoint receives, the message's JSON,
//! and which targets authd may call (no plain HTTP, no private addresses, unless allowed).

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

/// What every secret starts with, as Standard Webhooks writes them.
pub const SECRET_PREFIX: &str = "whsec_";

/// The subscription to every kind of event.
pub const ALL_EVENTS: &str = "*";

/// Bytes of a secret authd generates.
const GENERATED_SECRET_BYTES: usize = 32;

/// The range of key lengths accepted from the configuration (Standard Webhooks: 24 to 64).
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// An endpoint's signing key: the bytes behind `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl SigningSecret {
    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        SigningSecret(key)
    }

    /// `whsec_` + the standard base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or("must start with whsec_")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "must be whsec_ followed by standard base64")?;
        if !SECRET_BYTES.contains(&key.len()) {
            return Err("must encode 24 to 64 bytes");
        }
        Ok(SigningSecret(key))
    }

    /// As shown to the operator, once, and as stored (sealed).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `webhook-signature` value of a message: `v1,` + base64 of
    /// HMAC-SHA256(key, `{id}.{timestamp}.{body}`).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Whether an endpoint subscribed to `events` receives an event of `kind`: it lists the kind, or
/// `*`. Both backends queue deliveries in SQL by this rule (the store conformance suite checks
/// they agree with it).
pub fn subscribes(events: &[String], kind: &str) -> bool {
    events.iter().any(|e| e == kind || e == ALL_EVENTS)
}

/// The body of a webhook message: the same at every attempt of every endpoint it goes to.
#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    /// The event's id, which is also the message's (`webhook-id`): stable across retries, so a
    /// receiver drops a duplicate of an at-least-once delivery.
    pub id: Uuid,
    /// The audit event's kind, e.g. `login_failed`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// When the event happened, RFC 3339 UTC.
    pub timestamp: String,
    pub data: MessageData<'a>,
}

/// What the event says: who, from where, and the audit log's details. Never a secret or a token:
/// the same facts the user reads in their own audit log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageData<'a> {
    pub user_id: Option<Uuid>,
    /// The admin who acted, for an admin's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    pub details: &'a serde_json::Value,
}

impl Message<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message serialises")
    }
}

/// A target URL as authd shows it outside the endpoint list (audit events, the events sent to
/// other receivers, `config check`): its origin only. Receivers often take their secret in the
/// path (Slack's `/services/T../B../<secret>`, Discord's `/api/webhooks/<id>/<token>`) or the
/// query string, so whatever follows the host is shown as `/***` (the event's `endpointId` tells
/// endpoints apart). A URL that does not parse is hidden whole.
pub fn shown_url(raw: &str) -> String {
    const HIDDEN: &str = "***";
    let Ok(url) = Url::parse(raw.trim()) else {
        return HIDDEN.to_string();
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Refused as a target; hidden anyway, should one ever reach here.
        return HIDDEN.to_string();
    }
    let origin = url.origin().ascii_serialization();
    let bare = url.path() == "/" && url.query().is_none_or(str::is_empty);
    if bare {
        format!("{origin}/")
    } else {
        format!("{origin}/{HIDDEN}")
    }
}

/// Which targets authd may call: `webhooks.allow_insecure_targets` and
/// `webhooks.allow_private_targets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Plain `http://` URLs.
    pub allow_insecure: bool,
    /// Loopback, private, link-local and other non-public addresses.
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Whether authd may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }

    /// The URL if it may be a webhook target as written: http(s) (https only unless insecure
    /// targets are allowed), a host, no credentials, no fragment; an IP address must be one the
    /// policy allows. A host name is checked again on every connection, address by address.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            "http" => {
                return Err("must be https (webhooks.allow_insecure_targets is off)".into());
            }
            _ => return Err("must be an https URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        let ip = match url.host() {
            None => return Err("must name a host".into()),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = ip.filter(|ip| !self.allows(*ip)) {
            return Err(format!(
                "{ip} is not a public address (webhooks.allow_private_targets is off)"
            ));
        }
        Ok(url)
    }

    /// Whether a target named `host` may be called, given every address it resolves to. All of
    /// them must be allowed: whoever connects next (an egress proxy resolving the name again)
    /// may pick any one, so a name with a private address among public ones is refused.
    pub fn check_addresses(&self, host: &str, addresses: &[IpAddr]) -> Result<(), String> {
        let refused = addresses.iter().find(|ip| !self.allows(**ip));
        match refused {
            _ if addresses.is_empty() => Err(format!("{host} resolves to no address")),
            Some(_) if addresses.iter().all(|ip| !self.allows(*ip)) => Err(format!(
                "{host} resolves to no public address (webhooks.allow_private_targets is off)"
            )),
            Some(ip) => Err(format!(
                "{host} resolves to {ip} too, not a public address (webhooks.allow_private_targets is off)"
            )),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, broadcast, multicast, documentation or benchmarking,
/// nor an IPv6 form of one of those (IPv4-mapped, NAT64). IPv6 is an allowlist: global unicast
/// (2000::/3) less the special-purpose blocks IANA does not mark globally reachable.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && ip.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let segments = ip.segments();
            // The well-known NAT64 prefix (64:ff9b::/96) reaches the embedded IPv4 address; on a
            // NAT64 network it is the only way to IPv4-only receivers. The local-use prefix
            // (64:ff9b:1::/48) maps however the operator chose, so it stays outside the allowlist.
            if let [0x64, 0xff9b, 0, 0, 0, 0, high, low] = segments {
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(
                    (high >> 8) as u8,
                    high as u8,
                    (low >> 8) as u8,
                    low as u8,
                )));
            }
            // An allowlist, so that a block IANA sets apart later, or one overlooked here (SIIT,
            // IPv4-compatible, discard-only, SRv6, ...), is refused rather than reached.
            (segments[0] & 0xe000) == 0x2000
                && !matches!(
                    segments,
                    // IETF protocol assignments (2001::/23: Teredo, benchmarking, ORCHID, ...);
                    // the few globally reachable ones are anycast services, not receivers.
                    [0x2001, 0..0x0200, ..]
                    // Documentation.
                    | [0x2001, 0x0db8, ..]
                    | [0x3fff, 0..0x1000, ..]
                    // 6to4 reaches an IPv4 address through whichever relay answers the anycast.
                    | [0x2002, ..]
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_keeps_its_origin_only() {
        let cases = [
            ("https://hooks.example.com/", "https://hooks.example.com/"),
            ("https://hooks.example.com", "https://hooks.example.com/"),
            (
                "https://hooks.example.com/in",
                "https://hooks.example.com/***",
            ),
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/***",
            ),
            (
                "https://hooks.example.com:8443/?token=s3cret",
                "https://hooks.example.com:8443/***",
            ),
            ("https://user:pw@hooks.example.com/", "***"),
            ("not a url ?token=s3cret", "***"),
        ];
        for (raw, shown) in cases {
            assert_eq!(shown_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn a_name_is_a_target_only_when_every_address_is_allowed() {
        let strict = TargetPolicy::default();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let loopback: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            strict.check_addresses("hooks.example.com", &[public]),
            Ok(())
        );
        let mixed = strict.check_addresses("mixed.example.com", &[public, metadata]);
        assert!(mixed.unwrap_err().contains("169.254.169.254 too"));
        let private = strict.check_addresses("localhost", &[loopback]);
        assert!(private.unwrap_err().contains("no public address"));
        assert!(strict.check_addresses("void.example.com", &[]).is_err());
        let open = TargetPolicy {
            allow_private: true,
            ..strict
        };
        assert_eq!(
            open.check_addresses("localhost", &[loopback, metadata]),
            Ok(())
        );
    }

    #[test]
    fn the_signature_matches_an_independent_computation() {
        // The example of the Standard Webhooks specification, recomputed with Python's hmac:
        //   key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        //   msg = b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
        //   "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = SigningSecret::generate();
        let text = secret.to_text();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        assert_ne!(SigningSecret::generate(), secret);
        assert!(!format!("{secret:?}").contains(&text[6..]));
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(SigningSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_endpoint_receives_the_kinds_it_lists_or_every_kind() {
        let listed = vec!["signup".to_string(), "login_failed".to_string()];
        assert!(subscribes(&listed, "signup"));
        assert!(!subscribes(&listed, "login_succeeded"));
        assert!(subscribes(&["*".to_string()], "anything"));
        assert!(!subscribes(&[], "signup"));
    }

    #[test]
    fn the_message_carries_the_event_and_leaves_out_what_is_unknown() {
        let id = Uuid::new_v4();
        let details = serde_json::json!({ "reason": "x" });
        let message = Message {
            id,
            kind: "login_failed",
            timestamp: "2026-01-01T00:00:00.000000Z".into(),
            data: MessageData {
                user_id: None,
                actor_id: None,
                ip: Some("203.0.113.9"),
                user_agent: None,
                request_id: Some("r-1"),
                details: &details,
            },
        };
        let value: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "id": id,
                "type": "login_failed",
                "timestamp": "2026-01-01T00:00:00.000000Z",
                "data": {
                    "userId": null,
                    "ip": "203.0.113.9",
                    "requestId": "r-1",
                    "details": { "reason": "x" }
                }
            })
        );
    }

    #[test]
    fn only_public_addresses_are_targets_unless_private_ones_are_allowed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            // Embedded or translated IPv4, and special-purpose blocks outside 2000::/3.
            "::ffff:0:127.0.0.1",
            "::1.1.1.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::7f00:1",
            "64:ff9b:1::808:808",
            "100::1",
            "5f00::1",
            "fec0::1",
            "ff02::1",
            // Special-purpose blocks inside it: Teredo and the rest of 2001::/23, documentation,
            // 6to4 whatever IPv4 address it embeds.
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:1ff:ffff::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "3fff:fff:ffff::1",
            "2002:101:101::",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private}");
            assert!(!TargetPolicy::default().allows(ip), "{private}");
            let allowed = TargetPolicy {
                allow_private: true,
                ..TargetPolicy::default()
            };
            assert!(allowed.allows(ip), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            // Just past 2001::/23, 2001:db8::/32 and 3fff::/20; AS112 (globally reachable);
            // NAT64 to a public IPv4 address.
            "2001:200::1",
            "2001:4860:4860::8888",
            "2001:db9::1",
            "3fff:1000::1",
            "2620:4f:8000::1",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn target_urls_must_be_https_to_a_public_host_unless_allowed() {
        let strict = TargetPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/authd").is_ok());
        assert!(strict.check_url("https://93.184.216.34/x").is_ok());
        for (bad, why) in [
            ("http://hooks.example.com/", "https"),
            ("ftp://hooks.example.com/", "https"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("https://hooks.example.com/#x", "fragment"),
            ("https://127.0.0.1/", "public"),
            ("https://[::1]:8443/", "public"),
            ("https://169.254.169.254/latest/meta-data", "public"),
            ("not a url", "URL"),
        ] {
            let error = strict.check_url(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        let open = TargetPolicy {
            allow_insecure: true,
            allow_private: true,
        };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
    }
}
