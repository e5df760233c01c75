//! Sign-in through an outside identity provider (LDAP, SSO): an ID token
//! signed with RS256 or ES256 by a key of a configured JWKS file, for the
//! configured issuer and audience, is exchanged for a Parley session
//! (`POST /v1/sessions/idp`). Parley's own tokens stay HS256 and short;
//! only this exchange reads the provider's.
//!
//! The file is read at start and again when a token names a key id it
//! lacks (a rotation), at most once per [`RELOAD_EVERY`].

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How often an unknown key id may make the JWKS file be read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// Clock skew allowed against the provider's `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;

/// `[idp]` in the config (`PARLEY__IDP__JWKS_FILE`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpSettings {
    /// The provider's public keys, a JWKS document (RFC 7517).
    pub jwks_file: PathBuf,
    /// The `iss` its tokens must carry.
    pub issuer: String,
    /// The `aud` its tokens must carry: Parley's client id there.
    pub audience: String,
    /// The claim that names the Parley user (a valid username).
    #[serde(default = "preferred_username")]
    pub username_claim: String,
}

fn preferred_username() -> String {
    "preferred_username".into()
}

/// Who a valid ID token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `iss` and `sub`: the provider's name for the person, which never
    /// changes, unlike the username.
    pub subject: String,
    pub username: String,
    /// The `name` claim, if any.
    pub name: Option<String>,
    /// When the person last proved who they are (`auth_time`, else the
    /// token's `iat`), in seconds.
    pub authenticated_at: Option<u64>,
}

pub struct Idp {
    settings: IdpSettings,
    keys: RwLock<JwkSet>,
    reloaded: Mutex<Instant>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Idp {
    pub fn load(settings: IdpSettings) -> std::io::Result<Idp> {
        let keys = read(&settings.jwks_file)?;
        Ok(Idp {
            settings,
            keys: RwLock::new(keys),
            reloaded: Mutex::new(Instant::now()),
        })
    }

    /// Checks the token's signature, algorithm, issuer, audience and
    /// expiry; the identity it names.
    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let bad = |why: &str| ApiError::unauthorized(format!("invalid ID token: {why}"));
        let header = decode_header(token).map_err(|_| bad("malformed"))?;
        let kid = header.kid.ok_or_else(|| bad("no key id (kid)"))?;
        let (alg, key) = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.reload();
                self.key(&kid).ok_or_else(|| bad("unknown key id"))?
            }
        };
        // The key decides the algorithm, never the token: `decode` refuses
        // a header naming any other (no HS256 keyed with a public key, no
        // `none`).
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key, &v).map_err(|e| bad(&e.to_string()))?;
        let claim = &self.settings.username_claim;
        let username = data.claims.rest.get(claim).and_then(|v| v.as_str());
        let username = username.ok_or_else(|| bad(&format!("no {claim} claim")))?;
        Ok(Identity {
            subject: format!("{}|{}", self.settings.issuer, data.claims.sub),
            username: username.to_owned(),
            name: data
                .claims
                .rest
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            authenticated_at: ["auth_time", "iat"]
                .iter()
                .find_map(|c| data.claims.rest.get(*c).and_then(|v| v.as_u64())),
        })
    }

    /// The key with id `kid`, and the one algorithm it may sign with.
    fn key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        let keys = self.keys.read().expect("keys");
        let jwk = keys.find(kid)?;
        if let Some(a) = jwk.common.key_algorithm {
            if !matches!(a, KeyAlgorithm::RS256 | KeyAlgorithm::ES256) {
                return None;
            }
        }
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => return None,
        };
        Some((alg, DecodingKey::from_jwk(jwk).ok()?))
    }

    /// Reads the file again, unless that was done a moment ago (a token
    /// with a made-up key id must not make every request read the disk).
    fn reload(&self) {
        let mut at = self.reloaded.lock().expect("reloaded");
        if at.elapsed() < RELOAD_EVERY {
            return;
        }
        *at = Instant::now();
        match read(&self.settings.jwks_file) {
            Ok(keys) => *self.keys.write().expect("keys") = keys,
            Err(e) => tracing::warn!(error = %e, "JWKS file not reloaded; the old keys stay"),
        }
    }
}

fn read(path: &PathBuf) -> std::io::Result<JwkSet> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        let why = format!("{} is not a JWKS document: {e}", path.display());
        std::io::Error::new(std::io::ErrorKind::InvalidData, why)
    })
}
