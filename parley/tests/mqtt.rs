//! The MQTT edge driven by MQTT clients Parley did not write: Debian's
//! `mosquitto_pub`/`mosquitto_sub` and Eclipse Paho (`paho-mqtt`, through
//! tests/mqtt/paho_device.py), started as processes; and bad packets
//! written byte by byte. docs/mqtt.md is the mapping they follow.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const PASSWORD: &str = "password-1";

fn mosquitto(program: &str, port: u16, args: &[&str]) -> Child {
    Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} (Debian's mosquitto-clients; scripts/test installs it): {e}")
        })
}

fn paho(port: u16, device: &str, user: &str, count: usize, extra: &[&str]) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mqtt/paho_device.py");
    Command::new("python3")
        .arg(script)
        .args([
            &port.to_string(),
            device,
            user,
            PASSWORD,
            &count.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with paho-mqtt (scripts/test installs it)")
}

/// The lines a client printed until it exited, within [`WAIT`].
async fn output(child: Child) -> Vec<String> {
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the client finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `msg` frames among a client's lines, parsed.
fn msgs(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "msg")
        .collect()
}

#[tokio::test]
async fn mosquitto_clients_and_websockets_are_one_parley() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_mqtt(config(dir.path())).await;
    let port = server.mqtt_port.unwrap();
    let (alice, bob) = alice_and_bob(&server.url).await;
    let (alice_token, _) = login(&server.url, "alice", None).await;
    let (bob_token, _) = login(&server.url, "bob", None).await;
    // Bob's second device is an MQTT one: its client id is its device id.
    let (_, bob_mqtt) = login(&server.url, "bob", None).await;
    let mut alice_ws = Client::connect(&server.url, &alice_token).await;
    let mut bob_ws = Client::connect(&server.url, &bob_token).await;

    // WebSocket → mosquitto_sub (MQTT 3.1.1, username and password).
    let sub = mosquitto(
        "mosquitto_sub",
        port,
        &[
            "-V",
            "mqttv311",
            "-i",
            &bob_mqtt,
            "-u",
            "bob",
            "-P",
            PASSWORD,
            "-t",
            "parley/me",
            "-q",
            "1",
            "-C",
            "1",
        ],
    );
    let ack = alice_ws.say(&bob.id, "ws-1", "from a browser").await;
    let got = msgs(&output(sub).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body"]["text"], "from a browser");
    assert_eq!(got[0]["msg_id"], ack["msg_id"]);
    // The same inbox and seq as Bob's WebSocket device.
    let on_ws = bob_ws.expect("msg").await;
    assert_eq!(on_ws["seq"], got[0]["seq"]);

    // mosquitto_pub (MQTT 5, an access token) → WebSocket. Its exit code
    // 0 means the PUBACK came, which Parley sends once the append is durable.
    let frame = text_to(&alice.id, "mqtt-1", "from a phone").to_string();
    let publish = mosquitto(
        "mosquitto_pub",
        port,
        &[
            "-V",
            "mqttv5",
            "-u",
            "token",
            "-P",
            &bob_token,
            "-t",
            "parley/send",
            "-q",
            "1",
            "-m",
            &frame,
        ],
    );
    output(publish).await;
    let m = alice_ws.expect("msg").await;
    assert_eq!(m["body"]["text"], "from a phone");
    assert_eq!(m["from"], bob.id);
    server.stop().await;
}

#[tokio::test]
async fn a_persistent_session_loses_nothing_even_when_killed_before_its_puback() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_mqtt(config(dir.path())).await;
    let port = server.mqtt_port.unwrap();
    let (_alice, bob) = alice_and_bob(&server.url).await;
    let (alice_token, _) = login(&server.url, "alice", None).await;
    let (_, device) = login(&server.url, "bob", None).await;
    let mut alice = Client::connect(&server.url, &alice_token).await;

    // The session begins, then the phone goes away.
    let lines = output(paho(port, &device, "bob", 0, &[])).await;
    assert_eq!(lines, ["subscribed"]);
    for i in 0..5 {
        alice
            .say(&bob.id, &format!("away-{i}"), &format!("away {i}"))
            .await;
    }
    // Back: everything sent meanwhile, in order, once.
    let got = msgs(&output(paho(port, &device, "bob", 5, &[])).await);
    let texts: Vec<_> = got.iter().map(|m| m["body"]["text"].clone()).collect();
    assert_eq!(
        texts,
        (0..5).map(|i| format!("away {i}")).collect::<Vec<_>>()
    );

    // Killed after the message arrived, before its PUBACK.
    alice.say(&bob.id, "held", "held").await;
    let mut held = paho(port, &device, "bob", 1, &["hold"]);
    let mut lines = BufReader::new(held.stdout.take().unwrap()).lines();
    let first = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the held message arrives")
            .unwrap()
            .expect("a line");
        if line.starts_with('{') {
            break line;
        }
    };
    assert!(first.contains("\"held\""), "{first}");
    held.kill().await.unwrap();

    // It comes again, to the same device over MQTT 5 this time.
    let got = msgs(&output(paho(port, &device, "bob", 1, &["v5"])).await);
    assert_eq!(got[0]["body"]["text"], "held", "{got:?}");
    server.stop().await;
}

