//! Benchmarks (criterion, under `benches/benches/`) and load generators.
//! Each figure they produce is recorded in `docs/benchmarks.md` with the
//! command that produced it; `src/` holds what the benches share.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Registers `name` (or finds it registered) and signs in: `(user_id, token)`.
pub async fn session(http: &reqwest::Client, url: &str, name: &str) -> Result<(String, String)> {
    let body = json!({"username": name, "password": "loadgen-password"});
    let r = http
        .post(format!("{url}/v1/users"))
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() && r.status() != 409 {
        bail!("register {name}: {}", r.status());
    }
    let v: Value = http
        .post(format!("{url}/v1/sessions"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        v["user_id"].as_str().context("user_id")?.to_owned(),
        v["token"].as_str().context("token")?.to_owned(),
    ))
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `url` (an `http://` base) with `token`.
pub async fn connect(url: &str, token: &str) -> Result<Ws> {
    let ws = format!("{}/v1/ws?token={token}", url.replacen("http", "ws", 1));
    // tungstenite zeroes its whole read buffer (128 KiB by default) before
    // each read; with thousands of clients on the server's cores that
    // memset was a sixth of the machine's time. Frames here are small.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    Ok(
        tokio_tungstenite::connect_async_with_config(ws, Some(config), false)
            .await
            .context("websocket connect")?
            .0,
    )
}

/// A suffix that keeps user names of separate runs apart.
pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ std::process::id() as u64
}
