//! Deployment files, and a reader that keeps them true.
//!
//! Layout (beside this crate):
//! - `local/run.sh`: a cluster on loopback for a person to try.
//! - `docker-compose.yml` and `Dockerfile`.
//! - `k8s/`: the roles as StatefulSets, plus infra.
//! - `prometheus.yml` and `grafana/`: scraping and the dashboard.
//! - this library: reads every `parley` invocation out of them, so that
//!   the binary's tests (`parley/tests/deploy.rs`) can check each command,
//!   flag, env name, port and probe against the real binary and config:
//!   the files cannot drift from the code unnoticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// One way a file starts `parley`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Where it is written, for messages.
    pub source: String,
    /// The arguments after `parley`: the role first.
    pub args: Vec<String>,
    /// Environment given to it; values from the platform (Kubernetes
    /// `valueFrom`) appear as `None`.
    pub env: BTreeMap<String, Option<String>>,
    /// Ports the platform expects it to serve (container ports, health
    /// checks, probes, scrape targets), with the HTTP path if any.
    pub served: Vec<(u16, Option<String>)>,
}

impl Invocation {
    pub fn role(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }

    /// The value of `--flag` in the arguments, or of `PARLEY__FLAG` in the
    /// environment.
    pub fn setting(&self, flag: &str) -> Option<String> {
        let long = format!("--{flag}");
        if let Some(i) = self.args.iter().position(|a| *a == long) {
            return self.args.get(i + 1).cloned();
        }
        let env = format!("PARLEY__{}", flag.replace('-', "_").to_uppercase());
        self.env.get(&env).cloned().flatten()
    }
}

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn read(rel: &str) -> String {
    let path = dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn port_of_url(url: &str) -> Option<(u16, Option<String>)> {
    let rest = url.split("://").nth(1)?;
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = hostport.rsplit_once(':')?.1.parse().ok()?;
    Some((port, Some(format!("/{path}"))))
}

/// The services of `docker-compose.yml` that run `parley`.
pub fn compose() -> Vec<Invocation> {
    let doc: Value = serde_yaml::from_str(&read("docker-compose.yml")).expect("compose parses");
    let services = doc["services"].as_mapping().expect("services");
    let mut out = Vec::new();
    for (name, svc) in services {
        if svc["image"].as_str() != Some("parley") {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        let env = svc["environment"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = v
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| v.as_i64().map(|n| n.to_string()));
                        (k.as_str().unwrap_or("").to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut served = Vec::new();
        for t in strings(&svc["healthcheck"]["test"]) {
            if let Some(p) = port_of_url(&t) {
                served.push(p);
            }
        }
        for p in strings(&svc["ports"]) {
            if let Some(inner) = p.rsplit(':').next().and_then(|x| x.parse().ok()) {
                served.push((inner, None));
            }
        }
        // Prometheus scrapes `service:port`.
        for target in prometheus_targets() {
            if let Some((host, port)) = target.split_once(':') {
                if host == name {
                    served.push((port.parse().expect("port"), Some("/metrics".into())));
                }
            }
        }
        out.push(Invocation {
            source: format!("docker-compose.yml service {name}"),
            args: strings(&svc["command"]),
            env,
            served,
        });
    }
    out
}

/// Scrape targets in `prometheus.yml`.
pub fn prometheus_targets() -> Vec<String> {
    let doc: Value = serde_yaml::from_str(&read("prometheus.yml")).expect("prometheus.yml parses");
    let mut out = Vec::new();
    for job in doc["scrape_configs"].as_sequence().into_iter().flatten() {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            out.extend(strings(&sc["targets"]));
        }
    }
    out
}

/// The containers of `k8s/parley.yaml` that run `parley`.
pub fn kubernetes() -> Vec<Invocation> {
    let text = read("k8s/parley.yaml");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("k8s yaml parses"))
        .collect();
    let config_map: BTreeMap<String, Option<String>> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("ConfigMap"))
        .flat_map(|d| d["data"].as_mapping().cloned().unwrap_or_default())
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or("").to_owned(),
                v.as_str().map(str::to_owned),
            )
        })
        .collect();
    let mut out = Vec::new();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or("");
        let containers = d["spec"]["template"]["spec"]["containers"].as_sequence();
        for c in containers.into_iter().flatten() {
            if !c["image"].as_str().unwrap_or("").starts_with("parley") {
                continue;
            }
            let mut env = BTreeMap::new();
            if c["envFrom"].as_sequence().is_some_and(|s| !s.is_empty()) {
                env.extend(config_map.clone());
            }
            for e in c["env"].as_sequence().into_iter().flatten() {
                let name = e["name"].as_str().unwrap_or("").to_owned();
                env.insert(name, e["value"].as_str().map(str::to_owned));
            }
            let mut served = Vec::new();
            for p in c["ports"].as_sequence().into_iter().flatten() {
                served.push((p["containerPort"].as_u64().expect("port") as u16, None));
            }
            for probe in ["readinessProbe", "livenessProbe"] {
                let g = &c[probe]["httpGet"];
                if let Some(port) = g["port"].as_u64() {
                    served.push((port as u16, g["path"].as_str().map(str::to_owned)));
                }
            }
            let annotations = &d["spec"]["template"]["metadata"]["annotations"];
            if let Some(p) = annotations["prometheus.io/port"].as_str() {
                served.push((p.parse().expect("port"), Some("/metrics".into())));
            }
            out.push(Invocation {
                source: format!(
                    "k8s/parley.yaml {kind} {} container {}",
                    d["metadata"]["name"].as_str().unwrap_or("?"),
                    c["name"].as_str().unwrap_or("?")
                ),
                args: strings(&c["args"]),
                env,
                served,
            });
        }
    }
    out
}

/// The roles `local/run.sh` starts, with the flags its `role` function
/// passes, and its `migrate`.
pub fn local() -> Vec<Invocation> {
    let text = read("local/run.sh");
    let words = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .map(|w| w.trim_matches('"').to_owned())
            .collect()
    };
    // The arguments `role() { ... }` passes after `"$BIN" "$1"`, up to the
    // redirection; `$2` is the node id, `$3` the port.
    let body: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("role()"))
        .take_while(|l| !l.starts_with('}'))
        .flat_map(words)
        .skip_while(|w| w != "$1")
        .skip(1)
        .filter(|w| w != "\\")
        .take_while(|w| !w.starts_with('>'))
        .collect();
    let mut out = Vec::new();
    for line in text.lines() {
        let w = words(line);
        if w.first().map(String::as_str) == Some("role") && w.len() == 4 {
            let port: u16 = w[3].parse().expect("port");
            let mut args = vec![w[1].clone()];
            args.extend(
                body.iter()
                    .map(|a| a.replace("$2", &w[2]).replace("$3", &w[3])),
            );
            out.push(Invocation {
                source: format!("local/run.sh {line}"),
                args,
                env: BTreeMap::new(),
                served: vec![(port, None)],
            });
        }
        if w.first().map(String::as_str) == Some("$BIN") && !w[1].starts_with('$') {
            out.push(Invocation {
                source: format!("local/run.sh {line}"),
                args: w[1..].to_vec(),
                env: BTreeMap::new(),
                served: Vec::new(),
            });
        }
    }
    out
}

/// Every invocation in every file.
pub fn all() -> Vec<Invocation> {
    let mut v = compose();
    v.extend(kubernetes());
    v.extend(local());
    v
}
