//! A private `redis-server` for tests: its own free port on 127.0.0.1 and
//! its own temp dir, never a Redis that happens to run on the machine.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    extra: Vec<String>,
    pub port: u16,
    pub url: String,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`. Panics with the reason
    /// if `redis-server` is missing (CI installs it: see `.ci/run`).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// As [`start`](Self::start), with more `redis-server` arguments
    /// (`["--replicaof", "127.0.0.1", "PORT"]` for a replica).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("parley-redis-{port}-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("redis temp dir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(port, &dir, &extra);
        let server = RedisServer {
            child,
            dir,
            extra,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        };
        server.wait_up();
        server
    }

    /// Kills the server (SIGKILL: no shutdown save) and starts it again on
    /// the same port and directory: with `--appendonly yes` it comes back
    /// with what its AOF holds, without persistence empty.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.wait_up();
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if pong(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server)")
}

/// Whether a Redis answers `PING` on `port` (plain RESP over TCP, so the
/// launcher needs no client crate).
fn pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
