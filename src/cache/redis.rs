//! Redis backend: one multiplexed, self-reconnecting connection per process; rate limits are one
//! atomic GCRA script using the Redis clock, so every node agrees on time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Cache, CacheError, RateDecision, RateRule};
use crate::config::CacheSettings;
use crate::domain::lockout::{AttemptRecord, LockoutPolicy, Reservation};

/// GCRA (generic cell rate algorithm): one key holding the theoretical arrival time, in ms.
/// Returns {allowed, remaining, reset_after_ms, retry_after_ms}.
const GCRA: &str = r#"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
local remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
return {1, remaining, math.ceil(new_tat - now), 0}
"#;

/// An account's attempt record and Redis's clock: {failures, blocked_until_ms or -1, now_ms}.
/// The decision is `LockoutPolicy::reserve`, made in Rust; Redis only reads and writes.
const READ_ATTEMPTS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '-1')
return {failures, blocked_until, now}
"#;

/// Writes a new attempt record if the stored one is still the one read (compare and set): 1 when
/// written, 0 when another attempt got there first. ARGV: the failures and blocked_until read,
/// the new failures and blocked_until (-1: none), how long to keep the record (ms).
const WRITE_ATTEMPTS: &str = r#"
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '-1')
if failures ~= tonumber(ARGV[1]) or blocked_until ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'failures', ARGV[3])
if tonumber(ARGV[4]) >= 0 then
  redis.call('HSET', KEYS[1], 'until', ARGV[4])
else
  redis.call('HDEL', KEYS[1], 'until')
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// Compare-and-set rounds before a contended account is told to wait: only concurrent attempts
/// on one account collide, and a guesser racing itself may well wait.
const RESERVE_ROUNDS: usize = 8;

/// After a Redis command fails, the commands of the next few seconds skip Redis and take their
/// declared fallback at once, instead of each waiting out `cache.command_timeout_ms` (an outage
/// made every request seconds slower); then one command tries again, and a success ends it.
#[derive(Debug, Default)]
struct Breaker {
    skip_until_ms: AtomicU64,
}

impl Breaker {
    const SKIP_FOR_MS: u64 = 5_000;

    fn skipping(&self, now_ms: u64) -> bool {
        now_ms < self.skip_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, now_ms: u64) {
        let until = now_ms.saturating_add(Self::SKIP_FOR_MS);
        self.skip_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn recovered(&self) {
        self.skip_until_ms.store(0, Ordering::Relaxed);
    }
}

fn unix_millis() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
    breaker: Arc<Breaker>,
    gcra: Script,
    read_attempts: Script,
    write_attempts: Script,
}

impl RedisCache {
    pub async fn connect(settings: &CacheSettings) -> Result<Self, CacheError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(unavailable)?;
        let connect_timeout = Duration::from_secs(settings.connect_timeout_seconds);
        // Reconnect quickly and keep trying in short steps: a long backoff inside the connection
        // manager would outlast every command timeout, so callers would only ever see timeouts
        // and the connection would not heal promptly once Redis is back.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(connect_timeout)
            .set_response_timeout(Duration::from_millis(settings.command_timeout_ms))
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(500);
        let connection = tokio::time::timeout(
            connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| CacheError::Unavailable("timed out connecting to Redis".into()))?
        .map_err(unavailable)?;
        Ok(RedisCache {
            connection,
            prefix: settings.key_prefix.clone(),
            command_timeout: Duration::from_millis(settings.command_timeout_ms),
            breaker: Arc::default(),
            gcra: Script::new(GCRA),
            read_attempts: Script::new(READ_ATTEMPTS),
            write_attempts: Script::new(WRITE_ATTEMPTS),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Runs `op` within the command timeout, unless a recent failure has Redis skipped (see
    /// [`Breaker`]): then `op` is dropped unsent.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        if self.breaker.skipping(unix_millis()) {
            return Err(CacheError::Unavailable(
                "Redis failed a moment ago; skipped for a few seconds".into(),
            ));
        }
        self.attempt(op).await
    }

    /// Runs `op` within the command timeout, and tells the breaker how it went.
    async fn attempt<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let answer = tokio::time::timeout(self.command_timeout, op)
            .await
            .map_err(|_| CacheError::Unavailable("Redis command timed out".into()))
            .and_then(|answer| answer.map_err(unavailable));
        match &answer {
            Ok(_) => self.breaker.recovered(),
            Err(_) => {
                self.breaker.failed(unix_millis());
                crate::metrics::backend_error("cache", "unavailable");
            }
        }
        answer
    }
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

fn millis(value: i64) -> Duration {
    Duration::from_millis(value.max(0) as u64)
}

fn as_millis(value: Duration) -> i64 {
    i64::try_from(value.as_millis()).unwrap_or(i64::MAX)
}

/// A wait is at least a millisecond, so a `Retry-After` is never zero.
const MIN_WAIT: Duration = Duration::from_millis(1);

fn lockout_key(key: &str) -> String {
    format!("lo:{key}")
}

#[async_trait]
impl Cache for RedisCache {
    /// Always asks Redis (never skipped), so readiness sees it come back and ends the skipping.
    async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        self.attempt(redis::cmd("PING").query_async::<String>(&mut connection))
            .await
            .map(|_| ())
    }

