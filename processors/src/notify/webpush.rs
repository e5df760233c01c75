//! The Web Push sink: a browser's subscription gets the notification's
//! JSON through its push service (RFC 8030), encrypted for the browser
//! alone (RFC 8291 `aes128gcm`, by `web-push-native`), and signed by this
//! deployment (RFC 8292 VAPID: an ES256 JWT for the push service's
//! origin, with the public key the browser subscribed with).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_schemas::wire::WebPushKeys;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use super::Outcome;

/// How long a push service keeps a notification for a browser that is
/// off (`TTL`): a day, then it is stale.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// A VAPID token's life; RFC 8292 caps it at 24 hours.
const TOKEN_SECS: u64 = 12 * 60 * 60;

/// This deployment's VAPID identity: a P-256 key and a contact.
#[derive(Clone)]
pub struct Vapid {
    key: EncodingKey,
    /// The public key, base64url of the uncompressed point: what browsers
    /// subscribe with (`applicationServerKey`) and the `k` of each request.
    public: String,
    /// `mailto:` or `https:` contact for push services' operators.
    subject: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl Vapid {
    /// A new private key: base64url of PKCS#8 DER, as
    /// `notify.webpush_key` holds it.
    pub fn generate() -> String {
        let der =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("the system's random source");
        URL_SAFE_NO_PAD.encode(der.as_ref())
    }

    /// The identity of `key` (as [`generate`](Self::generate) makes it)
    /// with contact `subject`.
    pub fn new(key: &str, subject: &str) -> Result<Vapid, String> {
        let pkcs8 = decoded(key.trim()).map_err(|_| "the VAPID key is not base64url".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| format!("the VAPID key is not a PKCS#8 P-256 key: {e}"))?;
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err("notify.webpush_subject must be a mailto: or https: URL".into());
        }
        Ok(Vapid {
            key: EncodingKey::from_ec_der(&pkcs8),
            public: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            subject: subject.to_owned(),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push service at `origin`.
    fn authorization(&self, origin: &str, now_secs: u64) -> Result<String, String> {
        let claims = Claims {
            aud: origin,
            exp: now_secs + TOKEN_SECS,
            sub: &self.subject,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(|e| format!("signing the VAPID token: {e}"))?;
        Ok(format!("vapid t={jwt}, k={}", self.public))
    }
}

pub struct WebPush {
    http: reqwest::Client,
    vapid: Vapid,
    /// Endpoints on loopback and private addresses are called too (a
    /// push service inside the deployment's network, or a test's).
    private_endpoints: bool,
}

/// Whether `ip` is one the public Internet cannot route to: loopback,
/// private, link-local, unique-local, unspecified, shared (CGNAT).
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Resolves push services' names to public addresses only: an endpoint
/// is a URL any user may name, and must not reach into the deployment's
/// own network.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

fn decoded(v: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| format!("a subscription key is not base64url: {e}"))
}

impl WebPush {
    pub fn new(vapid: Vapid, timeout: Duration, private_endpoints: bool) -> WebPush {
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect could lead anywhere: push services answer, not redirect.
            .redirect(reqwest::redirect::Policy::none());
        if !private_endpoints {
            http = http.dns_resolver(Arc::new(PublicOnly));
        }
        WebPush {
            http: http.build().expect("an HTTP client with a timeout"),
            vapid,
            private_endpoints,
        }
    }

    /// One attempt to hand `body` to the push service of `endpoint`.
    pub async fn send(&self, endpoint: &str, keys: &WebPushKeys, body: &[u8], now: u64) -> Outcome {
        let request = match self.request(endpoint, keys, body, now) {
            Ok(r) => r,
            // A subscription that cannot be encrypted for never will be.
            Err(e) => return Outcome::Failed(e),
        };
        match self.http.execute(request).await {
            Ok(r) if r.status().is_success() => Outcome::Taken,
            // The browser unsubscribed, or the subscription expired.
            Ok(r) if r.status() == 404 || r.status() == 410 => Outcome::Gone,
            Ok(r) => Outcome::Failed(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Outcome::Failed("timed out".into()),
            Err(e) => Outcome::Failed(format!("{e}")),
        }
    }

    fn request(
        &self,
        endpoint: &str,
        keys: &WebPushKeys,
        body: &[u8],
        now: u64,
    ) -> Result<reqwest::Request, String> {
        let uri: http::Uri = endpoint.parse().map_err(|e| format!("endpoint: {e}"))?;
        // Names go through `PublicOnly`; addresses written out do not.
        let literal = uri
            .host()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok());
        if !self.private_endpoints && literal.is_some_and(is_private) {
            return Err("the endpoint is a private address".into());
        }
        let public = PublicKey::from_sec1_bytes(&decoded(&keys.p256dh)?)
            .map_err(|_| "keys.p256dh is not a P-256 point".to_owned())?;
        let auth = decoded(&keys.auth)?;
        if auth.len() != 16 {
            return Err("keys.auth is not 16 bytes".into());
        }
        let built = WebPushBuilder::new(uri.clone(), public, *Auth::from_slice(&auth))
            .with_valid_duration(TTL)
            .build(body.to_vec())
            .map_err(|e| format!("encrypting: {e}"))?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let (parts, payload) = built.into_parts();
        let mut request = reqwest::Request::new(
            reqwest::Method::POST,
            endpoint.parse().map_err(|e| format!("endpoint: {e}"))?,
        );
        *request.headers_mut() = parts.headers;
        request.headers_mut().insert(
            reqwest::header::AUTHORIZATION,
            self.vapid
                .authorization(&origin, now / 1000)?
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
        *request.body_mut() = Some(payload.into());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_told_apart() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "2606:4700::1111", "142.250.1.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
