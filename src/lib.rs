//! authd: an authentication service. See the README for the architecture; in short, HTTP handlers
//! (`http`) call the flows (`auth`), which send messages to the actors (`actors`) that own hashing,
//! tokens and rate limits; state lives behind the `store` and `cache` traits; `domain` holds the
//! pure rules.

pub mod accounts;
pub mod actors;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod store;
pub mod telemetry;
