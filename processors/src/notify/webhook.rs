//! The signed webhook: a POST of the notification's JSON to the
//! deployment's gateway (which holds the FCM or APNs credentials), with
//! `Parley-Signature: t=<ms>,v1=<hex>`, where the hex is
//! HMAC-SHA256(secret, `"<t>.<body>"`). The gateway recomputes it, compares
//! in constant time, and refuses a `t` far from its clock (a replay):
//! [`verify`] does exactly that, for gateways written in Rust and for tests.

use std::time::Duration;

use hmac::{Hmac, Mac};

use super::Outcome;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "parley-signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: u64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The signature header's value for `body` sent at `t` (ms).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Whether `header` signs `body` with `secret`, at a `t` within
/// `tolerance_ms` of `now`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance_ms: u64) -> bool {
    let mut t = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => tag = decode_hex(v),
            _ => {}
        }
    }
    let (Some(t), Some(tag)) = (t, tag) else {
        return false;
    };
    now.abs_diff(t) <= tolerance_ms && mac(secret, t, body).verify_slice(&tag).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl Webhook {
    pub fn new(url: String, secret: &str, timeout: Duration) -> Webhook {
        Webhook {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client with a timeout"),
            url,
            secret: secret.as_bytes().to_vec(),
        }
    }

    pub async fn send(&self, body: &[u8], now: u64) -> Outcome {
        let r = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, now, body))
            .body(body.to_vec())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => Outcome::Taken,
            Ok(r) if r.status() == 404 || r.status() == 410 => Outcome::Gone,
            Ok(r) => Outcome::Failed(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Outcome::Failed("timed out".into()),
            Err(e) => Outcome::Failed(format!("{e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_is_detected() {
        let (key, body) = (b"k".repeat(32), br#"{"id":"1"}"#);
        let h = sign(&key, 1_000, body);
        assert!(verify(&key, &h, body, 1_500, 60_000));
        assert!(!verify(&key, &h, br#"{"id":"2"}"#, 1_500, 60_000), "body");
        assert!(!verify(
            b"another key of thirty-two bytes!",
            &h,
            body,
            1_500,
            60_000
        ));
        assert!(
            !verify(&key, &h, body, 1_000 + 60_001, 60_000),
            "a replay, late"
        );
        let moved = h.replace("t=1000", "t=1001");
        assert!(!verify(&key, &moved, body, 1_500, 60_000), "timestamp");
        assert!(!verify(&key, "t=1000", body, 1_500, 60_000), "no tag");
        assert!(!verify(&key, "garbage", body, 1_500, 60_000));
    }
}
