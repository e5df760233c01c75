//! Sign-in with an outside identity provider: RS256 and ES256 ID tokens,
//! checked against a JWKS file (test keys in tests/fixtures, made with
//! openssl for these tests only), are exchanged for Parley sessions; every
//! token that is not exactly right is refused, and a provider's user never
//! takes over a local account or another subject's name.

mod common;

use std::path::PathBuf;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parley_ingest::idp::IdpSettings;
use serde_json::{json, Value};

const ISSUER: &str = "https://sso.example.test";
const AUDIENCE: &str = "parley";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn key(alg: Algorithm, file: &str) -> EncodingKey {
    let pem = std::fs::read(fixture(file)).unwrap();
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub` named `username`, valid for 5 minutes.
fn claims(sub: &str, username: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "preferred_username": username,
           "name": "From SSO", "iat": now(), "exp": now() + 300})
}

fn signed(alg: Algorithm, kid: &str, file: &str, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    encode(&h, claims, &key(alg, file)).unwrap()
}

fn rs(claims: &Value) -> String {
    signed(Algorithm::RS256, "r1", "idp-rs256.pem", claims)
}

/// A test config that takes this file's provider.
fn with_idp(dir: &std::path::Path) -> parley::Config {
    parley::Config {
        idp: Some(IdpSettings {
            jwks_file: fixture("idp-jwks.json"),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            username_claim: "preferred_username".into(),
        }),
        ..config(dir)
    }
}

async fn exchange(url: &str, id_token: &str) -> (u16, Value) {
    post(
        &format!("{url}/v1/sessions/idp"),
        json!({"id_token": id_token}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_become_sessions_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_idp(dir.path());
    let s = Server::start_with(cfg).await;
    register(&s.url, "alice").await;

    // RS256: the first sign-in makes the account; the session works.
    let (status, v) = exchange(&s.url, &rs(&claims("sub-erin", "erin"))).await;
    assert_eq!(status, 200, "{v}");
    let erin = v["user_id"].clone();
    let token = v["token"].as_str().unwrap();
    let (status, me) = get(&s.url, token, "/v1/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["username"].as_str(), me["display_name"].as_str()),
        (Some("erin"), Some("From SSO"))
    );
    let mut c = Client::connect(&s.url, token).await;
    c.send(json!({"type": "sync"})).await;
    c.close().await;
    // Again: the same user, a new device.
    let (status, again) = exchange(&s.url, &rs(&claims("sub-erin", "erin"))).await;
    assert_eq!((status, &again["user_id"]), (200, &erin));
    assert_ne!(again["device_id"], v["device_id"]);
    // ES256 works too.
    let es = signed(
        Algorithm::ES256,
        "e1",
        "idp-es256.pem",
        &claims("sub-f", "frank"),
    );
    assert_eq!(exchange(&s.url, &es).await.0, 200);

    // A provider's account has no password to guess.
    for password in ["password-1", "", "!idp:https://sso.example.test|sub-erin"] {
        let body = json!({"username": "erin", "password": password});
        let (status, _) = post(&format!("{}/v1/sessions", s.url), body).await;
        assert!(status == 401 || status == 400, "{password}: {status}");
    }
    // Names taken locally or by another subject stay theirs.
    let (status, e) = exchange(&s.url, &rs(&claims("sub-x", "alice"))).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")));
    assert_eq!(exchange(&s.url, &rs(&claims("sub-y", "erin"))).await.0, 409);

    // Every token not exactly right is 401.
    let mut expired = claims("sub-erin", "erin");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = claims("sub-erin", "erin");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("sub-erin", "erin");
    wrong_iss["iss"] = json!("https://evil.example.test");
    let good = claims("sub-erin", "erin");
    let public_as_secret = {
        // The old confusion: HS256 keyed with the provider's public key.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("r1".into());
        let jwks = std::fs::read(fixture("idp-jwks.json")).unwrap();
        encode(&h, &good, &EncodingKey::from_secret(&jwks)).unwrap()
    };
    let bad = [
        ("expired", rs(&expired)),
        ("audience", rs(&wrong_aud)),
        ("issuer", rs(&wrong_iss)),
        (
            "unknown kid",
            signed(Algorithm::RS256, "r9", "idp-rs256.pem", &good),
        ),
        (
            "stranger's key",
            signed(Algorithm::ES256, "e1", "idp-stranger-es256.pem", &good),
        ),
        (
            "RSA key named as the EC one",
            signed(Algorithm::RS256, "e1", "idp-rs256.pem", &good),
        ),
        ("HS256 with a public key", public_as_secret),
        (
            "no username",
            rs(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "exp": now() + 60})),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, t) in bad {
        let (status, e) = exchange(&s.url, &t).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (401, Some("unauthorized")),
            "{what}: {e}"
        );
    }
    let (status, e) = exchange(&s.url, &rs(&claims("sub-z", "Not Valid!"))).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );
    s.stop().await;

    // Without [idp], the route says so.
    let dir = tempfile::tempdir().unwrap();
    let plain = Server::start(dir.path()).await;
    let (status, e) = exchange(&plain.url, &rs(&claims("sub-erin", "erin"))).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_providers_account_takes_a_fresh_id_token_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_idp(dir.path());
    let s = Server::start_with(cfg).await;
    let (status, v) = exchange(&s.url, &rs(&claims("sub-erin", "erin"))).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let delete = |body: Value| {
        let (url, token) = (s.url.clone(), token.clone());
        async move {
            call(
                reqwest::Method::DELETE,
                &format!("{url}/v1/users/me"),
                &token,
                Some(body),
            )
            .await
        }
    };
    // A session alone deletes nothing.
    assert_eq!(delete(json!({})).await.0, 400);
    // Nor a token of another person, nor one of an old sign-in.
    let other = rs(&claims("sub-frank", "frank"));
    assert_eq!(delete(json!({"id_token": other})).await.0, 403);
    let mut old = claims("sub-erin", "erin");
    old["iat"] = json!(now() - 3600);
    assert_eq!(delete(json!({"id_token": rs(&old)})).await.0, 403);
    assert_eq!(
        get(&s.url, &token, "/v1/users/me").await.0,
        200,
        "still there"
    );
    // A fresh one of Erin's does.
    let fresh = rs(&claims("sub-erin", "erin"));
    let (status, v) = delete(json!({"id_token": fresh})).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(get(&s.url, &token, "/v1/users/me").await.0, 401);
    s.stop().await;
}
