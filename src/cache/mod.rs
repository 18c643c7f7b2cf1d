//! Shared, expiring state: rate-limit counters and per-account login attempts. One trait, one
//! module per backend; every key is namespaced by the configured prefix. Nothing here decides
//! whether a token is still valid: revocation lives in the store, so a cache that restarts,
//! evicts or loses keys lets no revoked token back in.

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

/// At most `max` requests per `window`, replenished evenly (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    pub max: u32,
    pub window: Duration,
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

    /// Counts one request against `rule` for `key`, atomically across nodes.
    async fn hit_rate_limit(&self, key: &str, rule: RateRule) -> Result<RateDecision, CacheError>;

    /// Reserves one login attempt for the account behind `key` before its password is verified:
    /// `Some(wait)` when it must wait first (nothing counted), else the attempt counts as a failure
    /// until [`Cache::clear_login_failures`]. Atomic, so concurrent attempts see each other.
    async fn reserve_login_attempt(
        &self,
        key: &str,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, CacheError>;

    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError>;
}