    async fn hit_rate_limit(&self, key: &str, rule: RateRule) -> Result<RateDecision, CacheError> {
        let RateRule { max: limit, window } = rule;
        let mut connection = self.connection.clone();
        let key = self.key(key);
        let mut invocation = self.gcra.key(key);
        invocation.arg(limit).arg(window.as_millis() as u64);
        let reply: Vec<i64> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        let [allowed, remaining, reset_ms, retry_ms] = reply[..] else {
            return Err(CacheError::Unavailable(
                "unexpected rate-limit reply".into(),
            ));
        };
        Ok(RateDecision {
            allowed: allowed == 1,
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset_after: millis(reset_ms),
            retry_after: millis(retry_ms),
        })
    }

    async fn reserve_login_attempt(
        &self,
        key: &str,
        policy: &LockoutPolicy,
    ) -> Result<Option<Duration>, CacheError> {
        let mut connection = self.connection.clone();
        let key = self.key(&lockout_key(key));
        for _ in 0..RESERVE_ROUNDS {
            let reply: Vec<i64> = self
                .bounded(self.read_attempts.key(&key).invoke_async(&mut connection))
                .await?;
            let [failures, blocked_until, now] = reply[..] else {
                return Err(CacheError::Unavailable(
                    "unexpected login-attempt reply".into(),
                ));
            };
            let read = AttemptRecord {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                blocked_until: (blocked_until >= 0).then(|| millis(blocked_until)),
            };
            let (record, delay) = match policy.reserve(read, millis(now)) {
                (_, Reservation::Refused { wait }) => return Ok(Some(wait.max(MIN_WAIT))),
                (record, Reservation::Granted { delay }) => (record, delay),
            };
            let mut write = self.write_attempts.key(&key);
            write
                .arg(failures)
                .arg(blocked_until)
                .arg(record.failures)
                .arg(record.blocked_until.map_or(-1, as_millis))
                .arg(as_millis(policy.keep_for(delay)));
            let written: i64 = self.bounded(write.invoke_async(&mut connection)).await?;
            if written == 1 {
                return Ok(None);
            }
        }
        Ok(Some(policy.base_delay.max(MIN_WAIT)))
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(&lockout_key(key)));
        self.bounded(cmd.query_async::<()>(&mut connection)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_skips_redis_for_a_few_seconds_and_a_success_ends_it() {
        let breaker = Breaker::default();
        assert!(!breaker.skipping(1_000));
        breaker.failed(1_000);
        assert!(breaker.skipping(1_000));
        assert!(breaker.skipping(1_000 + Breaker::SKIP_FOR_MS - 1));
        assert!(
            !breaker.skipping(1_000 + Breaker::SKIP_FOR_MS),
            "then one tries again"
        );
        breaker.failed(2_000);
        breaker.recovered();
        assert!(!breaker.skipping(2_001));
    }
}
