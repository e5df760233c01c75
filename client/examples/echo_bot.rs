//! A bot that answers every message with the same text.
//!
//! ```sh
//! cargo run -p parley-client --example echo_bot -- http://127.0.0.1:8080 echo-bot a-long-password
//! ```
//! It signs up if it has to, keeps its state in `echo-bot.db`, and runs
//! until interrupted.

use parley_client::{Client, Event};
use parley_schemas::wire::{Body, Recipient};

#[tokio::main]
async fn main() -> Result<(), parley_client::ClientError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, password] = &args[..] else {
        eprintln!("usage: echo_bot URL USERNAME PASSWORD");
        std::process::exit(2);
    };
    let client = Client::open(format!("{name}.db"), url)?;
    let _ = client.sign_up(name, password).await;
    let me = client.sign_in(name, password).await?.user_id;
    let mut events = client.events();
    let runner = client.clone();
    tokio::spawn(async move { runner.run().await });
    println!("{name} is listening on {url}");
    while let Ok(event) = events.recv().await {
        if let Event::Message(m) = event {
            if let (Body::Text(text), false) = (&m.body, m.from == me) {
                // To a group back to the group, else back to the sender.
                let to = match m.to {
                    Recipient::Group(g) => Recipient::Group(g),
                    Recipient::User(_) => Recipient::User(m.from),
                };
                client.send_text(to, &format!("echo: {text}"))?;
            }
        }
    }
    Ok(())
}
