//! Passwords (argon2id) and session tokens (JWT, HS256, with an expiry).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Clone)]
pub struct AuthConfig {
    pub secret: Vec<u8>,
    pub token_ttl_secs: u64,
    /// argon2id memory cost; the default is OWASP's 19 MiB. Lower only for
    /// load tests that create many users.
    pub argon2_memory_kib: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    dev: String,
    iat: u64,
    exp: u64,
}

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub device: DeviceId,
}

impl AuthConfig {
    fn argon(&self) -> Argon2<'static> {
        let params = Params::new(self.argon2_memory_kib, 2, 1, None).expect("valid argon2 params");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes on a blocking thread: argon2id is deliberately slow.
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|_| ApiError::new(parley_schemas::wire::ErrorCode::Internal, "hashing failed"))?
        .map_err(|_| ApiError::new(parley_schemas::wire::ErrorCode::Internal, "hashing failed"))
    }

    pub async fn verify_password(&self, password: String, hash: String) -> bool {
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|h| argon.verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false)
    }

    pub fn issue(&self, caller: Caller) -> String {
        let iat = now_ms() / 1000;
        let claims = Claims {
            sub: caller.user.to_string(),
            dev: caller.device.to_string(),
            iat,
            exp: iat + self.token_ttl_secs,
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        // The edge both issues and checks tokens, so no clock-skew leeway.
        let mut validation = Validation::default();
        validation.leeway = 0;
        let data = decode::<Claims>(token, &DecodingKey::from_secret(&self.secret), &validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let bad = || ApiError::unauthorized("invalid token claims");
        Ok(Caller {
            user: data.claims.sub.parse().map_err(|_| bad())?,
            device: data.claims.dev.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            secret: b"test-secret".to_vec(),
            token_ttl_secs: 60,
            argon2_memory_kib: 1024,
        }
    }

    #[tokio::test]
    async fn passwords_and_tokens() {
        let c = cfg();
        let h = c.hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(c.verify_password("correct horse".into(), h.clone()).await);
        assert!(!c.verify_password("wrong".into(), h).await);
        let caller = Caller {
            user: UserId(7),
            device: DeviceId(2),
        };
        assert_eq!(c.verify(&c.issue(caller)).unwrap(), caller);
        let other = AuthConfig {
            secret: b"other".to_vec(),
            ..cfg()
        };
        assert!(other.verify(&c.issue(caller)).is_err(), "wrong key");
        let now = now_ms() / 1000;
        let old = Claims {
            sub: "7".into(),
            dev: "2".into(),
            iat: now - 100,
            exp: now - 10,
        };
        let expired = encode(
            &Header::default(),
            &old,
            &EncodingKey::from_secret(b"test-secret"),
        )
        .unwrap();
        assert!(c.verify(&expired).is_err(), "expired");
        assert!(c.verify("garbage").is_err());
    }
}
