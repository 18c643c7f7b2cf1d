//! Shared, expiring state: rate-limit counters and the access-token denylist. One trait, one module
//! per backend; every key is namespaced by the configured prefix.

use std::time::Duration;

use async_trait::async_trait;

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
}
