//! The rate-limit actor: per-IP limits on every endpoint, and a stricter per-IP, per-route limit on
//! the credential endpoints. State lives in the cache (one atomic script in Redis), so a limit is
//! global across nodes.
//!
//! If the cache cannot be reached the request is let through and the failure logged: a Redis
//! outage must not take logins down with it (fail-open), while argon2 cost and the hasher pool's
//! bounded queue still cap what a flood can do.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, ResponseFuture};

use crate::cache::{Cache, RateDecision};
use crate::config::RateLimitSettings;
use crate::domain::lockout::LockoutPolicy;
use crate::error::{AppError, RateLimitHeaders};

/// Count one request from `ip` to `route` (the path without the base path).
#[derive(Message)]
#[rtype(result = "Result<Option<RateLimitHeaders>, AppError>")]
pub struct CheckRequest {
    pub ip: IpAddr,
    pub route: String,
}

/// Before a login: the wait the account still owes, if any (`None` also when throttling is off).
#[derive(Message)]
#[rtype(result = "Option<Duration>")]
pub struct CheckAccount {
    pub account_key: String,
}

/// After a login: count a failure, or clear the account's failures on success.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordLogin {
    pub account_key: String,
    pub succeeded: bool,
}

pub struct RateLimiter {
    cache: Arc<dyn Cache>,
    settings: Arc<RateLimitSettings>,
    lockout: Option<LockoutPolicy>,
}

impl RateLimiter {
    /// `lockout: None` switches per-account throttling off.
    pub fn new(
        cache: Arc<dyn Cache>,
        settings: Arc<RateLimitSettings>,
        lockout: Option<LockoutPolicy>,
    ) -> Self {
        RateLimiter {
            cache,
            settings,
            lockout,
        }
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
}

struct Limit {
    key: String,
    max: u32,
    window: Duration,
}

/// `100;w=60` (draft-ietf-httpapi-ratelimit-headers-07).
fn policy(limit: &Limit) -> String {
    format!("{};w={}", limit.max, limit.window.as_secs())
}

fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn state(decision: &RateDecision) -> String {
    format!(
        "limit={}, remaining={}, reset={}",
        decision.limit,
        decision.remaining,
        ceil_seconds(decision.reset_after)
    )
}

async fn check(
    cache: Arc<dyn Cache>,
    settings: Arc<RateLimitSettings>,
    msg: CheckRequest,
) -> Result<Option<RateLimitHeaders>, AppError> {
    if !settings.enabled {
        return Ok(None);
    }
    let mut limits = vec![Limit {
        key: format!("rl:ip:{}", msg.ip),
        max: settings.general_max,
        window: Duration::from_secs(settings.general_window_seconds),
    }];
    if settings.auth_routes.iter().any(|route| route == &msg.route) {
        limits.push(Limit {
            key: format!("rl:auth:{}:{}", msg.route, msg.ip),
            max: settings.auth_max,
            window: Duration::from_secs(settings.auth_window_seconds),
        });
    }
    let policies: Vec<String> = limits.iter().map(policy).collect();
    let mut tightest: Option<RateDecision> = None;
    for limit in &limits {
        let decision = match cache
            .hit_rate_limit(&limit.key, limit.max, limit.window)
            .await
        {
            Ok(decision) => decision,
            Err(e) => {
                tracing::error!(error = %e, "rate limit check failed; letting the request through");
                return Ok(None);
            }
        };
        let headers = RateLimitHeaders {
            policy: policies.join(", "),
            state: state(&decision),
        };
        if !decision.allowed {
            crate::metrics::rate_limited("ip");
            return Err(AppError::RateLimited {
                retry_after: decision.retry_after,
                headers,
            });
        }
        if tightest.is_none_or(|t| decision.remaining < t.remaining) {
            tightest = Some(decision);
        }
    }
    Ok(tightest.map(|decision| RateLimitHeaders {
        policy: policies.join(", "),
        state: state(&decision),
    }))
}

impl Handler<CheckRequest> for RateLimiter {
    type Result = ResponseFuture<Result<Option<RateLimitHeaders>, AppError>>;

    fn handle(&mut self, msg: CheckRequest, _: &mut Self::Context) -> Self::Result {
        Box::pin(check(self.cache.clone(), self.settings.clone(), msg))
    }
}

impl Handler<CheckAccount> for RateLimiter {
    type Result = ResponseFuture<Option<Duration>>;

    fn handle(&mut self, msg: CheckAccount, _: &mut Self::Context) -> Self::Result {
        let cache = self.cache.clone();
        let enabled = self.lockout.is_some();
        Box::pin(async move {
            if !enabled {
                return None;
            }
            cache.login_delay(&msg.account_key).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "account throttle check failed; letting the login through");
                None
            })
        })
    }
}

impl Handler<RecordLogin> for RateLimiter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RecordLogin, _: &mut Self::Context) -> Self::Result {
        let cache = self.cache.clone();
        let policy = self.lockout;
        Box::pin(async move {
            let Some(policy) = policy else {
                return;
            };
            let outcome = if msg.succeeded {
                cache
                    .clear_login_failures(&msg.account_key)
                    .await
                    .map(|_| None)
            } else {
                cache.record_login_failure(&msg.account_key, &policy).await
            };
            match outcome {
                Ok(Some(delay)) => {
                    tracing::info!(delay_ms = delay.as_millis() as u64, "account throttled")
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "recording a login outcome failed"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_draft_7() {
        let limit = Limit {
            key: "rl:ip:127.0.0.1".into(),
            max: 100,
            window: Duration::from_secs(60),
        };
        assert_eq!(policy(&limit), "100;w=60");
        let decision = RateDecision {
            allowed: true,
            limit: 100,
            remaining: 99,
            reset_after: Duration::from_millis(600),
            retry_after: Duration::ZERO,
        };
        assert_eq!(state(&decision), "limit=100, remaining=99, reset=1");
    }
}
