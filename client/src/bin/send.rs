//! `parley-client-send DB URL USER PASSWORD TO_USER_ID COUNT`: signs in
//! (or keeps the stored session), puts COUNT messages `m0`..`m{COUNT-1}`
//! in the outbox (prints `composed`), and runs until the outbox is empty
//! (prints `first ack` at the first, `sent` at the end). The SDK tests
//! kill it in the middle and start it again with COUNT 0 to send what is
//! left.

use std::time::Duration;

use parley_client::{Client, Event};
use parley_schemas::ids::UserId;
use parley_schemas::wire::Recipient;

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [db, url, user, password, to, count] = &a[..] else {
        eprintln!("usage: parley-client-send DB URL USER PASSWORD TO_USER_ID COUNT");
        std::process::exit(2);
    };
    let client = Client::open(db, url).expect("the store opens");
    if client.session().expect("the store reads").is_none() {
        client.sign_in(user, password).await.expect("sign-in");
    }
    let mut events = client.events();
    let to = Recipient::User(UserId(to.parse().expect("a user id")));
    for i in 0..count.parse::<u32>().expect("a count") {
        client
            .send_text(to, &format!("m{i}"))
            .expect("the outbox takes it");
    }
    println!("composed");
    let runner = client.clone();
    tokio::spawn(async move { runner.run().await });
    let mut first = true;
    while !client.outbox().expect("the store reads").is_empty() {
        // Woken by each ack; the timeout re-checks after a reconnect.
        if let Ok(Ok(Event::Acked(_))) =
            tokio::time::timeout(Duration::from_secs(1), events.recv()).await
        {
            if std::mem::take(&mut first) {
                println!("first ack");
            }
        }
    }
    println!("sent");
    client.stop();
}
