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

use crate::cache::{Cache, RateDecision, RateRule};
use crate::config::RateLimitSettings;
use crate::domain::limits::client_bucket;
use crate::domain::lockout::LockoutPolicy;
use crate::error::{AppError, RateLimitHeaders};

/// Count one request from `ip` to `route` (the matched route pattern without the base path).
#[derive(Message)]
#[rtype(result = "Result<Option<RateLimitHeaders>, AppError>")]
pub struct CheckRequest {
    pub ip: IpAddr,
    pub route: String,
}

/// Before a password is verified (login, or re-authentication with the current password): reserve
/// one attempt for the account, atomically, or learn how long it must wait (`Some`). `None` also
/// when throttling is off or the cache cannot be reached (fail open, logged).
#[derive(Message)]
#[rtype(result = "Option<Duration>")]
pub struct ReserveAttempt {
    pub account_key: String,
}

/// Count one costly action for `key` (a sign-in mail to an address) against `rule`: false when
/// over it. True when the cache cannot be reached (fail open, logged), as for requests.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CountAction {
    pub key: String,
    pub rule: RateRule,
}

/// After the right password: forget the account's failures.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClearFailures {
    pub account_key: String,
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
    rule: RateRule,
}

/// `100;w=60` (draft-ietf-httpapi-ratelimit-headers-07).
fn policy(limit: &Limit) -> String {
    format!("{};w={}", limit.rule.max, limit.rule.window.as_secs())
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
    let bucket = client_bucket(msg.ip, settings.ipv6_prefix_length);
    let mut limits = vec![Limit {
        key: format!("rl:ip:{bucket}"),
        rule: RateRule {
            max: settings.general_max,
            window: Duration::from_secs(settings.general_window_seconds),
        },
    }];
    if settings.auth_routes.iter().any(|route| route == &msg.route) {
        limits.push(Limit {
            key: format!("rl:auth:{}:{bucket}", msg.route),
            rule: RateRule {
                max: settings.auth_max,
                window: Duration::from_secs(settings.auth_window_seconds),
            },
        });
    }
    let policies: Vec<String> = limits.iter().map(policy).collect();
    let mut tightest: Option<RateDecision> = None;
    for limit in &limits {
        let decision = match cache.hit_rate_limit(&limit.key, limit.rule).await {
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

impl Handler<ReserveAttempt> for RateLimiter {
    type Result = ResponseFuture<Option<Duration>>;

    fn handle(&mut self, msg: ReserveAttempt, _: &mut Self::Context) -> Self::Result {
        let cache = self.cache.clone();
        let policy = self.lockout;
        Box::pin(async move {
            let policy = policy?;
            match cache.reserve_login_attempt(&msg.account_key, &policy).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "account throttle unavailable; letting the attempt through");
                    None
                }
            }
        })
    }
}

impl Handler<CountAction> for RateLimiter {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: CountAction, _: &mut Self::Context) -> Self::Result {
        let cache = self.cache.clone();
        Box::pin(async move {
            match cache.hit_rate_limit(&msg.key, msg.rule).await {
                Ok(decision) => decision.allowed,
                Err(e) => {
                    tracing::error!(error = %e, "action limit unavailable; letting it through");
                    true
                }
            }
        })
    }
}

impl Handler<ClearFailures> for RateLimiter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ClearFailures, _: &mut Self::Context) -> Self::Result {
        let cache = self.cache.clone();
        let enabled = self.lockout.is_some();
        Box::pin(async move {
            if !enabled {
                return;
            }
            if let Err(e) = cache.clear_login_failures(&msg.account_key).await {
                tracing::error!(error = %e, "clearing an account's failures failed");
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
            rule: RateRule {
                max: 100,
                window: Duration::from_secs(60),
            },
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
