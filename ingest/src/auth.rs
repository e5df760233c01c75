//! Passwords (argon2id) and tokens (JWT, HS256, with an expiry). Three
//! kinds, told apart by their audience: short access tokens, refresh
//! tokens that each work once, and the edge-only tokens that carry a
//! forwarded send between edges. Access and refresh tokens name the
//! device's sign-in (`sid`) they belong to; the edge checks it against the
//! device's session (signed out, or signed in again) on every use.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use parley_schemas::ids::{now_ms, DeviceId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The audience of access tokens, of refresh tokens, and of edge-to-edge
/// forwards.
pub const ACCESS: &str = "parley";
pub const REFRESH: &str = "parley-refresh";
pub const EDGE: &str = "parley-edge";

/// How long an edge-to-edge token lives: one forward.
pub const EDGE_TOKEN_SECS: u64 = 60;

#[derive(Clone)]
pub struct AuthConfig {
    pub secret: Vec<u8>,
    /// Lifetime of access tokens (15 minutes by default).
    pub token_ttl_secs: u64,
    /// Lifetime of refresh tokens.
    pub refresh_ttl_secs: u64,
    /// How long a sign-in lasts, however often it is refreshed: then the
    /// device signs in again.
    pub session_max_secs: u64,
    /// argon2id memory cost; the default is OWASP's 19 MiB. Lower only for
    /// load tests that create many users.
    pub argon2_memory_kib: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    dev: String,
    /// The device's sign-in this token belongs to.
    #[serde(default)]
    sid: u64,
    /// A refresh token's place in its chain.
    #[serde(default)]
    gen: u64,
    /// When the sign-in began (seconds); tokens from before it was
    /// carried count from their own `iat`.
    #[serde(default)]
    auth: u64,
    aud: String,
    iat: u64,
    exp: u64,
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub caller: Caller,
    pub sid: u64,
    pub gen: u64,
    /// When the sign-in began, in seconds.
    pub auth_time: u64,
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

    fn sign(&self, caller: Caller, sid: u64, gen: u64, aud: &str, ttl: u64, auth: u64) -> String {
        let iat = now_ms() / 1000;
        let claims = Claims {
            sub: caller.user.to_string(),
            dev: caller.device.to_string(),
            sid,
            gen,
            auth,
            aud: aud.to_owned(),
            iat,
            exp: iat + ttl,
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .expect("HS256 signing cannot fail")
    }

    /// An access token of sign-in `sid`.
    pub fn access(&self, caller: Caller, sid: u64) -> String {
        self.sign(caller, sid, 0, ACCESS, self.token_ttl_secs, 0)
    }

    /// Refresh token `gen` of sign-in `sid`, which began at `auth_time`:
    /// it expires with the refresh lifetime, or with the sign-in's, if
    /// that comes first.
    pub fn refresh(&self, caller: Caller, sid: u64, gen: u64, auth_time: u64) -> String {
        let now = now_ms() / 1000;
        let left = (auth_time + self.session_max_secs).saturating_sub(now);
        let ttl = self.refresh_ttl_secs.min(left);
        self.sign(caller, sid, gen, REFRESH, ttl, auth_time)
    }

    /// Whether a sign-in that began at `auth_time` is past its lifetime.
    pub fn session_over(&self, auth_time: u64) -> bool {
        now_ms() / 1000 >= auth_time.saturating_add(self.session_max_secs)
    }

    /// A token for one forward to another edge, which only edges accept.
    pub fn edge(&self, caller: Caller) -> String {
        self.sign(caller, 0, 0, EDGE, EDGE_TOKEN_SECS, 0)
    }

    /// Checks the signature, the expiry and the audience.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Verified, ApiError> {
        // The edge both issues and checks tokens, so no clock-skew leeway.
        let mut validation = Validation::default();
        validation.leeway = 0;
        validation.set_audience(&[audience]);
        let data = decode::<Claims>(token, &DecodingKey::from_secret(&self.secret), &validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let bad = || ApiError::unauthorized("invalid token claims");
        Ok(Verified {
            caller: Caller {
                user: data.claims.sub.parse().map_err(|_| bad())?,
                device: data.claims.dev.parse().map_err(|_| bad())?,
            },
            sid: data.claims.sid,
            gen: data.claims.gen,
            auth_time: match data.claims.auth {
                0 => data.claims.iat,
                t => t,
            },
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
            refresh_ttl_secs: 600,
            session_max_secs: 3600,
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
        let v = c.verify(&c.access(caller, 3), ACCESS).unwrap();
        assert_eq!((v.caller, v.sid), (caller, 3));
        let r = c
            .verify(&c.refresh(caller, 3, 7, now_ms() / 1000), REFRESH)
            .unwrap();
        assert_eq!((r.sid, r.gen), (3, 7));
        // Each kind only where it belongs.
        assert!(c
            .verify(&c.refresh(caller, 3, 7, now_ms() / 1000), ACCESS)
            .is_err());
        assert!(c.verify(&c.access(caller, 3), REFRESH).is_err());
        assert!(c.verify(&c.edge(caller), ACCESS).is_err());
        assert_eq!(c.verify(&c.edge(caller), EDGE).unwrap().caller, caller);
        let other = AuthConfig {
            secret: b"other".to_vec(),
            ..cfg()
        };
        assert!(
            other.verify(&c.access(caller, 1), ACCESS).is_err(),
            "wrong key"
        );
        let now = now_ms() / 1000;
        let old = Claims {
            sub: "7".into(),
            dev: "2".into(),
            sid: 1,
            gen: 0,
            auth: 0,
            aud: ACCESS.into(),
            iat: now - 100,
            exp: now - 10,
        };
        let expired = encode(
            &Header::default(),
            &old,
            &EncodingKey::from_secret(b"test-secret"),
        )
        .unwrap();
        assert!(c.verify(&expired, ACCESS).is_err(), "expired");
        assert!(c.verify("garbage", ACCESS).is_err());
    }
}
