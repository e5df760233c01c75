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
use parley_engines::egress::is_public;
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

/// Resolves push services' names to public addresses only: an endpoint
/// is a URL any user may name, and must not reach into the deployment's
/// own network.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
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
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect for us, to wherever the URL says.
            .no_proxy();
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
        // The URL reqwest connects to, parsed once: its host is what
        // reqwest dials (`127.1` and `0x7f000001` are 127.0.0.1 here too),
        // and a name goes through `PublicOnly`.
        let url: reqwest::Url = endpoint.parse().map_err(|e| format!("endpoint: {e}"))?;
        let literal = url
            .host_str()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok());
        if !self.private_endpoints && literal.is_some_and(|ip| !is_public(ip)) {
            return Err("the endpoint is not a public address".into());
        }
        let uri: http::Uri = url.as_str().parse().map_err(|e| format!("endpoint: {e}"))?;
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
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
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

    /// The P-256 base point, uncompressed: a valid browser key.
    const P256DH: &str =
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

    /// Every way of writing a loopback or metadata host, against a
    /// listener on loopback that must see no connection: the sink checks
    /// the address it would dial, not the string.
    #[tokio::test]
    async fn no_host_form_reaches_a_private_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let vapid = Vapid::new(&Vapid::generate(), "mailto:ops@example.org").unwrap();
        let push = WebPush::new(vapid, Duration::from_secs(2), false);
        let keys = WebPushKeys {
            p256dh: P256DH.into(),
            auth: URL_SAFE_NO_PAD.encode([7u8; 16]),
        };
        for host in [
            "127.0.0.1",
            "localhost",
            "0x7f000001",
            "2130706433",
            "127.1",
            "0177.0.0.1",
            "0",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::127.0.0.1]",
            "[64:ff9b::7f00:1]",
            "[2002:7f00:1::]",
            "0xa9fea9fe",
        ] {
            for scheme in ["http", "https"] {
                let endpoint = format!("{scheme}://{host}:{port}/push");
                let got = push.send(&endpoint, &keys, b"{}", 0).await;
                assert!(matches!(got, Outcome::Failed(_)), "{endpoint}: {got:?}");
            }
        }
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the loopback listener was reached: {other:?}"),
        }
        // The same sink with private endpoints allowed does reach it:
        // the listener above is a working target.
        let vapid = Vapid::new(&Vapid::generate(), "mailto:ops@example.org").unwrap();
        let open = WebPush::new(vapid, Duration::from_millis(300), true);
        let _ = open
            .send(&format!("http://127.1:{port}/push"), &keys, b"{}", 0)
            .await;
        assert!(listener.accept().is_ok(), "allowed, it connects");
    }
}
