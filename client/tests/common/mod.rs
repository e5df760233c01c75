//! What the SDK's tests share: `parley up` in the test's process on a
//! free port, and signed-in clients running on their own files.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use parley_client::{Client, Event};
use parley_schemas::ids::UserId;
use parley_schemas::wire::Body;
use tokio::sync::oneshot;

pub const WAIT: Duration = Duration::from_secs(30);

/// `parley up` in this process, on `addr` (port 0: a free one).
pub struct Server {
    pub url: String,
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

pub async fn up(data: &Path, addr: SocketAddr) -> Server {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = parley::Config {
        data_dir: data.to_path_buf(),
        argon2_memory_kib: 1024,
        ..parley::Config::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        parley::up(&cfg, listener, async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| format!("{e:#}"))
    });
    let url = format!("http://{addr}");
    // Ready once it answers; sign-ups come right after.
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "parley up did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server {
        url,
        addr,
        stop,
        task,
    }
}

impl Server {
    pub async fn down(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A signed-up, signed-in client on its own file, running.
pub async fn person(dir: &Path, url: &str, name: &str, file: &str) -> (Client, UserId) {
    let c = Client::open(dir.join(file), url).unwrap();
    let _ = c.sign_up(name, "a-long-password").await;
    let s = c.sign_in(name, "a-long-password").await.unwrap();
    let runner = c.clone();
    tokio::spawn(async move { runner.run().await });
    (c, s.user_id)
}

/// The texts of the next `n` new messages on `events`, in arrival order.
pub async fn texts(events: &mut tokio::sync::broadcast::Receiver<Event>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while out.len() < n {
            if let Event::Message(m) = events.recv().await.unwrap() {
                if let Body::Text(t) = m.body {
                    out.push(t);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} messages arrived: {out:?}", out.len()));
    out
}

/// The first event `pick` takes, within the wait.
pub async fn first<T>(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(t) = pick(events.recv().await.unwrap()) {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what}"))
}
