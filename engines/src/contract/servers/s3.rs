//! A private S3-compatible server for tests: moto's standalone server
//! (`moto_server`, from PyPI's `moto[server]`) on a free loopback port,
//! with one bucket, never a store that happens to be reachable.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub port: u16,
    pub bucket: String,
    /// `s3://BUCKET?endpoint=...&...`, what `parley --media` takes.
    pub url: String,
}

impl S3Server {
    /// Starts one, waits until it answers and creates a bucket. Panics
    /// with the reason if `moto_server` is missing (the README's test
    /// command installs it).
    pub fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]')");
        let bucket = format!("parley-{:08x}", rand::random::<u32>());
        let url = format!(
            "s3://{bucket}?endpoint=http://127.0.0.1:{port}&region=us-east-1&access_key_id=test&secret_access_key=test"
        );
        let mut server = S3Server {
            child,
            port,
            bucket,
            url,
        };
        server.wait_up();
        let status = server.request("PUT", &format!("/{}", server.bucket));
        assert_eq!(status, Some(200), "creating the test bucket");
        server
    }

    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.request("GET", "/").is_none() {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("moto_server exited at start: {exit}");
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One unsigned HTTP/1.0 request (moto does not check signatures);
    /// its status, or `None` if nothing answers.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            c,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut head = String::new();
        c.read_to_string(&mut head).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
