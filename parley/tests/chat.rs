//! `parley chat`, the terminal chat, as a child process against a real
//! `parley up`: it signs up, writes to a user picked by name, and prints
//! what that user answers.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_chat_sends_and_shows_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    register(&s.url, "bob").await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let mut bob = Client::connect(&s.url, &bt).await;

    let mut chat = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "chat",
            "--url",
            &s.url,
            "--user",
            "alice",
            "--sign-up",
            "--db",
        ])
        .arg(dir.path().join("alice.db"))
        .env("PARLEY_PASSWORD", "alice-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = chat.stdin.take().unwrap();
    let mut out = BufReader::new(chat.stdout.take().unwrap()).lines();
    let mut until = async |want: &str| {
        tokio::time::timeout(WAIT, async {
            loop {
                let line = out.next_line().await.unwrap().expect("parley chat ended");
                if line.contains(want) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no line with {want:?}"))
    };
    until("* connected").await;
    input
        .write_all(b"/to bob\nhello from the terminal\n")
        .await
        .unwrap();
    until("* writing to bob").await;
    let msg = bob.expect("msg").await;
    assert_eq!(msg["body"]["text"], "hello from the terminal");
    until("✓").await;

    let alice = msg["from"].as_str().unwrap();
    bob.send(
        json!({"type": "send", "client_msg_id": "b1", "to": {"user": alice},
                    "body": {"text": "hi alice"}}),
    )
    .await;
    assert_eq!(until("hi alice").await, "[bob] hi alice");
    input.write_all(b"/quit\n").await.unwrap();
    assert!(chat.wait().await.unwrap().success());
    s.stop().await;
}
