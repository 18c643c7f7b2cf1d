//! The flows: what each endpoint does, as steps over the actors and the store. No HTTP and no
//! SQL here; one file per routes file (`account`, `admin`, `auth`, `email_links`, `mfa`,
//! `webhooks`), what they share (`deps`, `pages`), and the outbox, the audit log and the import
//! they write through.

pub mod account;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod deps;
pub mod email_links;
pub mod federation;
pub mod import;
pub mod mfa;
pub mod outbox;
pub mod pages;
pub mod passkeys;
pub mod webhooks;
