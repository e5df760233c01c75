//! The deployment files (deploy/) against the real binary and config: every
//! role, flag, env name and value, port and probe they use must be one the
//! binary has, so they cannot rot.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use parley_deploy::Invocation;

const ROLES: [&str; 5] = ["up", "ingest", "process", "deliver", "migrate"];

fn help(role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([role, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "parley {role} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The config keys `PARLEY__*` may set.
fn config_keys() -> BTreeSet<String> {
    // Nested tables as the environment names them: `limits__connections`.
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        for (k, v) in v.as_object().into_iter().flatten() {
            let key = format!("{prefix}{k}");
            if v.is_object() {
                walk(&format!("{key}__"), v, out);
            }
            out.insert(key);
        }
    }
    let mut keys = BTreeSet::new();
    walk(
        "",
        &serde_json::to_value(parley::Config::default()).unwrap(),
        &mut keys,
    );
    keys
}

/// Loads the config an invocation would get from its environment (with
/// platform-provided values filled in), through the binary's own loader.
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
fn load(inv: &Invocation) -> parley::Config {
    let mut cfg = None;
    figment::Jail::expect_with(|jail| {
        for (k, v) in &inv.env {
            let v = match v {
                // Filled in by the platform: a pod index, a secret (the
                // backend URLs with their passwords are secrets too).
                None if k.ends_with("NODE_ID") => "0".to_owned(),
                None if k.ends_with("__STATE") => "redis://:pw@redis:6379/0".to_owned(),
                None if k.ends_with("__HISTORY") => {
                    "clickhouse://parley:pw@clickhouse:8123".to_owned()
                }
                None if k.ends_with("__MEDIA") => {
                    "s3://media?endpoint=http://minio:9000&access_key_id=k&secret_access_key=s"
                        .to_owned()
                }
                None => "a-secret-from-the-platform-of-32+bytes".to_owned(),
                // `${NAME:?...}` from the environment, wherever it stands.
                Some(v) if v.contains("${") => {
                    let mut out = String::new();
                    let mut rest = v.as_str();
                    while let Some(i) = rest.find("${") {
                        out.push_str(&rest[..i]);
                        let end = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
                        out.push_str("a-secret-from-the-environment-of-32+bytes");
                        rest = &rest[end..];
                    }
                    out + rest
                }
                Some(v) => v.replace("$(POD_IP)", "10.0.0.7"),
            };
            jail.set_env(k, v);
        }
        let c = parley::Config::load(None, &parley::Overrides::default()).map_err(|e| *e)?;
        cfg = Some(c);
        Ok(())
    });
    cfg.unwrap()
}

#[test]
fn deploy_files_match_the_binary() {
    let all = parley_deploy::all();
    let count = |prefix: &str| all.iter().filter(|i| i.source.starts_with(prefix)).count();
    assert_eq!(count("docker-compose.yml"), 7, "migrate + 2 of each role");
    assert_eq!(count("k8s/"), 4, "migrate job + 3 StatefulSets");
    assert_eq!(count("local/run.sh"), 7, "migrate + 2 of each role");

    let keys = config_keys();
    let mut helps = BTreeMap::new();
    // (file, role) -> node ids, which must be unique per role.
    let mut nodes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for inv in &all {
        let role = inv.role();
        assert!(
            ROLES.contains(&role),
            "{}: unknown role {role:?}",
            inv.source
        );
        let help = helps.entry(role.to_owned()).or_insert_with(|| help(role));

        // Flags: each one the role has, each with a value.
        let mut args = inv.args[1..].iter();
        while let Some(flag) = args.next() {
            assert!(
                flag.starts_with("--"),
                "{}: stray argument {flag:?}",
                inv.source
            );
            assert!(
                help.contains(&format!("{flag} <")),
                "{}: `parley {role}` has no flag {flag}",
                inv.source
            );
            assert!(
                args.next().is_some(),
                "{}: {flag} without a value",
                inv.source
            );
        }

        // Environment: names the config has, values it accepts.
        for k in inv.env.keys() {
            match k.strip_prefix("PARLEY__") {
                Some(key) => assert!(
                    keys.contains(&key.to_lowercase()),
                    "{}: {k} is not a config key (keys: {keys:?})",
                    inv.source
                ),
                None => assert!(
                    ["PARLEY_LOG", "PARLEY_CONFIG", "POD_IP"].contains(&k.as_str()),
                    "{}: unknown variable {k}",
                    inv.source
                ),
            }
        }
        let cfg = load(inv);
        for url in [cfg.log_url(), cfg.state_url(), cfg.history_url()] {
            let scheme = url.split("://").next().unwrap();
            assert!(
                ["file", "redis", "rediss", "fluvio", "clickhouse"].contains(&scheme),
                "{}: backend {url:?}",
                inv.source
            );
        }
        // The URLs parse as their backends read them (in a build that has
        // them: CI builds every backend).
        #[cfg(feature = "fluvio")]
        if cfg.log_url().starts_with("fluvio://") {
            parley_engines::fluvio::FluvioUrl::parse(&cfg.log_url()).unwrap();
        }
        #[cfg(feature = "clickhouse")]
        if cfg.history_url().starts_with("clickhouse://") {
            parley_engines::clickhouse::ClickHouseUrl::parse(&cfg.history_url()).unwrap();
        }
        let media = cfg.media_url();
        assert!(
            media.starts_with("file://") || media.starts_with("s3://"),
            "{}: media {media:?}",
            inv.source
        );
        #[cfg(feature = "s3")]
        if media.starts_with("s3://") {
            parley_engines::s3::S3Blobs::connect(&media).unwrap();
        }

        // Ports and probes: what the platform checks is what the role serves.
        let listen: std::net::SocketAddr = inv
            .setting("listen")
            .map(|l| l.parse().unwrap())
            .unwrap_or(cfg.listen);
        let ops = inv
            .setting("ops-listen")
            .map(|o| o.parse::<std::net::SocketAddr>().unwrap().port())
            .or(cfg.ops_listen.map(|o| o.port()));
        let mqtt = inv
            .setting("mqtt-listen")
            .map(|m| m.parse::<std::net::SocketAddr>().unwrap().port())
            .or(cfg.mqtt_listen.map(|m| m.port()));
        for (port, path) in &inv.served {
            assert!(
                *port == listen.port() || Some(*port) == ops || Some(*port) == mqtt,
                "{}: port {port} is neither the listen port {}, the ops port {ops:?} nor the MQTT port {mqtt:?}",
                inv.source,
                listen.port()
            );
            if let Some(p) = path {
                assert!(
                    ["/readyz", "/healthz", "/metrics"].contains(&p.as_str()),
                    "{}: no endpoint {p}",
                    inv.source
                );
            }
        }
        if role == "migrate" {
            continue;
        }
        assert!(
            !inv.served.is_empty(),
            "{}: nothing checks it is up",
            inv.source
        );
        if role == "ingest" {
            assert!(
                inv.source.starts_with("local/") || cfg.jwt_secret.is_some(),
                "{}: edges must share jwt_secret",
                inv.source
            );
            if listen.ip().is_unspecified() {
                assert!(
                    inv.setting("advertise").is_some(),
                    "{}: an edge on {listen} must --advertise a reachable address",
                    inv.source
                );
            }
        }
        let file = inv.source.split(' ').next().unwrap().to_owned();
        if let Some(n) = inv.setting("node-id") {
            nodes.entry((file, role.to_owned())).or_default().push(n);
        }
    }
    for ((file, role), ids) in nodes {
        let unique: BTreeSet<_> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "{file}: {role} node ids repeat: {ids:?}"
        );
    }
}

#[test]
fn the_local_script_is_valid_bash() {
    let script = parley_deploy::dir().join("local/run.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `parley_*` name in `text`, without a histogram's suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("parley_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_owned();
        out.insert(name);
    }
    out
}

/// The metric names the crates register (string literals in their source).
fn registered() -> BTreeSet<String> {
    let root = parley_deploy::dir().join("..");
    let mut out = BTreeSet::new();
    let mut dirs: Vec<_> = ["engines", "ingest", "processors", "delivery", "analytics"]
        .iter()
        .map(|c| root.join(c).join("src"))
        .collect();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"parley_") {
                    let name = text[i + 1..].split('"').next().unwrap();
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn dashboards_and_alerts_name_metrics_that_exist() {
    let known = registered();
    assert!(known.contains("parley_stage_latency_seconds"), "{known:?}");
    for file in ["grafana/parley.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(parley_deploy::dir().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() > 3, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{file} names no such metric: {unknown:?}"
        );
    }
}
