//! Redis backend: one multiplexed, self-reconnecting connection per process; rate limits are one
//! atomic GCRA script using the Redis clock, so every node agrees on time.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Cache, CacheError, RateDecision};
use crate::config::CacheSettings;
use crate::domain::lockout::LockoutPolicy;

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

/// Reserves one login attempt (`LockoutPolicy::reserve`, the same rule on Redis's clock): returns
/// {0, wait_ms} when the account must wait (nothing counted), else counts the attempt and returns
/// {1, delay_ms} with the wait it imposes on the next one (0: none). ARGV: threshold, base_ms,
/// max_ms, forget_ms.
const RESERVE_ATTEMPT: &str = r#"
local threshold = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local forget = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'until'))
if blocked_until and blocked_until > now then
  return {0, blocked_until - now}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local delay = 0
if failures >= threshold then
  delay = base * (2 ^ (failures - threshold))
  if delay > max then delay = max end
  delay = math.floor(delay)
  redis.call('HSET', KEYS[1], 'until', now + delay)
end
redis.call('PEXPIRE', KEYS[1], forget + delay)
return {1, delay}
"#;

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
    gcra: Script,
    reserve_attempt: Script,
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
            gcra: Script::new(GCRA),
            reserve_attempt: Script::new(RESERVE_ATTEMPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let answer = tokio::time::timeout(self.command_timeout, op)
            .await
            .map_err(|_| CacheError::Unavailable("Redis command timed out".into()))
            .and_then(|answer| answer.map_err(unavailable));
        if answer.is_err() {
            crate::metrics::backend_error("cache", "unavailable");
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

fn lockout_key(key: &str) -> String {
    format!("lo:{key}")
}

#[async_trait]
impl Cache for RedisCache {
    async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        self.bounded(redis::cmd("PING").query_async::<String>(&mut connection))
            .await
            .map(|_| ())
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<RateDecision, CacheError> {
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
        let mut invocation = self.reserve_attempt.key(self.key(&lockout_key(key)));
        invocation
            .arg(policy.threshold)
            .arg(policy.base_delay.as_millis() as u64)
            .arg(policy.max_delay.as_millis() as u64)
            .arg(policy.forget_after.as_millis() as u64);
        let reply: Vec<i64> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        match reply[..] {
            [1, _] => Ok(None),
            [0, wait_ms] => Ok(Some(millis(wait_ms.max(1)))),
            _ => Err(CacheError::Unavailable(
                "unexpected login-attempt reply".into(),
            )),
        }
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(&lockout_key(key)));
        self.bounded(cmd.query_async::<()>(&mut connection)).await
    }
}
