//! One suite for the `Cache` trait, run against Redis and the in-process cache.

use std::sync::Arc;
use std::time::Duration;

use authd::cache::memory::MemoryCache;
use authd::cache::redis::RedisCache;
use authd::cache::Cache;
use uuid::Uuid;

use crate::helpers::{redis_url, remove_redis_keys, test_settings, Backend, TestDatabase};

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
        let decision = t.cache.hit_rate_limit(&key, 3, window).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(decision.limit, 3);
        assert!(decision.reset_after <= window);
    }
    let refused = t.cache.hit_rate_limit(&key, 3, window).await.unwrap();
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
        .hit_rate_limit(&format!("{key}:other"), 3, window)
        .await
        .unwrap();
    assert!(other.allowed);
}

async fn an_allowance_comes_back_as_time_passes(backend: Backend) {
    let t = open(backend).await;
    let key = format!("rl:{}", Uuid::new_v4());
    let window = Duration::from_millis(400);
    assert!(
        t.cache
            .hit_rate_limit(&key, 1, window)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !t.cache
            .hit_rate_limit(&key, 1, window)
            .await
            .unwrap()
            .allowed
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        t.cache
            .hit_rate_limit(&key, 1, window)
            .await
            .unwrap()
            .allowed
    );
}

async fn denied_keys_expire_after_their_time_to_live(backend: Backend) {
    let t = open(backend).await;
    let short = format!("deny:{}", Uuid::new_v4());
    let long = format!("deny:{}", Uuid::new_v4());
    let never = format!("deny:{}", Uuid::new_v4());
    assert!(!t
        .cache
        .any_denied(&[short.clone(), long.clone()])
        .await
        .unwrap());
    t.cache
        .deny(&[
            (short.clone(), Duration::from_millis(300)),
            (long.clone(), Duration::from_secs(60)),
        ])
        .await
        .unwrap();
    assert!(t
        .cache
        .any_denied(std::slice::from_ref(&short))
        .await
        .unwrap());
    assert!(t
        .cache
        .any_denied(&[never.clone(), long.clone()])
        .await
        .unwrap());
    assert!(!t
        .cache
        .any_denied(std::slice::from_ref(&never))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!t
        .cache
        .any_denied(std::slice::from_ref(&short))
        .await
        .unwrap());
    assert!(t
        .cache
        .any_denied(std::slice::from_ref(&long))
        .await
        .unwrap());
    t.cache.ping().await.unwrap();
}

async fn failed_logins_build_a_capped_doubling_wait_that_success_clears(backend: Backend) {
    let t = open(backend).await;
    let key = format!("acct:{}", Uuid::new_v4());
    let policy = authd::domain::lockout::LockoutPolicy {
        threshold: 2,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(250),
        forget_after: Duration::from_secs(60),
    };
    assert_eq!(t.cache.login_delay(&key).await.unwrap(), None);
    assert_eq!(
        t.cache.record_login_failure(&key, &policy).await.unwrap(),
        None
    );
    let waits: Vec<Option<Duration>> = futures_util::future::join_all(
        (0..3).map(|_| async { t.cache.record_login_failure(&key, &policy).await.unwrap() }),
    )
    .await;
    let mut waits: Vec<u128> = waits.into_iter().map(|w| w.unwrap().as_millis()).collect();
    waits.sort();
    assert_eq!(waits, [100, 200, 250]);
    let remaining = t.cache.login_delay(&key).await.unwrap().unwrap();
    assert!(
        remaining <= Duration::from_millis(250) && remaining > Duration::from_millis(150),
        "{remaining:?}"
    );
    t.cache.clear_login_failures(&key).await.unwrap();
    assert_eq!(t.cache.login_delay(&key).await.unwrap(), None);
    assert_eq!(
        t.cache.record_login_failure(&key, &policy).await.unwrap(),
        None
    );
}

crate::backend_tests!(
    a_limit_allows_its_burst_then_refuses_with_a_wait,
    an_allowance_comes_back_as_time_passes,
    denied_keys_expire_after_their_time_to_live,
    failed_logins_build_a_capped_doubling_wait_that_success_clears,
);
