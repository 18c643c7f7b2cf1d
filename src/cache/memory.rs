//! In-process cache, the embedded default: governor's keyed GCRA limiters for rate limits and a
//! map with deadlines for the denylist. Right for one node; with several, each keeps its own state
//! (the start-up log says so).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{Cache, CacheError, RateDecision};
use crate::domain::lockout::LockoutPolicy;

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Expired entries are swept every this many operations, so memory follows live keys only.
const SWEEP_EVERY: u64 = 4096;

/// One account's failed logins in a row.
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
    forget_at: Instant,
}

#[derive(Default)]
pub struct MemoryCache {
    limiters: Mutex<HashMap<(u32, Duration), Arc<KeyedLimiter>>>,
    denied: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<String, Failures>>,
    operations: AtomicU64,
}

/// A poisoned lock only means another thread panicked mid-update of plain data; keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn limiter(&self, limit: u32, window: Duration) -> Result<Arc<KeyedLimiter>, CacheError> {
        let mut limiters = lock(&self.limiters);
        if let Some(limiter) = limiters.get(&(limit, window)) {
            return Ok(limiter.clone());
        }
        let burst = NonZeroU32::new(limit)
            .ok_or_else(|| CacheError::Unavailable("a limit of zero".into()))?;
        let quota = Quota::with_period(window / limit)
            .ok_or_else(|| CacheError::Unavailable("a rate-limit window of zero".into()))?
            .allow_burst(burst);
        let limiter =
            Arc::new(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>());
        limiters.insert((limit, window), limiter.clone());
        Ok(limiter)
    }

    fn maybe_sweep(&self) {
        if self.operations.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let now = Instant::now();
        lock(&self.denied).retain(|_, deadline| *deadline > now);
        lock(&self.failures).retain(|_, failures| failures.forget_at > now);
        for limiter in lock(&self.limiters).values() {
            limiter.retain_recent();
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<RateDecision, CacheError> {
        self.maybe_sweep();
        let limiter = self.limiter(limit, window)?;
        let interval = window / limit;
        Ok(match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_after: interval * (limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => RateDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: window,
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            },
        })
    }

    async fn deny(&self, entries: &[(String, Duration)]) -> Result<(), CacheError> {
        self.maybe_sweep();
        let now = Instant::now();
        let mut denied = lock(&self.denied);
        for (key, ttl) in entries {
            let deadline = now + *ttl;
            let entry = denied.entry(key.clone()).or_insert(deadline);
            *entry = (*entry).max(deadline);
        }
        Ok(())
    }

    async fn any_denied(&self, keys: &[String]) -> Result<bool, CacheError> {
        let now = Instant::now();
        let denied = lock(&self.denied);
        Ok(keys
            .iter()
            .any(|key| denied.get(key).is_some_and(|deadline| *deadline > now)))
    }

    async fn login_delay(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let now = Instant::now();
        let failures = lock(&self.failures);
        Ok(failures
            .get(key)
            .filter(|f| f.forget_at > now)
            .and_then(|f| f.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now))
    }

    async fn record_login_failure(
        &self,
        key: &str,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, CacheError> {
        self.maybe_sweep();
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        let entry = failures.entry(key.to_string()).or_insert(Failures {
            count: 0,
            blocked_until: None,
            forget_at: now,
        });
        if entry.forget_at <= now {
            entry.count = 0;
            entry.blocked_until = None;
        }
        entry.count = entry.count.saturating_add(1);
        let delay = policy.delay_after(entry.count);
        if let Some(delay) = delay {
            entry.blocked_until = Some(now + delay);
        }
        entry.forget_at = now + policy.forget_after + delay.unwrap_or_default();
        Ok(delay)
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError> {
        lock(&self.failures).remove(key);
        Ok(())
    }
}
