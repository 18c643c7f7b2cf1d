//! The client's address. The socket's peer address, unless that peer is a configured trusted
//! proxy: then the one forwarding header the proxies are configured to set (`X-Forwarded-For` or
//! `Forwarded`, `http.forwarded_header`) is read from the right, skipping trusted hops, and the
//! first untrusted address is the client. The other header is never read: a proxy rewrites the
//! header it sets and passes the other through, so reading both would let a client choose. A
//! header from an untrusted peer is ignored, so nobody can pick their own rate-limit bucket.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::http::header::{HeaderMap, FORWARDED};
use actix_web::{web, HttpRequest};
use ipnet::IpNet;

use super::AppState;
use crate::config::ForwardedHeader;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::new(Vec::new(), ForwardedHeader::XForwardedFor)
    }
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>, header: ForwardedHeader) -> Self {
        TrustedProxies { nets, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` carrying `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers, self.header);
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // An unreadable hop ends the chain: what lies left of it cannot be vouched for.
                None => break,
            }
        }
        client
    }
}

/// The addresses a request passed through, client first, from the one configured header.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    if header == ForwardedHeader::Forwarded {
        return headers
            .get_all(FORWARDED)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        key.trim().eq_ignore_ascii_case("for").then_some(value)
                    })
                    .and_then(parse_node)
            })
            .collect();
    }
    headers
        .get_all(X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(parse_node)
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`, optionally quoted.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let node = raw.trim().trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')
        .and_then(|(host, _port)| host.parse().ok())
}

/// The client address of a request, by the app's trusted-proxy settings.
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.trusted_proxies.client_ip(peer, req.headers()),
        None => peer,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                actix_web::http::header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        proxies_reading(nets, ForwardedHeader::XForwardedFor)
    }

    fn proxies_reading(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), header)
    }

    /// The client `proxies` see behind `peer` with `headers`, as text.
    fn client(proxies: &TrustedProxies, peer: &str, headers: &HeaderMap) -> String {
        proxies.client_ip(ip(peer), headers).to_string()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(client(&TrustedProxies::default(), "1.2.3.4", &h), "1.2.3.4");
        assert_eq!(client(&proxies(&["10.0.0.0/8"]), "1.2.3.4", &h), "1.2.3.4");
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client forged the leftmost entry; the proxies appended the real ones.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(client(&trusted, "10.0.0.1", &h), "203.0.113.7");
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(client(&trusted, "10.0.0.1", &h), "203.0.113.7");
    }

    #[test]
    fn only_the_configured_header_is_read_and_its_forms_parse() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::17]:4711\";proto=https, for=10.0.0.3",
            ),
            ("x-forwarded-for", "198.51.100.1:8080"),
        ]);
        let forwarded = proxies_reading(&["10.0.0.0/8", "::1/128"], ForwardedHeader::Forwarded);
        assert_eq!(client(&forwarded, "::1", &h), "2001:db8::17");
        // The shipped nginx rewrites X-Forwarded-For and passes a client's Forwarded through:
        // authd reading X-Forwarded-For never sees the forged one.
        let x_forwarded_for = proxies(&["10.0.0.0/8", "::1/128"]);
        assert_eq!(client(&x_forwarded_for, "::1", &h), "198.51.100.1");
        let forged_only = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(
            client(&x_forwarded_for, "10.1.1.1", &forged_only),
            "10.1.1.1"
        );
    }

    #[test]
    fn junk_or_an_all_trusted_chain_stops_at_what_can_be_vouched_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, junk, 10.0.0.5")]);
        assert_eq!(client(&trusted, "10.0.0.1", &h), "10.0.0.5");
        let h = headers(&[("x-forwarded-for", "10.0.0.7")]);
        assert_eq!(client(&trusted, "10.0.0.1", &h), "10.0.0.7");
        assert_eq!(client(&trusted, "10.0.0.1", &HeaderMap::new()), "10.0.0.1");
    }

    /// Property tests: any header bytes parse without a panic, and the answer is always an
    /// address someone vouched for.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// Bytes a header value may hold (visible ASCII, space, tab, obs-text).
        fn header_value() -> impl Strategy<Value = HeaderValue> {
            prop_oneof![
                prop::collection::vec(
                    prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
                    0..200
                ),
                "[0-9a-f:.\\[\\]\", ;=a-zA-Z]{0,120}".prop_map(String::into_bytes),
            ]
            .prop_map(|bytes| HeaderValue::from_bytes(&bytes).expect("allowed bytes"))
        }

        fn address() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<[u8; 4]>().prop_map(IpAddr::from),
                any::<[u8; 16]>().prop_map(IpAddr::from),
                // Some inside the trusted network, so chains of proxies occur.
                any::<[u8; 3]>().prop_map(|o| IpAddr::from([10, o[0], o[1], o[2]])),
            ]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_forwarding_headers_give_the_peer_or_an_address_they_name(
                peer in address(),
                forwarded in prop::collection::vec(header_value(), 0..3),
                x_forwarded_for in prop::collection::vec(header_value(), 0..3),
            ) {
                let mut map = HeaderMap::new();
                for value in &forwarded {
                    map.append(FORWARDED, value.clone());
                }
                for value in &x_forwarded_for {
                    map.append(
                        actix_web::http::header::HeaderName::from_static(X_FORWARDED_FOR),
                        value.clone(),
                    );
                }
                let trusted = proxies(&["10.0.0.0/8"]);
                let client = trusted.client_ip(peer, &map);
                // Nobody trusted, nothing believed.
                prop_assert_eq!(TrustedProxies::default().client_ip(peer, &map), peer);
                if !trusted.trusts(peer) {
                    prop_assert_eq!(client, peer);
                } else {
                    prop_assert!(
                        client == peer
                            || forwarded_hops(&map, ForwardedHeader::XForwardedFor)
                                .contains(&Some(client)),
                        "{client} is neither the peer nor a forwarded hop"
                    );
                }
            }

            #[test]
            fn the_client_is_the_rightmost_untrusted_hop(
                peer in any::<[u8; 3]>().prop_map(|o| IpAddr::from([10, o[0], o[1], o[2]])),
                chain in prop::collection::vec(address(), 1..8),
                spaces in any::<bool>(),
                with_ports in any::<bool>(),
            ) {
                let render = |ip: &IpAddr| match (ip, with_ports) {
                    (IpAddr::V6(v6), true) => format!("[{v6}]:443"),
                    (IpAddr::V4(v4), true) => format!("{v4}:443"),
                    (ip, false) => ip.to_string(),
                };
                let separator = if spaces { ", " } else { "," };
                let value = chain.iter().map(render).collect::<Vec<_>>().join(separator);
                let mut map = HeaderMap::new();
                map.insert(
                    actix_web::http::header::HeaderName::from_static(X_FORWARDED_FOR),
                    HeaderValue::from_str(&value).unwrap(),
                );
                let trusted = proxies(&["10.0.0.0/8"]);
                let expected = chain
                    .iter()
                    .rev()
                    .find(|ip| !trusted.trusts(**ip))
                    .or(chain.first())
                    .copied()
                    .unwrap();
                prop_assert_eq!(trusted.client_ip(peer, &map), expected, "{}", value);
            }
        }
    }
}
