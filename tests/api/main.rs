//! Black-box tests: the app on a random port, requests over HTTP, each test on its own database.
//! Every HTTP test runs twice: on PostgreSQL + Redis and on the embedded SQLite + in-process state.
//! The `Store` and `Cache` traits have conformance suites run against each of their backends.

mod account;
mod admin;
mod architecture;
mod attacks;
mod audit;
mod bad_input;
mod breach;
mod cache_conformance;
mod conventions;
mod crash;
mod deployment;
mod email_flows;
mod email_login;
mod embedded;
mod fake_provider;
mod faults;
mod federation;
mod hardening;
mod helpers;
mod jwt;
mod keys;
mod limits;
mod logout;
mod mfa;
mod migrations;
mod multinode;
mod operations;
mod passkeys;
mod processes;
mod refresh;
mod signup_login;
mod smtp;
mod store_conformance;
mod webhooks;
