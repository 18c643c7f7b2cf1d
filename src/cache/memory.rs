//! In-process cache, the embedded default: governor's keyed GCRA limiters for rate limits and a
//! map of login attempts. Right for one node; with several, each keeps its own state (the start-up
//! log says so).

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

use super::{Cache, CacheError, RateDecision, RateRule};
use crate::domain::lockout::{AttemptRecord, LockoutPolicy, Reservation};

type KeyedLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Expired entries are swept every this many operations, so memory follows live keys only.
const SWEEP_EVERY: u64 = 4096;

/// One account's recent attempts; times count from the cache's epoch.
struct Attempts {
    record: AttemptRecord,
    forget_at: Duration,
}

pub struct MemoryCache {
    limiters: Mutex<HashMap<(u32, Duration), Arc<KeyedLimiter>>>,
    attempts: Mutex<HashMap<String, Attempts>>,
    operations: AtomicU64,
    epoch: Instant,
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache {
            limiters: Mutex::default(),
            attempts: Mutex::default(),
            operations: AtomicU64::default(),
            epoch: Instant::now(),
        }
    }
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
        let now = self.epoch.elapsed();
        lock(&self.attempts).retain(|_, attempts| attempts.forget_at > now);
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

    async fn hit_rate_limit(&self, key: &str, rule: RateRule) -> Result<RateDecision, CacheError> {
        let RateRule { max: limit, window } = rule;
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

    async fn reserve_login_attempt(
        &self,
        key: &str,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, CacheError> {
        self.maybe_sweep();
        let now = self.epoch.elapsed();
        let mut attempts = lock(&self.attempts);
        let record = attempts
            .get(key)
            .filter(|a| a.forget_at > now)
            .map(|a| a.record)
            .unwrap_or_default();
        match policy.reserve(record, now) {
            (_, Reservation::Refused { wait }) => Ok(Some(wait)),
            (record, Reservation::Granted { delay }) => {
                let forget_at = now + policy.keep_for(delay);
                attempts.insert(key.to_string(), Attempts { record, forget_at });
                Ok(None)
            }
        }
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError> {
        lock(&self.attempts).remove(key);
        Ok(())
    }
}
