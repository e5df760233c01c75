//! A protocol-only harness: a real `parley up` (in process, or as a child
//! process) on 127.0.0.1:0, HTTP through reqwest, WebSockets through
//! tokio-tungstenite. Nothing here reaches inside the server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

mod client;
pub mod cluster;
pub mod media;

// Not every test binary holds a socket.
#[allow(unused_imports)]
pub use client::Client;

pub const WAIT: Duration = Duration::from_secs(15);

pub fn config(data_dir: &Path) -> parley::Config {
    parley::Config {
        data_dir: data_dir.to_path_buf(),
        partitions: 4,
        // Cheap hashing: the tests create many users.
        argon2_memory_kib: 1024,
        ..parley::Config::default()
    }
}

/// Redis for the state and ClickHouse for the history, started for one
/// test (they stop when the first value drops), and a config on them.
pub fn on_redis_and_clickhouse(
    data_dir: &Path,
) -> (
    (
        parley_engines::contract::servers::RedisServer,
        parley_engines::contract::servers::ClickHouseServer,
    ),
    parley::Config,
) {
    use parley_engines::contract::servers::{ClickHouseServer, RedisServer};
    let (redis, clickhouse) = (RedisServer::start(), ClickHouseServer::start());
    let cfg = parley::Config {
        state: Some(redis.url.clone()),
        history: Some(clickhouse.url.clone()),
        ..config(data_dir)
    };
    ((redis, clickhouse), cfg)
}

/// `parley up` in this process.
pub struct Server {
    pub url: String,
    /// The MQTT listener's port, for servers started with one.
    pub mqtt_port: Option<u16>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// `parley up` running in this process on listeners of port 0 (and an
/// MQTT one when asked), until `stop` is sent.
struct Up {
    port: u16,
    mqtt_port: Option<u16>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Up {
    async fn start(cfg: parley::Config, mqtt: bool) -> Up {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mqtt = match mqtt {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let mqtt_port = mqtt.as_ref().map(|l| l.local_addr().unwrap().port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            parley::up_with_mqtt(&cfg, listener, mqtt, async move {
                let _ = stopped.await;
            })
            .await
        });
        Up {
            port,
            mqtt_port,
            stop,
            task,
        }
    }
}

impl Server {
    pub async fn start(data_dir: &Path) -> Server {
        Server::start_with(config(data_dir)).await
    }

    pub async fn start_with(cfg: parley::Config) -> Server {
        Server::start_serving(cfg, false).await
    }

    /// With an MQTT listener too, on a port of its own.
    pub async fn start_with_mqtt(cfg: parley::Config) -> Server {
        Server::start_serving(cfg, true).await
    }

