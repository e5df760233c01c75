//! Every role as its own process, on private Redis and ClickHouse servers:
//! start, restart and SIGKILL nodes, and read who owns what from their
//! `/metrics`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_engines::contract::servers::{ClickHouseServer, RedisServer};

pub const PARTITIONS: u32 = 4;
pub const SECRET: &str = "a-test-cluster-secret-of-more-than-32-bytes";

pub struct Node {
    pub role: &'static str,
    pub node: u16,
    pub child: Child,
    pub url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the cluster's log, state and history are.
pub struct Backends {
    pub log: String,
    pub state: String,
    pub history: String,
}

pub fn parley(args: &[&str], b: &Backends, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parley"));
    c.args(args)
        .args([
            "--log",
            &b.log,
            "--state",
            &b.state,
            "--history",
            &b.history,
        ])
        // Every node of the test shares one media directory.
        .arg("--media")
        .arg(format!("file://{}", dir.join("media").display()))
        .arg("--data-dir")
        .arg(dir)
        .env("PARLEY__JWT_SECRET", SECRET)
        .env("PARLEY__ARGON2_MEMORY_KIB", "1024")
        .env("PARLEY__PARTITIONS", PARTITIONS.to_string())
        .env("PARLEY_LOG", "warn");
    c
}

pub fn spawn(role: &'static str, node: u16, b: &Backends, dir: &Path) -> Node {
    spawn_with(role, node, b, dir, &[])
}

/// [`spawn`], with more environment (`PARLEY__...` settings).
pub fn spawn_with(
    role: &'static str,
    node: u16,
    b: &Backends,
    dir: &Path,
    env: &[(&str, &str)],
) -> Node {
    let id = node.to_string();
    let mut child = parley(&[role, "--listen", "127.0.0.1:0", "--node-id", &id], b, dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start parley");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("parley {role} listening on ");
    let url = loop {
        let line = lines.next().expect("parley printed its address").unwrap();
        if let Some(url) = line.strip_prefix(&prefix) {
            break url.to_owned();
        }
    };
    // Its log, tagged, shows with a failing test's output.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[{role} {node}] {line}");
        }
    });
    Node {
        role,
        node,
        child,
        url,
    }
}

/// Partitions held per scope, read from a node's `/metrics`.
pub async fn owned(node: &Node) -> BTreeMap<String, Vec<u32>> {
    let text = super::metrics_text(&node.url).await;
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("parley_partition_owned{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        if value.trim() != "1" {
            continue;
        }
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..].split('"').next().unwrap().to_owned()
        };
        out.entry(label("scope"))
            .or_default()
            .push(label("partition").parse().unwrap());
    }
    out
}

/// Waits until the nodes of one role hold every partition of `scope`
/// exactly once between them, each node a share; returns partition → node.
pub async fn settled(nodes: &[&Node], scope: &str, within: Duration) -> BTreeMap<u32, u16> {
    let deadline = Instant::now() + within;
    loop {
        let mut holders: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
        for n in nodes {
            for p in owned(n).await.remove(scope).unwrap_or_default() {
                holders.entry(p).or_default().push(n.node);
            }
        }
        let shared = nodes
            .iter()
            .all(|n| holders.values().any(|h| h.contains(&n.node)));
        if holders.len() == PARTITIONS as usize && holders.values().all(|h| h.len() == 1) && shared
        {
            return holders.into_iter().map(|(p, h)| (p, h[0])).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{scope} not held exactly once by {:?} within {within:?}: {holders:?}",
            nodes
                .iter()
                .map(|n| format!("{} {}", n.role, n.node))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each role, the lease scope its nodes share, and the node ids a
/// cluster starts with.
const ROLES: [(&str, &str, [u16; 2]); 3] = [
    ("ingest", "append/events", [1, 2]),
    ("process", "process/events", [11, 12]),
    ("deliver", "deliver/inbox", [21, 22]),
];

/// Two nodes of each role on their own Redis (log), Redis (state) and
/// ClickHouse (history), migrated and settled: every partition of each
/// role's scope held once, each node a share.
pub struct Cluster {
    pub log_redis: RedisServer,
    pub state_redis: RedisServer,
    pub clickhouse: ClickHouseServer,
    pub urls: Backends,
    pub dir: tempfile::TempDir,
    /// The live nodes, of every role.
    pub nodes: Vec<Node>,
}

/// How long a role may take to share out its partitions.
pub const SETTLE: Duration = Duration::from_secs(20);

impl Cluster {
    pub async fn start() -> Cluster {
        let log_redis = RedisServer::start();
        let state_redis = RedisServer::start();
        let clickhouse = ClickHouseServer::start();
        let urls = Backends {
            log: log_redis.url.clone(),
            state: state_redis.url.clone(),
            history: clickhouse.url.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        let status = parley(&["migrate"], &urls, dir.path()).status().unwrap();
        assert!(status.success());
        let mut c = Cluster {
            log_redis,
            state_redis,
            clickhouse,
            urls,
            dir,
            nodes: Vec::new(),
        };
        for (role, _, ids) in ROLES {
            for n in ids {
                c.spawn(role, n);
            }
        }
        for (role, _, _) in ROLES {
            c.settled(role, SETTLE).await;
        }
        c
    }

    /// The live nodes of `role`, oldest first.
    pub fn role(&self, role: &str) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.role == role).collect()
    }

    /// Starts node `node` of `role` (again, after a kill).
    pub fn spawn(&mut self, role: &'static str, node: u16) {
        self.spawn_with(role, node, &[]);
    }

    /// [`spawn`](Self::spawn), with more environment (`PARLEY__...`).
    pub fn spawn_with(&mut self, role: &'static str, node: u16, env: &[(&str, &str)]) {
        let n = spawn_with(role, node, &self.urls, self.dir.path(), env);
        self.nodes.push(n);
    }

    /// SIGKILLs node `node` of `role`.
    pub fn kill(&mut self, role: &str, node: u16) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.role == role && n.node == node)
            .unwrap();
        drop(self.nodes.remove(i)); // SIGKILL
    }

    /// Partition → node, once the nodes of `role` share its scope again.
    pub async fn settled(&self, role: &str, within: Duration) -> BTreeMap<u32, u16> {
        let scope = ROLES.iter().find(|r| r.0 == role).expect("a role").1;
        settled(&self.role(role), scope, within).await
    }
}
