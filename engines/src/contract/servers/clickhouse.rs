//! A private `clickhouse-server` for tests: its own free ports on
//! 127.0.0.1, its own config and data dir, never a server that happens to
//! run on the machine. It can be stopped and started again on the same
//! ports and data, for outage tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ClickHouseServer {
    child: Option<Child>,
    dir: PathBuf,
    pub http_port: u16,
    /// `http://127.0.0.1:PORT`, what the `clickhouse` crate connects to.
    pub http_url: String,
    /// `clickhouse://127.0.0.1:PORT/DB`, what `parley` takes.
    pub url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn binary() -> &'static str {
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    if Path::new("/usr/sbin/clickhouse-server").exists() {
        "/usr/sbin/clickhouse-server"
    } else {
        "clickhouse-server"
    }
}

impl ClickHouseServer {
    /// Starts one with database `parley` and waits until `/ping` answers.
    /// Panics with the reason if `clickhouse-server` is missing (the
    /// README's test command installs it).
    pub fn start() -> ClickHouseServer {
        let (http_port, tcp_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!(
            "parley-clickhouse-{http_port}-{:x}",
            rand::random::<u64>()
        ));
        for sub in ["data", "tmp", "user_files", "format_schemas"] {
            std::fs::create_dir_all(dir.join(sub)).expect("clickhouse temp dir");
        }
        let d = dir.display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <timezone>UTC</timezone>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"#
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#;
        std::fs::write(dir.join("config.xml"), config).expect("clickhouse config");
        std::fs::write(dir.join("users.xml"), users).expect("clickhouse users");
        let mut server = ClickHouseServer {
            child: None,
            dir,
            http_port,
            http_url: format!("http://127.0.0.1:{http_port}"),
            url: format!("clickhouse://127.0.0.1:{http_port}/parley"),
        };
        server.resume();
        server.sql("CREATE DATABASE IF NOT EXISTS parley");
        server
    }

    /// Kills the server (SIGKILL: an outage, not a clean stop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data after [`stop`](Self::stop).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(binary())
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server is installed (apt-get install clickhouse-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/ping").as_deref() != Some("Ok.\n") {
            assert!(
                Instant::now() < deadline,
                "clickhouse-server on port {} did not start; see {}/error.log",
                self.http_port,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one statement over HTTP and returns its output; panics on error.
    pub fn sql(&self, query: &str) -> String {
        self.try_sql(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// As [`sql`](Self::sql), returning the server's error instead.
    pub fn try_sql(&self, query: &str) -> Result<String, String> {
        let body = query.as_bytes();
        let request = format!(
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (status, text) = self
            .request(request.as_bytes(), body)
            .ok_or("clickhouse does not answer")?;
        if status.contains(" 200 ") {
            Ok(text)
        } else {
            Err(format!("{status} {text}"))
        }
    }

    fn get(&self, path: &str) -> Option<String> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        self.request(request.as_bytes(), b"").map(|(_, body)| body)
    }

    fn request(&self, head: &[u8], body: &[u8]) -> Option<(String, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        s.write_all(head).ok()?;
        s.write_all(body).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_owned(), body.to_owned()))
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
