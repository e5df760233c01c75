//! Configuration in layers: built-in defaults, then an optional TOML file
//! (`--config` or `PARLEY_CONFIG`), then `PARLEY__*` environment variables
//! (`PARLEY__LISTEN`, `PARLEY__LOG`, ...), then command-line flags. `parley
//! up` needs none of them.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use parley_engines::Durability;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP and WebSocket edge listens.
    pub listen: SocketAddr,
    /// The address other edges reach this one at, for forwarded sends;
    /// default: the address it listens on.
    pub advertise: Option<String>,
    /// Home of the embedded engines and generated secrets.
    pub data_dir: PathBuf,
    /// This node's id (0..1024): part of every message id it issues.
    pub node_id: u16,
    /// Log backend URL; default `file://<data_dir>/log`.
    pub log: Option<String>,
    /// State backend URL; default `file://<data_dir>/state.redb`.
    pub state: Option<String>,
    /// History backend URL; default `file://<data_dir>/history.redb`.
    pub history: Option<String>,
    /// Media blob store URL; default `file://<data_dir>/media`. Every
    /// edge and processor of a cluster must reach the same one (S3, or
    /// one shared directory).
    pub media: Option<String>,
    /// How often the media sweeper deletes what nothing refers to
    /// (`limits.media_unsent_ms`, `limits.media_session_ms`).
    pub media_sweep_every_ms: u64,
    /// A blob no upload refers to any more is deleted after this.
    pub media_blob_grace_ms: u64,
    /// `fsync` (default) or `os` (benchmarks only: no fsync before ack).
    pub durability: Durability,
    /// The embedded log's segment size: retention drops whole segments.
    pub log_segment_bytes: u64,
    /// The envelope version this node writes log records in: the
    /// newest by default; an older one for the first step of a release
    /// that changes a layout (deploy/README.md, "Rolling upgrades").
    pub log_write_version: u8,
    /// Log retention, and how long history and media are kept
    /// (`[retention]`); docs/retention.md.
    pub retention: parley_processors::retention::RetentionConfig,
    /// Partitions per topic when `migrate` or `up` creates them.
    pub partitions: u32,
    /// HS256 key for session tokens; by default one is generated once and
    /// kept in `<data_dir>/jwt.secret`.
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens; clients renew them with their refresh
    /// token (`POST /v1/sessions/refresh`).
    pub token_ttl_secs: u64,
    /// Lifetime of a refresh token (each works once).
    pub refresh_ttl_secs: u64,
    /// Lifetime of a sign-in, however often it is refreshed: a stolen
    /// refresh chain ends with it.
    pub session_max_secs: u64,
    /// argon2id memory cost in KiB (OWASP's 19 MiB by default).
    pub argon2_memory_kib: u32,
    /// Groups with more current members than this get read fan-out (one
    /// stored copy per message, members' inboxes point at it); smaller
    /// ones write fan-out (a copy per member). See ARCHITECTURE.md.
    pub group_read_fanout_above: usize,
    /// TLS on the edge's listener: a PEM certificate chain and its key
    /// (`--tls-cert`, `--tls-key`, `PARLEY__TLS_CERT`, `PARLEY__TLS_KEY`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A second listener for `/healthz`, `/readyz` and `/metrics` only
    /// (`--ops-listen`); when set, the public listener stops serving
    /// `/metrics`. Every manifest in deploy/ sets it.
    pub ops_listen: Option<SocketAddr>,
    /// Without an ops listener, serve `/metrics` on the public one (the
    /// client contract lists `GET /metrics`); `false` serves it nowhere.
    pub public_metrics: bool,
    /// An MQTT listener for app clients (`--mqtt-listen`), with TLS when
    /// the edge has it; docs/mqtt.md. Off by default. MQTT over WebSocket
    /// is always at `/v1/mqtt` on the edge's listener.
    pub mqtt_listen: Option<SocketAddr>,
    /// Every limit on what a client sends or holds open (`[limits]`,
    /// `PARLEY__LIMITS__SENDS_PER_SEC`, ...); docs/security.md.
    pub limits: parley_ingest::Limits,
    /// Sign-in with an outside identity provider's RS256/ES256 ID tokens,
    /// checked against a JWKS file (`[idp]`, `PARLEY__IDP__JWKS_FILE`,
    /// `..._ISSUER`, `..._AUDIENCE`); off by default. docs/security.md.
    pub idp: Option<parley_ingest::idp::IdpSettings>,
    /// Notifications for users who are away (`[notify]`: `webhook_url`,
    /// `webhook_secret`, retries, collapse window); off without a sink.
    pub notify: parley_processors::notify::NotifyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            advertise: None,
            data_dir: PathBuf::from("./parley-data"),
            node_id: 0,
            log: None,
            state: None,
            history: None,
            media: None,
            media_sweep_every_ms: 600_000,
            media_blob_grace_ms: 3_600_000,
            durability: Durability::Fsync,
            log_segment_bytes: 64 << 20,
            log_write_version: parley_schemas::codec::VERSION,
            retention: parley_processors::retention::RetentionConfig::default(),
            // Measured best for one 2-core machine (docs/benchmarks.md);
            // a deployment that will scale out sets more.
            partitions: 4,
            jwt_secret: None,
            token_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            session_max_secs: 90 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            group_read_fanout_above: parley_processors::router::READ_FANOUT_ABOVE,
            tls_cert: None,
            tls_key: None,
            ops_listen: None,
            public_metrics: true,
            mqtt_listen: None,
            limits: parley_ingest::Limits::default(),
            idp: None,
            notify: parley_processors::notify::NotifyConfig::default(),
        }
    }
}