    async fn start_serving(cfg: parley::Config, mqtt: bool) -> Server {
        let data_dir = cfg.data_dir.clone();
        let up = Up::start(cfg, mqtt).await;
        let mut server = Server {
            url: format!("http://127.0.0.1:{}", up.port),
            mqtt_port: up.mqtt_port,
            data_dir: data_dir.to_path_buf(),
            stop: Some(up.stop),
            task: Some(up.task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.task.as_ref().unwrap().is_finished() {
                let r = self.task.take().unwrap().await.unwrap();
                panic!("parley up stopped before it was ready: {r:?}");
            }
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.url)).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful stop: waits until every role has stopped.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// `parley up` with TLS on a fresh self-signed certificate for
/// `localhost`, and an MQTT listener (TLS too) when asked for.
pub struct TlsServer {
    /// `https://localhost:PORT`.
    pub url: String,
    pub port: u16,
    pub mqtt_port: Option<u16>,
    /// A client that trusts the certificate.
    pub https: reqwest::Client,
    pub cert: rcgen::CertifiedKey,
    /// The certificate's PEM file.
    pub cert_path: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsServer {
    /// `tweak` changes the config before it starts.
    pub async fn start(
        dir: &Path,
        mqtt: bool,
        tweak: impl FnOnce(&mut parley::Config),
    ) -> TlsServer {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let mut cfg = config(&dir.join("data"));
        cfg.tls_cert = Some(cert_path.clone());
        cfg.tls_key = Some(key_path);
        tweak(&mut cfg);
        let up = Up::start(cfg, mqtt).await;
        let (port, mqtt_port) = (up.port, up.mqtt_port);
        let https = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let url = format!("https://localhost:{port}");
        eventually("ready over https", WAIT, || async {
            let r = https.get(format!("{url}/readyz")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        TlsServer {
            url,
            port,
            mqtt_port,
            https,
            cert,
            cert_path,
            stop: up.stop,
            task: up.task,
        }
    }

    /// Signs `name` up and in over HTTPS: its user id and token.
    pub async fn user(&self, name: &str) -> (String, String) {
        let body = json!({"username": name, "password": "password-1"});
        let r = self
            .https
            .post(format!("{}/v1/users", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let session: Value = self
            .https
            .post(format!("{}/v1/sessions", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            session["user_id"].as_str().unwrap().to_owned(),
            session["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

pub struct User {
    pub id: String,
    pub name: String,
}

pub async fn register(url: &str, name: &str) -> User {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/users"))
        .json(&json!({"username": name, "password": "password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register {name}");
    let v: Value = r.json().await.unwrap();
    User {
        id: v["user_id"].as_str().unwrap().to_owned(),
        name: name.to_owned(),
    }
}

/// The two users most tests need.
pub async fn alice_and_bob(url: &str) -> (User, User) {
    (register(url, "alice").await, register(url, "bob").await)
}

/// Alice, Bob and Carol, signed up and each signed in on one device:
/// the users, then their tokens.
pub async fn three_signed_in(url: &str) -> ([User; 3], [String; 3]) {
    let (alice, bob) = alice_and_bob(url).await;
    let carol = register(url, "carol").await;
    let mut tokens = Vec::new();
    for name in ["alice", "bob", "carol"] {
        tokens.push(login(url, name, None).await.0);
    }
    let [at, bt, ct] = <[String; 3]>::try_from(tokens).expect("three");
    ([alice, bob, carol], [at, bt, ct])
}

/// `POST /v1/sessions`: the status and the answer.
pub async fn sign_in(url: &str, name: &str, device: Option<&str>) -> (u16, Value) {
    let mut body = json!({"username": name, "password": "password-1"});
    if let Some(d) = device {
        body["device_id"] = json!(d);
    }
    post(&format!("{url}/v1/sessions"), body).await
}

/// An unauthenticated `POST` of a JSON body to the full `url`: the status
/// and the JSON answer (`null` if there is none).
pub async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A session; `device` reuses a device id (its cursor) when given.
pub async fn login(url: &str, name: &str, device: Option<&str>) -> (String, String) {
    let (status, v) = sign_in(url, name, device).await;
    assert_eq!(status, 200, "{v}");
    (
        v["token"].as_str().unwrap().to_owned(),
        v["device_id"].as_str().unwrap().to_owned(),
    )
}

/// The sum of a metric's series with `label` on /metrics (0 if absent).
pub async fn metric(url: &str, name: &str, label: &str) -> f64 {
    metrics_text(url)
        .await
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// For the tests of one binary that wait on a process-wide counter (the
/// Prometheus registry is the process's, shared by every in-process
/// server): holding this, they run one at a time, and each waits on its
/// counter's change since it began, so no other test's server can satisfy
/// its wait.
pub async fn counters_to_myself() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE_AT_A_TIME.lock().await
}

/// The `Retry-After` of an answer, in seconds (panics if it has none).
pub fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A node's `/metrics`, as text.
pub async fn metrics_text(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Polls `f` until it returns `Some`, for what the server makes visible a
/// moment later (history, rebuilt state); panics after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET url+path` with a bearer token: the status and the JSON body
/// (`null` if there is none).
pub async fn get(url: &str, token: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::GET, &format!("{url}{path}"), token, None).await
}

/// Any call to the full `url` with a bearer token and an optional JSON
/// body: the status and the JSON answer (`null` if there is none).
pub async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `token`'s user adds `user_id` as a contact; the status.
pub async fn add_contact(url: &str, token: &str, user_id: &str) -> u16 {
    let body = json!({"user_id": user_id});
    let path = format!("{url}/v1/contacts");
    call(reqwest::Method::POST, &path, token, Some(body))
        .await
        .0
}

/// `token`'s user blocks `user_id`; the status.
pub async fn block(url: &str, token: &str, user_id: &str) -> u16 {
    let path = format!("{url}/v1/blocks/{user_id}");
    call(reqwest::Method::PUT, &path, token, None).await.0
}

/// Every msg_id of `cid` in scrollback, newest first.
pub async fn scrollback(url: &str, token: &str, cid: &str) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let before = out
            .last()
            .map(|m| format!("&before={m}"))
            .unwrap_or_default();
        let path = format!("/v1/conversations/{cid}/messages?limit=200{before}");
        let (status, page) = get(url, token, &path).await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["msg_id"].as_str().unwrap().parse().unwrap())
            .collect();
        if ids.is_empty() {
            return out;
        }
        out.extend(ids);
    }
}

/// Creates a group of the caller and `members`; its id.
pub async fn create_group(url: &str, token: &str, name: &str, members: &[&str]) -> String {
    let (status, v) = call(
        reqwest::Method::POST,
        &format!("{url}/v1/groups"),
        token,
        Some(json!({"name": name, "members": members})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let g = v["group_id"].as_str().unwrap().to_owned();
    assert_eq!(v["conversation_id"], format!("g:{g}"));
    g
}

/// A `send` frame to a group.
pub fn send_frame(group: &str, cid: &str, text: &str) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": {"group": group}, "body": {"text": text}})
}

/// A `send` frame of a text message to a user.
pub fn text_to(to: &str, cid: &str, text: &str) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": {"user": to}, "body": {"text": text}})
}

pub fn direct(a: &str, b: &str) -> String {
    let (x, y): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    format!("d:{}:{}", x.min(y), x.max(y))
}

/// `parley up` as a child process on `data_dir`, with more environment
/// (`PARLEY__...`); returns it with the URL it printed.
pub fn spawn_up(data_dir: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("PARLEY__ARGON2_MEMORY_KIB", "1024")
        .env("PARLEY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start parley");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("parley printed its address").unwrap();
        if let Some(url) = line.strip_prefix("parley listening on ") {
            break url.to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}
