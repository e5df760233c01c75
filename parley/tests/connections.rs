//! Nobody without an account can hold the edge's connection places: a
//! socket that says nothing, one that sends only the HTTP/2 preface, a
//! body dripped a byte at a time, and more idle sockets than one address
//! may hold are each closed or refused within the configured time, while a
//! normal client from another address is served throughout.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The deadlines of this test's server.
const HEADERS: Duration = Duration::from_millis(600);
const BODY: Duration = Duration::from_millis(800);
const IDLE: Duration = Duration::from_millis(1_500);
const PER_IP: usize = 10;

async fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.header_timeout_ms = HEADERS.as_millis() as u64;
    cfg.limits.body_timeout_ms = BODY.as_millis() as u64;
    cfg.limits.idle_timeout_ms = IDLE.as_millis() as u64;
    cfg.limits.connections_per_ip = PER_IP;
    let s = Server::start_with(cfg).await;
    (s, dir)
}

fn addr(s: &Server) -> SocketAddr {
    s.url.trim_start_matches("http://").parse().unwrap()
}

/// A connection from `from` (a loopback address of its own).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the server closes the connection; how long that took, and
/// what it sent.
async fn until_closed(tcp: &mut TcpStream) -> (Duration, String) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .ok();
    (t0.elapsed(), String::from_utf8_lossy(&got).into_owned())
}

/// A plain request from another address, served while the others wait.
async fn served_from(from: &str, to: SocketAddr) {
    let mut tcp = connect_from(from, to).await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_and_an_http2_preface_alone_are_closed_at_the_deadline() {
    let (s, _dir) = server().await;
    let to = addr(&s);
    let mut silent = TcpStream::connect(to).await.unwrap();
    let mut preface = TcpStream::connect(to).await.unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    served_from("127.0.0.2", to).await;
    for (what, tcp) in [("silent", &mut silent), ("preface", &mut preface)] {
        let (took, _) = until_closed(tcp).await;
        assert!(took < HEADERS + Duration::from_secs(2), "{what}: {took:?}");
    }
    assert!(metric(&s.url, "parley_limit_hits_total", "limit=\"first_request\"").await >= 2.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dripped_a_byte_at_a_time_is_cut_off() {
    let (s, _dir) = server().await;
    let to = addr(&s);
    let mut tcp = TcpStream::connect(to).await.unwrap();
    // One byte of a 100-byte body, then nothing for 29 s.
    tcp.write_all(
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let next_byte = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(29)).await;
    });
    served_from("127.0.0.2", to).await;
    let (_, answer) = until_closed(&mut tcp).await;
    let took = t0.elapsed();
    assert!(
        !next_byte.is_finished(),
        "closed before the next byte was due"
    );
    next_byte.abort();
    assert!(took < BODY + Duration::from_secs(2), "{took:?}");
    assert!(!answer.contains("200 OK"), "{answer}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_idle_connections() {
    let (s, _dir) = server().await;
    let to = addr(&s);
    let t0 = Instant::now();
    let mut held = Vec::new();
    for _ in 0..2 * PER_IP {
        held.push(connect_from("127.0.0.3", to).await);
    }
    // Another address is served while this one holds its share.
    served_from("127.0.0.2", to).await;
    // Those over the cap were closed at accept; the rest at the deadline,
    // which counts from accept, so not before HEADERS from `t0`.
    let closed_at = futures::future::join_all(held.iter_mut().map(|tcp| async move {
        until_closed(tcp).await;
        t0.elapsed()
    }))
    .await;
    let prompt = closed_at.iter().filter(|t| **t < HEADERS).count();
    assert_eq!(prompt, PER_IP, "refused at once: {closed_at:?}");
    assert!(closed_at
        .iter()
        .all(|t| *t < HEADERS + Duration::from_secs(2)));
    // The address's places are back: it is served again.
    served_from("127.0.0.3", to).await;
    assert!(
        metric(
            &s.url,
            "parley_limit_hits_total",
            "limit=\"connections_per_ip\""
        )
        .await
            >= PER_IP as f64
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_with_nothing_in_flight_is_closed_when_idle() {
    let (s, _dir) = server().await;
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (took, _) = until_closed(&mut tcp).await;
    assert!(took < IDLE + Duration::from_secs(2), "{took:?}");
    s.stop().await;
}