/// An MQTT string: its length, then its bytes.
fn string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// A packet: its first byte, the remaining length, the rest.
fn packet(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    let mut n = rest.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            break;
        }
    }
    v.extend_from_slice(rest);
    v
}

/// A CONNECT with username `token` and the token as password.
fn connect(level: u8, token: &str) -> Vec<u8> {
    connect_keeping(level, token, 60)
}

/// The same, with a keep-alive of `keep_alive` seconds.
fn connect_keeping(level: u8, token: &str, keep_alive: u8) -> Vec<u8> {
    let mut rest = string(b"MQTT");
    rest.extend([level, 0xC2, 0, keep_alive]);
    if level == 5 {
        rest.push(0); // no properties
    }
    rest.extend(string(b""));
    rest.extend(string(b"token"));
    rest.extend(string(token.as_bytes()));
    packet(0x10, &rest)
}

/// What the server sends until it closes, within [`WAIT`].
async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes")
        .unwrap();
    out
}

#[tokio::test]
async fn bad_packets_are_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_mqtt(config(dir.path())).await;
    let port = server.mqtt_port.unwrap();
    let (_alice, _bob) = alice_and_bob(&server.url).await;
    let (token, _) = login(&server.url, "alice", None).await;
    let addr = format!("127.0.0.1:{port}");

    // A CONNECT of no protocol Parley knows: refused (3.1.1's code 1), closed.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let mut bad = string(b"MQTX");
    bad.extend([4, 0xC2, 0, 60]);
    tcp.write_all(&packet(0x10, &bad)).await.unwrap();
    assert_eq!(read_to_end(&mut tcp).await, [0x20, 2, 0, 1]);

    // Garbage where a CONNECT belongs: closed.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_to_end(&mut tcp).await.is_empty());

    // A wrong token: CONNACK "not authorized" (3.1.1's 5).
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect(4, "not-a-token")).await.unwrap();
    assert_eq!(read_to_end(&mut tcp).await, [0x20, 2, 0, 5]);

    // 3.1.1: subscriptions to another user's topic and to everything are
    // refused in the SUBACK (0x80), parley/me granted at QoS 1.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect(4, &token)).await.unwrap();
    let mut connack = [0u8; 4];
    tcp.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    let mut sub = vec![0, 7];
    for filter in ["parley/users/2", "#", "parley/me"] {
        sub.extend(string(filter.as_bytes()));
        sub.push(1);
    }
    tcp.write_all(&packet(0x82, &sub)).await.unwrap();
    let mut suback = [0u8; 7];
    tcp.read_exact(&mut suback).await.unwrap();
    assert_eq!(suback, [0x90, 5, 0, 7, 0x80, 0x80, 1]);
    // A publish to a topic outside the mapping: 3.1.1 cannot refuse it in
    // a PUBACK, so the connection is closed (the reason is logged).
    let mut publish = string(b"parley/users/2");
    publish.extend([0, 1]);
    publish.extend_from_slice(b"{}");
    tcp.write_all(&packet(0x32, &publish)).await.unwrap();
    let rest = read_to_end(&mut tcp).await;
    assert!(
        !rest.windows(2).any(|w| w == [0x40, 2]),
        "no PUBACK: {rest:?}"
    );

    // MQTT 5: a PUBLISH past the packet limit gets DISCONNECT 0x95
    // ("packet too large") from its header alone.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect(5, &token)).await.unwrap();
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x20);
    let mut connack = vec![0u8; head[1] as usize];
    tcp.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack[1], 0, "accepted");
    tcp.write_all(&[0x32, 0xff, 0xff, 0xff, 0x7f])
        .await
        .unwrap();
    let rest = read_to_end(&mut tcp).await;
    assert_eq!(&rest[..1], &[0xE0], "a DISCONNECT: {rest:?}");
    assert_eq!(rest[2], 0x95, "packet too large: {rest:?}");

    // A publish refused in its PUBACK (MQTT 5): not JSON.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect(5, &token)).await.unwrap();
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.unwrap();
    let mut connack = vec![0u8; head[1] as usize];
    tcp.read_exact(&mut connack).await.unwrap();
    let mut publish = string(b"parley/send");
    publish.extend([0, 9, 0]); // packet 9, no properties
    publish.extend_from_slice(b"{not json");
    tcp.write_all(&packet(0x32, &publish)).await.unwrap();
    let mut puback = [0u8; 5];
    tcp.read_exact(&mut puback).await.unwrap();
    assert_eq!(
        &puback[..5],
        &[0x40, puback[1], 0, 9, 0x99],
        "payload format invalid"
    );

    // QoS 2 (the CONNACK said 1 at most): DISCONNECT 0x9B.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect(5, &token)).await.unwrap();
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.unwrap();
    let mut connack = vec![0u8; head[1] as usize];
    tcp.read_exact(&mut connack).await.unwrap();
    let mut publish = string(b"parley/typing");
    publish.extend([0, 3, 0]);
    publish.extend_from_slice(b"{}");
    tcp.write_all(&packet(0x34, &publish)).await.unwrap();
    let rest = read_to_end(&mut tcp).await;
    assert_eq!(
        &rest[..3],
        &[0xE0, rest[1], 0x9B],
        "qos not supported: {rest:?}"
    );

    // A client silent past 1.5 keep-alives is closed (3.1.1: no packet).
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&connect_keeping(4, &token, 1)).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        read_to_end(&mut tcp).await,
        [0x20, 2, 0, 0],
        "CONNACK, then closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );

    // Through all of it, the server kept serving.
    let (status, _) = sign_in(&server.url, "alice", None).await;
    assert_eq!(status, 200);
    assert!(metric(&server.url, "parley_mqtt_errors_total", "packet_too_large").await >= 1.0);
    server.stop().await;
}

