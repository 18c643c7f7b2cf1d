//! Layered configuration: `config/default.toml`, then `config/$AUTHD_ENV.toml`, then the seed apps'
//! plain variables (`DATABASE_URL`, `JWT_SECRET`, ...), then `AUTHD__SECTION__KEY` variables.
//!
//! Every section denies unknown fields so that a typo stops the start instead of being ignored.

//! `settings` holds the sections, `loading` the layering, `validation` the checks run before
//! anything starts, `reference` the generated documentation of every setting.

mod loading;
mod reference;
mod settings;
mod validation;

pub use loading::*;
pub use reference::*;
pub use settings::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("config error: {0}")]
    Load(String),
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
