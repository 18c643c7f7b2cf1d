//! Pure rules of authentication: no I/O, no clocks except where passed in.

pub mod assurance;
pub mod claims;
pub mod client;
pub mod email;
pub mod email_code;
pub mod federation;
pub mod jwt_algorithm;
pub mod limits;
pub mod lockout;
pub mod messages;
pub mod mfa;
pub mod one_time;
pub mod opaque_token;
pub mod password;
pub mod retry;
pub mod rotation;
pub mod user;
pub mod webhooks;