#[tokio::test]
async fn mqtt_over_websocket_at_v1_mqtt() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let (_alice, _bob) = alice_and_bob(&server.url).await;
    let (token, _) = login(&server.url, "alice", None).await;
    let ws_url = format!("{}/v1/mqtt", server.url.replace("http", "ws"));

    // Without the subprotocol: refused before the upgrade.
    let plain = tokio_tungstenite::connect_async(ws_url.as_str()).await;
    assert!(plain.is_err(), "an upgrade without subprotocol mqtt");

    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "mqtt");
    // A CONNECT split over two messages: MQTT is a byte stream here too.
    let bytes = connect(4, &token);
    let (a, b) = bytes.split_at(5);
    ws.send(Message::Binary(a.to_vec().into())).await.unwrap();
    ws.send(Message::Binary(b.to_vec().into())).await.unwrap();
    let connack = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(connack.into_data().as_ref(), &[0x20, 2, 0, 0]);
    // PINGREQ → PINGRESP.
    ws.send(Message::Binary(vec![0xC0, 0].into()))
        .await
        .unwrap();
    let pong = loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if m.is_binary() {
            break m;
        }
    };
    assert_eq!(pong.into_data().as_ref(), &[0xD0, 0]);
    server.stop().await;
}

/// The packets in `bytes`: (first byte, body).
fn packets(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let first = bytes[0];
        let (mut len, mut i, mut shift) = (0usize, 1, 0);
        loop {
            let b = bytes[i];
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        out.push((first, bytes[i..i + len].to_vec()));
        bytes = &bytes[i + len..];
    }
    out
}

