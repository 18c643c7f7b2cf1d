//! Shared, expiring state: rate-limit counters and the access-token denylist. One trait, one module
//! per backend; every key is namespaced by the configured prefix.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::lockout::LockoutPolicy;

pub mod memory;
pub mod redis;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

/// The answer of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset_after: Duration,
    /// Until the next request would be allowed; zero when allowed.
    pub retry_after: Duration,
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), CacheError>;

    /// Counts one request against `limit` per `window` for `key`, atomically across nodes.
    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<RateDecision, CacheError>;

    /// Marks each key as denied for its time to live.
    async fn deny(&self, entries: &[(String, Duration)]) -> Result<(), CacheError>;

    /// Whether any of the keys is denied.
    async fn any_denied(&self, keys: &[String]) -> Result<bool, CacheError>;

    /// How long the account behind `key` must still wait before its next login attempt.
    async fn login_delay(&self, key: &str) -> Result<Option<Duration>, CacheError>;

    /// Counts a failed login; answers the wait it imposes, if the policy's threshold is reached.
    async fn record_login_failure(
        &self,
        key: &str,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, CacheError>;

    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError>;
}
