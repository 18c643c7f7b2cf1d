//! authd: an authentication service. See docs/architecture.md; in short, HTTP handlers (`http`)
//! call the flows (`flows`), which send messages to the actors (`actors`) that own hashing,
//! tokens, rate limits and mail; state lives behind the `store` and `cache` traits; `domain`
//! holds the pure rules.

pub mod actors;
pub mod app;
pub mod breach;
pub mod cache;
pub mod calibrate;
pub mod config;
pub mod domain;
pub mod error;
pub mod federation;
pub mod flows;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod store;
pub mod telemetry;
