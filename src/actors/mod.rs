//! The actors that own the hard parts. HTTP handlers only send them messages.
//!
//! - [`hasher`]: a bounded pool of sync threads for argon2id/bcrypt, with fast 503 on overload.
//! - [`tokens`]: sessions, access JWTs, refresh rotation and reuse detection, the denylist.
//! - [`rate_limiter`]: per-IP limits, shared across nodes through the cache.

pub mod hasher;
pub mod janitor;
pub mod mailer;
pub mod rate_limiter;
pub mod tokens;
