//! The JWS algorithms authd signs access tokens with, by their JOSE names.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            JwtAlgorithm::HS256 => A::HS256,
            JwtAlgorithm::HS384 => A::HS384,
            JwtAlgorithm::HS512 => A::HS512,
            JwtAlgorithm::RS256 => A::RS256,
            JwtAlgorithm::RS384 => A::RS384,
            JwtAlgorithm::RS512 => A::RS512,
            JwtAlgorithm::PS256 => A::PS256,
            JwtAlgorithm::PS384 => A::PS384,
            JwtAlgorithm::PS512 => A::PS512,
            JwtAlgorithm::ES256 => A::ES256,
            JwtAlgorithm::ES384 => A::ES384,
            JwtAlgorithm::EdDSA => A::EdDSA,
        }
    }

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::PS384 => "PS384",
            JwtAlgorithm::PS512 => "PS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        ALL_ALGORITHMS.iter().copied().find(|a| a.name() == name)
    }
}

pub const ALL_ALGORITHMS: [JwtAlgorithm; 12] = [
    JwtAlgorithm::HS256,
    JwtAlgorithm::HS384,
    JwtAlgorithm::HS512,
    JwtAlgorithm::RS256,
    JwtAlgorithm::RS384,
    JwtAlgorithm::RS512,
    JwtAlgorithm::PS256,
    JwtAlgorithm::PS384,
    JwtAlgorithm::PS512,
    JwtAlgorithm::ES256,
    JwtAlgorithm::ES384,
    JwtAlgorithm::EdDSA,
];
