//! One suite for the `Cache` trait, run against Redis and the in-process cache.

use std::sync::Arc;
use std::time::Duration;

use authd::cache::memory::MemoryCache;
use authd::cache::redis::RedisCache;
use authd::cache::{Cache, RateRule};
use uuid::Uuid;

use crate::helpers::{redis_url, remove_redis_keys, test_settings, Backend, TestDatabase};

/// At most `max` hits per `window`.
fn rule(max: u32, window: Duration) -> RateRule {
    RateRule { max, window }
}

struct TestCache {
    cache: Arc<dyn Cache>,
    prefix: Option<String>,
}

impl Drop for TestCache {
    fn drop(&mut self) {
        if let Some(prefix) = &self.prefix {
            remove_redis_keys(prefix);
        }
    }
}

async fn open(backend: Backend) -> TestCache {
    match backend {
        Backend::PostgresRedis => {
            let mut settings = test_settings(backend, &TestDatabase::new(backend));
            settings.cache.url = authd::config::ConnectionUrl::new(redis_url());
            let cache = RedisCache::connect(&settings.cache).await.unwrap();
            TestCache {
                cache: Arc::new(cache),
                prefix: Some(settings.cache.key_prefix),
            }
        }
        Backend::SqliteInProcess => TestCache {
            cache: Arc::new(MemoryCache::new()),
            prefix: None,
        },
    }
}

async fn a_limit_allows_its_burst_then_refuses_with_a_wait(backend: Backend) {
    let t = open(backend).await;
    let key = format!("rl:{}", Uuid::new_v4());
    let window = Duration::from_secs(60);
    for expected_remaining in [2, 1, 0] {
        let decision = t.cache.hit_rate_limit(&key, rule(3, window)).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(decision.limit, 3);
        assert!(decision.reset_after <= window);
    }
    let refused = t.cache.hit_rate_limit(&key, rule(3, window)).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One request's worth of the window must pass first: 60 s / 3 = 20 s, give or take a tick.
    assert!(
        refused.retry_after > Duration::from_secs(19)
            && refused.retry_after <= Duration::from_secs(20),
        "{:?}",
        refused.retry_after
    );
    // Another key has its own allowance.
    let other = t
        .cache
        .hit_rate_limit(&format!("{key}:other"), rule(3, window))
        .await
        .unwrap();
    assert!(other.allowed);
}

async fn an_allowance_comes_back_as_time_passes(backend: Backend) {
    let t = open(backend).await;
    let key = format!("rl:{}", Uuid::new_v4());
    let window = Duration::from_millis(400);
    // One request a window: the second is refused until the window has passed.
    let allowed = || async {
        t.cache
            .hit_rate_limit(&key, rule(1, window))
            .await
            .unwrap()
            .allowed
    };
    assert!(allowed().await, "the first request");
    assert!(!allowed().await, "a second one within the window");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(allowed().await, "one after the window");
}

async fn login_attempts_are_reserved_atomically_with_a_capped_doubling_wait(backend: Backend) {
    let t = open(backend).await;
    let key = format!("acct:{}", Uuid::new_v4());
    let policy = authd::domain::lockout::LockoutPolicy {
        threshold: 2,
        base_delay: Duration::from_millis(300),
        max_delay: Duration::from_millis(500),
        forget_after: Duration::from_secs(60),
    };
    // Ten attempts at once: exactly `threshold` are granted, the others must wait the first delay.
    let verdicts: Vec<Option<Duration>> = futures_util::future::join_all(
        (0..10).map(|_| async { t.cache.reserve_login_attempt(&key, &policy).await.unwrap() }),
    )
    .await;
    assert_eq!(
        verdicts.iter().filter(|v| v.is_none()).count(),
        2,
        "{verdicts:?}"
    );
    for wait in verdicts.iter().flatten() {
        assert!(
            *wait <= Duration::from_millis(300) && *wait > Duration::from_millis(100),
            "{wait:?}"
        );
    }
    // After the wait one more attempt is granted and doubles it, up to the cap.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        t.cache.reserve_login_attempt(&key, &policy).await.unwrap(),
        None
    );
    let wait = t.cache.reserve_login_attempt(&key, &policy).await.unwrap();
    assert!(
        wait.is_some_and(|w| w <= Duration::from_millis(500) && w > Duration::from_millis(300)),
        "{wait:?}"
    );
    // Success clears everything.
    t.cache.clear_login_failures(&key).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            t.cache.reserve_login_attempt(&key, &policy).await.unwrap(),
            None
        );
    }
    assert!(t
        .cache
        .reserve_login_attempt(&key, &policy)
        .await
        .unwrap()
        .is_some());
    t.cache.ping().await.unwrap();
}

crate::backend_tests!(
    a_limit_allows_its_burst_then_refuses_with_a_wait,
    an_allowance_comes_back_as_time_passes,
    login_attempts_are_reserved_atomically_with_a_capped_doubling_wait,
);
