//! Where load may go: loopback only (127.0.0.0/8, ::1, localhost). Anything else is refused before
//! a single request is made.

use std::net::IpAddr;

use url::{Host, Url};

/// Parses `host` (e.g. `http://127.0.0.1:18080`) and accepts it only if it names this machine's
/// loopback interface over plain HTTP(S). Answers the URL without a trailing slash.
pub fn loopback_base_url(host: &str) -> Result<String, String> {
    let url = Url::parse(host).map_err(|e| format!("--host {host:?}: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("--host {host:?}: only http:// or https:// URLs"));
    }
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    if !loopback {
        return Err(format!(
            "--host {host:?}: load tests target loopback only (127.0.0.0/8, ::1 or localhost)"
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!(
            "--host {host:?}: give the origin only; authd's base path is not supported here"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for host in [
            "http://127.0.0.1:18080",
            "http://127.1.2.3:80/",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
        ] {
            assert!(loopback_base_url(host).is_ok(), "{host}");
        }
        assert_eq!(
            loopback_base_url("http://127.0.0.1:18080/").unwrap(),
            "http://127.0.0.1:18080"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for host in [
            "http://10.0.0.1:8080",
            "http://192.168.1.10",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:8080",
            "http://[::ffff:8.8.8.8]",
            "http://0.0.0.0:8080",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/api",
        ] {
            assert!(loopback_base_url(host).is_err(), "{host}");
        }
    }
}
