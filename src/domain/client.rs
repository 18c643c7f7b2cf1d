//! Who is asking, as far as the transport can tell: what sessions and the audit log record.

use std::net::IpAddr;

/// Longest user agent kept with a session or an event, in characters.
const MAX_USER_AGENT_LENGTH: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientContext {
    /// The user agent (truncated) and the address, as a session stores them.
    pub fn session_fields(&self) -> (Option<String>, Option<String>) {
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT_LENGTH).collect());
        (user_agent, self.ip.map(|ip| ip.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_agent_is_cut_at_a_character_boundary() {
        let client = ClientContext {
            ip: Some("2001:db8::1".parse().expect("an address")),
            user_agent: Some("é".repeat(600)),
            request_id: None,
        };
        let (agent, ip) = client.session_fields();
        assert_eq!(agent.expect("kept").chars().count(), MAX_USER_AGENT_LENGTH);
        assert_eq!(ip.as_deref(), Some("2001:db8::1"));
    }
}
