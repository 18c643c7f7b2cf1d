//! The authentication flows, as sequences of messages to the actors. No HTTP here and no SQL:
//! handlers call these, these call the actors and the store.

use std::net::IpAddr;
use std::sync::Arc;

use actix::Addr;
use uuid::Uuid;

use crate::actors::hasher::HasherPool;
use crate::actors::tokens::{
    IssuedTokens, Logout, LogoutAll, Rotate, StartSession, TokenActor, VerifyAccess,
};
use crate::domain::claims::AccessClaims;
use crate::domain::user::{Role, User};
use crate::domain::{email, password};
use crate::error::{AppError, FieldError};
use crate::store::{NewUser, Store};

/// Longest password accepted at login, in bytes: longer input is refused before any hashing, so
/// a megabyte "password" cannot buy a megabyte of argon2 input.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;
const MAX_NAME_LENGTH: usize = 200;
const MAX_USER_AGENT_LENGTH: usize = 512;

/// Who is asking, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

pub struct SignupInput {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Clone)]
pub struct AuthService {
    store: Arc<dyn Store>,
    hasher: HasherPool,
    tokens: Addr<TokenActor>,
}

fn check_name(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_LENGTH} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(Some(name.to_string()))
}

impl ClientContext {
    fn session_fields(&self) -> (Option<String>, Option<String>) {
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT_LENGTH).collect());
        (user_agent, self.ip.map(|ip| ip.to_string()))
    }
}

impl AuthService {
    pub fn new(store: Arc<dyn Store>, hasher: HasherPool, tokens: Addr<TokenActor>) -> Self {
        AuthService {
            store,
            hasher,
            tokens,
        }
    }

    async fn start_session(
        &self,
        user: &User,
        client: &ClientContext,
    ) -> Result<IssuedTokens, AppError> {
        let (user_agent, ip) = client.session_fields();
        self.tokens
            .send(StartSession {
                user_id: user.id,
                role: user.role,
                user_agent,
                ip,
            })
            .await?
    }

    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        input: SignupInput,
        client: &ClientContext,
    ) -> Result<(User, IssuedTokens), AppError> {
        let mut problems = Vec::new();
        let email = email::parse(&input.email)
            .map_err(|e| problems.push(FieldError::new("email", e.message())))
            .ok();
        let password = password::check_new(&input.password)
            .map_err(|e| problems.push(FieldError::new("password", e.message())))
            .ok();
        let name = check_name(input.name.as_deref())
            .map_err(|e| problems.push(e))
            .ok()
            .flatten();
        let (Some(email), Some(password)) = (email, password) else {
            return Err(AppError::Validation(problems));
        };
        if !problems.is_empty() {
            return Err(AppError::Validation(problems));
        }

        let password_hash = self.hasher.hash(&password).await?;
        let user = self
            .store
            .create_user(NewUser {
                id: Uuid::new_v4(),
                email,
                name,
                password_hash,
                role: Role::User,
                email_verified: false,
            })
            .await?;
        tracing::info!(user_id = %user.id, "signed up");
        let tokens = self.start_session(&user, client).await?;
        Ok((user, tokens))
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        input: LoginInput,
        client: &ClientContext,
    ) -> Result<(User, IssuedTokens), AppError> {
        let mut problems = Vec::new();
        if let Err(e) = email::parse(&input.email) {
            problems.push(FieldError::new("email", e.message()));
        }
        if input.password.is_empty() {
            problems.push(FieldError::new("password", "is required"));
        } else if input.password.len() > MAX_LOGIN_PASSWORD_BYTES {
            problems.push(FieldError::new("password", "is too long"));
        }
        if !problems.is_empty() {
            return Err(AppError::Validation(problems));
        }

        let account = self.store.user_by_email(&input.email).await?;
        let password = password::normalize(&input.password);
        // Exactly one verification whether or not the account exists: same work, same time.
        let (user, hash) = match account {
            Some(account) => (Some(account.user), Some(account.password_hash)),
            None => (None, None),
        };
        let matches = self.hasher.verify(&password, hash).await?;
        let user = match user {
            Some(user) if matches => user,
            _ => {
                tracing::info!("login failed");
                return Err(AppError::InvalidCredentials);
            }
        };
        if user.locked {
            return Err(AppError::AccountLocked);
        }
        tracing::info!(user_id = %user.id, "logged in");
        let tokens = self.start_session(&user, client).await?;
        Ok((user, tokens))
    }

    pub async fn refresh(&self, presented: String) -> Result<IssuedTokens, AppError> {
        self.tokens.send(Rotate { presented }).await?
    }

    pub async fn verify_access(&self, token: String) -> Result<AccessClaims, AppError> {
        self.tokens.send(VerifyAccess { token }).await?
    }

    pub async fn logout(
        &self,
        refresh: Option<String>,
        access: Option<AccessClaims>,
    ) -> Result<(), AppError> {
        self.tokens.send(Logout { refresh, access }).await?
    }

    pub async fn logout_all(&self, access: AccessClaims) -> Result<usize, AppError> {
        self.tokens
            .send(LogoutAll {
                user_id: access.sub,
                access,
            })
            .await?
    }

    pub async fn me(&self, claims: &AccessClaims) -> Result<User, AppError> {
        // A token can outlive its account by up to its lifetime; the account decides.
        self.store
            .user_by_id(claims.sub)
            .await?
            .ok_or(AppError::TokenInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_blank_means_none() {
        assert_eq!(check_name(Some("  Ada  ")).unwrap(), Some("Ada".into()));
        assert_eq!(check_name(Some("   ")).unwrap(), None);
        assert_eq!(check_name(None).unwrap(), None);
    }

    #[test]
    fn names_refuse_control_characters_and_excess_length() {
        assert!(check_name(Some("Ada\u{0}")).is_err());
        assert!(check_name(Some(&"a".repeat(MAX_NAME_LENGTH + 1))).is_err());
        assert!(check_name(Some(&"é".repeat(MAX_NAME_LENGTH))).is_ok());
    }
}
