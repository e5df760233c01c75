//! `parley-chat`, the terminal chat, as a child process against a real
//! `parley up`: it signs up, writes to a user picked by name, and prints
//! what that user answers.

mod common;

use std::process::Stdio;

use common::*;
use parley_client::Event;
use parley_schemas::wire::{Body, Recipient};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_chat_sends_and_shows_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = up(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let (bob, _) = person(dir.path(), &s.url, "bob", "bob.db").await;
    let mut events = bob.events();

    let mut chat = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley-chat"))
        .args(["--url", &s.url, "--user", "alice", "--sign-up", "--db"])
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
                let line = out.next_line().await.unwrap().expect("parley-chat ended");
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
    let msg = first(&mut events, "alice's message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert!(matches!(&msg.body, Body::Text(t) if t == "hello from the terminal"));
    until("✓").await;

    bob.send_text(Recipient::User(msg.from), "hi alice")
        .unwrap();
    assert_eq!(until("hi alice").await, "[bob] hi alice");
    input.write_all(b"/quit\n").await.unwrap();
    assert!(chat.wait().await.unwrap().success());
    s.down().await;
}
