//! Who shares a per-IP allowance.

use std::net::IpAddr;

use ipnet::Ipv6Net;

/// The per-IP bucket of a client address: the IPv4 address itself, or the IPv6 network of
/// `ipv6_prefix` bits holding it. One host usually owns a whole /64, so keying on the full 128
/// bits would hand every client 2^64 allowances. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
/// what a dual-stack socket reports) count as the IPv4 address.
pub fn client_bucket(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => Ipv6Net::new(v6, ipv6_prefix.min(128))
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(ip: &str, prefix: u8) -> String {
        client_bucket(ip.parse().unwrap(), prefix)
    }

    #[test]
    fn ipv6_clients_of_one_prefix_share_a_bucket() {
        assert_eq!(bucket("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            bucket("2001:db8:1:2::", 64)
        );
        assert_ne!(bucket("2001:db8:1:3::1", 64), bucket("2001:db8:1:2::1", 64));
        assert_eq!(bucket("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(bucket("2001:db8::1", 128), "2001:db8::1/128");
    }

    #[test]
    fn ipv4_and_mapped_ipv4_are_one_address_each() {
        assert_eq!(bucket("198.51.100.7", 64), "198.51.100.7");
        assert_eq!(bucket("::ffff:198.51.100.7", 64), "198.51.100.7");
        assert_ne!(bucket("198.51.100.7", 64), bucket("198.51.100.8", 64));
    }
}