impl Config {
    /// Merges the layers; `flags` holds only what was given on the command line.
    pub fn load(file: Option<&PathBuf>, flags: &Overrides) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(Env::prefixed("PARLEY__").split("__"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)
    }

    /// What `migrate` gives new topics as their own retention: only a
    /// Fluvio log needs it (`retention.log_hours`), since the retention
    /// pass trims the others behind their consumers.
    pub fn topic_retention(&self) -> Option<std::time::Duration> {
        let hours = self.retention.log_hours;
        let fluvio = self.log_url().starts_with("fluvio://");
        fluvio
            .then(|| std::time::Duration::try_from_secs_f64(hours * 3600.0).ok())
            .flatten()
    }

    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| file_url(&self.data_dir, "log"))
    }

    pub fn state_url(&self) -> String {
        self.state
            .clone()
            .unwrap_or_else(|| file_url(&self.data_dir, "state.redb"))
    }

    pub fn history_url(&self) -> String {
        self.history
            .clone()
            .unwrap_or_else(|| file_url(&self.data_dir, "history.redb"))
    }

    pub fn media_url(&self) -> String {
        self.media
            .clone()
            .unwrap_or_else(|| file_url(&self.data_dir, "media"))
    }
}

fn file_url(dir: &std::path::Path, name: &str) -> String {
    format!("file://{}", dir.join(name).display())
}

/// Command-line values; `None` leaves the lower layers' value in place.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS on the listener (with --tls-key)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the listener (with --tls-cert)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// A separate listener for /healthz, /readyz and /metrics
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_listen: Option<SocketAddr>,
    /// An MQTT listener (`up` and `ingest`), TLS as the edge's
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_listen: Option<SocketAddr>,
    /// Address other edges reach this one at [default: the listen address]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Data directory of the embedded engines [default: ./parley-data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Node id, 0..1024 [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u16>,
    /// Log backend: file://DIR | fluvio://HOST:PORT | redis://HOST:PORT
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// State backend: file://PATH | redis://HOST:PORT
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// History backend: file://PATH | clickhouse://HOST:PORT/DATABASE
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// Media blobs: file://DIR | s3://BUCKET[/PREFIX]?endpoint=URL&region=R
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
}

// figment's Jail closures return its (large) error type by design.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                Config::load(None, &Overrides::default()).map_err(|e| *e)?,
                Config::default()
            );
            jail.create_file(
                "p.toml",
                "listen = \"127.0.0.1:9000\"\nnode_id = 3\npartitions = 8\n",
            )?;
            jail.set_env("PARLEY__NODE_ID", "5");
            jail.set_env("PARLEY__LOG", "file:///tmp/envlog");
            let flags = Overrides {
                log: Some("redis://127.0.0.1:1".into()),
                ..Default::default()
            };
            let c = Config::load(Some(&"p.toml".into()), &flags).map_err(|e| *e)?;
            assert_eq!(c.listen.port(), 9000, "file over default");
            assert_eq!(c.partitions, 8);
            assert_eq!(c.node_id, 5, "env over file");
            assert_eq!(c.log_url(), "redis://127.0.0.1:1", "flag over env");
            assert_eq!(c.state_url(), "file://./parley-data/state.redb");
            assert_eq!(c.idp, None, "no identity provider unless configured");
            jail.set_env("PARLEY__IDP__JWKS_FILE", "/etc/parley/jwks.json");
            jail.set_env("PARLEY__IDP__ISSUER", "https://sso.example");
            jail.set_env("PARLEY__IDP__AUDIENCE", "parley");
            let idp = Config::load(None, &flags).map_err(|e| *e)?.idp.unwrap();
            assert_eq!(idp.issuer, "https://sso.example");
            assert_eq!(idp.username_claim, "preferred_username", "its default");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "lisen = \"127.0.0.1:9000\"\n")?;
            assert!(Config::load(Some(&"bad.toml".into()), &Overrides::default()).is_err());
            jail.create_file("bad2.toml", "durability = \"sometimes\"\n")?;
            assert!(Config::load(Some(&"bad2.toml".into()), &Overrides::default()).is_err());
            assert!(Config::load(Some(&"missing.toml".into()), &Overrides::default()).is_err());
            // An [idp] without its issuer and audience is refused at start.
            jail.create_file("idp.toml", "[idp]\njwks_file = \"/k.json\"\n")?;
            assert!(Config::load(Some(&"idp.toml".into()), &Overrides::default()).is_err());
            Ok(())
        });
    }
}
