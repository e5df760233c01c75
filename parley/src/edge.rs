//! The edge of `up` and `ingest` built from the config: its listeners
//! (TLS, the ops listener), its token key, and its parts.

use super::*;
use parley_processors::notify::webpush::Vapid;

/// An edge's ops listener (`ops_listen`): health, readiness and metrics
/// apart from the public API.
pub(crate) struct Ops {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How the edge's public listener serves (TLS if configured), and its ops
/// listener if one is configured.
pub(crate) async fn serving(cfg: &Config) -> Result<(ServeOptions, Option<Ops>)> {
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(
            parley_ingest::serve::tls_acceptor(cert, key)
                .with_context(|| format!("TLS from {} and {}", cert.display(), key.display()))?,
        ),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both tls_cert and tls_key"),
    };
    let opts = ServeOptions::plain(&cfg.limits).with_tls(tls);
    let Some(addr) = cfg.ops_listen else {
        return Ok((opts, None));
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the ops listener {addr}"))?;
    println!("parley ops listening on http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let plain = ServeOptions::plain(&cfg.limits);
    let task = tokio::spawn(parley_ingest::serve::serve(
        listener,
        parley_ingest::http::ops_router(),
        plain,
        stop.clone().cancelled_owned(),
    ));
    Ok((opts, Some(Ops { stop, task })))
}

/// The edge's MQTT listener, when there is one.
pub(crate) struct MqttListener {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves MQTT on `given`, else on `mqtt_listen` if set; TLS as the
/// edge's listener has it.
pub(crate) async fn mqtt_listener(
    cfg: &Config,
    edge: &Arc<Edge>,
    given: Option<TcpListener>,
) -> Result<Option<MqttListener>> {
    let listener = match (given, cfg.mqtt_listen) {
        (Some(l), _) => l,
        (None, Some(addr)) => TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the MQTT listener {addr}"))?,
        (None, None) => return Ok(None),
    };
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(
            parley_ingest::serve::tls_acceptor_for(cert, key, &[b"mqtt"])
                .with_context(|| format!("TLS from {} and {}", cert.display(), key.display()))?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
    println!(
        "parley mqtt listening on {scheme}://{}",
        listener.local_addr()?
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(parley_ingest::mqtt::serve(
        listener,
        edge.clone(),
        tls,
        stop.clone().cancelled_owned(),
    ));
    Ok(Some(MqttListener { stop, task }))
}

pub(crate) async fn stop_mqtt(mqtt: Option<MqttListener>) {
    if let Some(m) = mqtt {
        m.stop.cancel();
        let _ = m.task.await;
    }
}

pub(crate) async fn stop_ops(ops: Option<Ops>) {
    if let Some(ops) = ops {
        ops.stop.cancel();
        let _ = ops.task.await;
    }
}

/// The token key: from config, else generated once into the data dir.
fn jwt_secret(cfg: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &cfg.jwt_secret {
        // HS256 with a short key is open to offline guessing (RFC 7518
        // 3.2 asks for at least the hash's 256 bits).
        anyhow::ensure!(
            s.len() >= 32,
            "jwt_secret must be at least 32 bytes (it has {}); omit it to have one generated",
            s.len()
        );
        return Ok(s.as_bytes().to_vec());
    }
    let path = cfg.data_dir.join("jwt.secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
            write_private(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The Web Push identity, when `notify.webpush_subject` is set: its key
/// from config, else made once into `<data_dir>/vapid.key`.
pub(crate) fn vapid(cfg: &Config) -> Result<Option<Vapid>> {
    let Some(subject) = &cfg.notify.webpush_subject else {
        return Ok(None);
    };
    let key = match &cfg.notify.webpush_key {
        Some(k) => k.clone(),
        None => {
            let path = cfg.data_dir.join("vapid.key");
            match std::fs::read_to_string(&path) {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = Vapid::generate();
                    write_private(&path, key.as_bytes())?;
                    key
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
    };
    let vapid = Vapid::new(&key, subject).map_err(anyhow::Error::msg);
    Ok(Some(vapid.context("notify.webpush_key")?))
}

/// A cluster's nodes must sign Web Push with the one key browsers
/// subscribed to: a key per data dir would not do.
pub(crate) fn shared_vapid_key(cfg: &Config) -> Result<()> {
    if cfg.notify.webpush_subject.is_some() && cfg.notify.webpush_key.is_none() {
        anyhow::bail!(
            "every node of a cluster must share the Web Push key: set notify.webpush_key \
             (PARLEY__NOTIFY__WEBPUSH_KEY; `parley vapid-key` prints a new one)"
        );
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// The edge of `up` and of `ingest`: the same parts, but where pushes go
/// (`pusher`: the hub itself in one process, the session registry in a
/// cluster).
pub(crate) fn build_edge(
    cfg: &Config,
    engines: &Engines,
    hub: Arc<Hub>,
    pusher: Arc<dyn Pusher>,
) -> Result<Arc<Edge>> {
    let ids = Arc::new(MessageIdGenerator::new(cfg.node_id).context("node_id")?);
    Ok(Edge::new(EdgeParts {
        log: engines.log.clone(),
        state: engines.state.clone(),
        history: engines.history.clone(),
        blobs: engines.blobs.clone(),
        hub,
        auth: auth_config(cfg)?,
        ids,
        partitions: engines.partitions,
        cluster: engines.cluster.clone(),
        pusher,
        limits: cfg.limits.clone(),
        idp: match &cfg.idp {
            Some(settings) => {
                let idp = parley_ingest::idp::Idp::load(settings.clone())
                    .with_context(|| format!("[idp] jwks_file {}", settings.jwks_file.display()))?;
                Some(Arc::new(idp))
            }
            None => None,
        },
        retention: cfg.retention.mode,
        vapid_public: vapid(cfg)?.map(|v| v.public_key().to_owned()),
        push_private_endpoints: cfg.notify.webpush_private_endpoints,
    }))
}

fn auth_config(cfg: &Config) -> Result<AuthConfig> {
    Ok(AuthConfig {
        secret: jwt_secret(cfg)?,
        token_ttl_secs: cfg.token_ttl_secs,
        refresh_ttl_secs: cfg.refresh_ttl_secs,
        session_max_secs: cfg.session_max_secs,
        argon2_memory_kib: cfg.argon2_memory_kib,
    })
}