#[tokio::test]
async fn a_client_that_stops_acknowledging_is_closed_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.mqtt_inflight = 2;
    cfg.limits.write_timeout_ms = 300;
    let server = Server::start_with_mqtt(cfg).await;
    let port = server.mqtt_port.unwrap();
    let (_alice, bob) = alice_and_bob(&server.url).await;
    let (alice_token, _) = login(&server.url, "alice", None).await;
    let (bob_token, device) = login(&server.url, "bob", None).await;
    let mut alice = Client::connect(&server.url, &alice_token).await;

    // Bob's phone subscribes at QoS 1 (MQTT 5) and never acknowledges.
    let mut tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    tcp.write_all(&connect(5, &bob_token)).await.unwrap();
    let mut sub = vec![0, 1, 0];
    sub.extend(string(b"parley/me"));
    sub.push(1);
    tcp.write_all(&packet(0x82, &sub)).await.unwrap();
    for i in 0..40 {
        alice
            .say(&bob.id, &format!("n{i}"), &format!("n {i}"))
            .await;
    }
    let got = packets(&read_to_end(&mut tcp).await);
    let kinds: Vec<u8> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == 0x32).count(),
        2,
        "only the window's worth: {kinds:x?}"
    );
    let (last, body) = got.last().unwrap();
    assert_eq!((*last, body[0]), (0xE0, 0x97), "DISCONNECT, quota exceeded");

    // Nothing was confirmed, so all 40 come again, in order.
    let got = msgs(&output(paho(port, &device, "bob", 40, &["v5"])).await);
    let texts: Vec<_> = got.iter().map(|m| m["body"]["text"].clone()).collect();
    assert_eq!(texts, (0..40).map(|i| format!("n {i}")).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn mqtt_over_tls_with_the_edges_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServer::start(dir.path(), true, |_| {}).await;
    let mport = server.mqtt_port.unwrap();
    let (_, token) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let frame = text_to(&bob, "tls-1", "over TLS").to_string();
    let cafile = server.cert_path.to_str().unwrap();
    let args = [
        "--cafile",
        cafile,
        "-u",
        "token",
        "-P",
        &token,
        "-t",
        "parley/send",
        "-q",
        "1",
        "-m",
        &frame,
    ];
    // Trusted: the PUBACK comes (exit 0).
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &mport.to_string()])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // In plain text on the TLS port: no MQTT session.
    let plain = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mport.to_string()])
        .args(&args[2..])
        .output()
        .await
        .unwrap();
    assert!(!plain.status.success());
    server.stop().await;
}

/// A CONNECT over `/v1/mqtt` from `client` (as a trusted proxy names it);
/// the CONNACK's reason code.
async fn connect_from(url: &str, client: &str, token: &str) -> u8 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = format!("{}/v1/mqtt", url.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    h.insert("X-Forwarded-For", client.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Binary(connect(5, token).into()))
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a CONNACK")
            .unwrap()
            .unwrap();
        if m.is_binary() {
            let data = m.into_data();
            assert_eq!(data[0], 0x20, "a CONNACK: {data:?}");
            return data[3];
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_connects_are_limited_per_client_address() {
    let _mine = counters_to_myself().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.mqtt_connects_per_min_per_ip = 2;
    // Behind one proxy, whose X-Forwarded-For names the client: how a
    // test on loopback gets addresses of its own.
    cfg.limits.trusted_proxy_hops = 1;
    let server = Server::start_with(cfg).await;
    let (_alice, _bob) = alice_and_bob(&server.url).await;
    let (token, _) = login(&server.url, "alice", None).await;
    let hits = || metric(&server.url, "parley_limit_hits_total", "mqtt_connects");
    let before = hits().await;
    let flood = "203.0.113.7";
    // A CONNECT with a bad token counts as well: the address is judged first.
    assert_eq!(connect_from(&server.url, flood, "not-a-token").await, 0x87);
    assert_eq!(connect_from(&server.url, flood, &token).await, 0);
    for _ in 0..3 {
        // 0x9F: connection rate exceeded.
        assert_eq!(connect_from(&server.url, flood, &token).await, 0x9F);
    }
    assert_eq!(hits().await - before, 3.0);
    // Another address is served throughout.
    assert_eq!(connect_from(&server.url, "198.51.100.9", &token).await, 0);
    server.stop().await;
}
