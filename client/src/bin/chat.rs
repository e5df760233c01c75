//! `parley-chat`: a line-based terminal chat on `parley-client`, the
//! quickest way for an operator to check a deployment by hand. A binary
//! of the client crate, so the server links no SQLite and no E2E crypto.
//!
//! Lines are sent to the current recipient; `/to NAME` picks a user,
//! `/group ID` a group, `/quit` ends. Incoming messages print as
//! `[name] text` (and are marked read), acks as `✓`. State (session, outbox, messages) is kept
//! in a SQLite file, so a message typed while the server is away goes out
//! when it is back.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use parley_client::{Client, ClientError, Event};
use parley_schemas::ids::{GroupId, UserId};
use parley_schemas::wire::{Body, ErrorCode, Recipient};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A terminal chat with a running Parley.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "parley-chat", version)]
struct ChatArgs {
    /// The edge to talk to
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Your username
    #[arg(long)]
    user: String,
    /// Your password (or PARLEY_PASSWORD)
    #[arg(long, env = "PARLEY_PASSWORD", hide_env_values = true)]
    password: String,
    /// Register the user first if it does not exist
    #[arg(long)]
    sign_up: bool,
    /// The client's SQLite file [default: ./parley-chat-USER.db]
    #[arg(long)]
    db: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    chat(clap::Parser::parse()).await
}

async fn chat(args: ChatArgs) -> Result<()> {
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("parley-chat-{}.db", args.user)));
    let client =
        Client::open(&db, &args.url).with_context(|| format!("opening {}", db.display()))?;
    if args.sign_up {
        match client.sign_up(&args.user, &args.password).await {
            Ok(_) => {}
            Err(ClientError::Server {
                code: ErrorCode::Conflict,
                ..
            }) => {}
            Err(e) => return Err(e).context("signing up"),
        }
    }
    let me = client
        .sign_in(&args.user, &args.password)
        .await
        .context("signing in")?
        .user_id;
    let mut events = client.events();
    let runner = client.clone();
    let run = tokio::spawn(async move { runner.run().await });
    let names = client.clone();
    let printer = tokio::spawn(async move {
        let mut known: HashMap<UserId, String> = HashMap::new();
        while let Ok(e) = events.recv().await {
            match e {
                Event::Connected => println!("* connected"),
                Event::Disconnected => println!("* offline: typed messages wait and go out later"),
                Event::Acked(_) => println!("✓"),
                Event::Refused { error, .. } => println!("* not sent: {}", error.message),
                Event::Message(m) if m.from != me => {
                    let name = match known.get(&m.from) {
                        Some(n) => n.clone(),
                        None => {
                            let n = names.username(m.from).await.unwrap_or(m.from.to_string());
                            known.insert(m.from, n.clone());
                            n
                        }
                    };
                    let text = match &m.body {
                        Body::Text(t) => t.clone(),
                        Body::Media(media) => {
                            format!("[{}]", media.mime.as_deref().unwrap_or("file"))
                        }
                        Body::E2e(_) => "[encrypted]".to_owned(),
                        Body::Edit(e) => format!("[edited] {}", e.text),
                        Body::Delete(_) => "[deleted a message]".to_owned(),
                        Body::Reaction(r) => format!("[reacted {}]", r.emoji),
                    };
                    println!("[{name}] {text}");
                    // Shown on the terminal: read.
                    names.mark_read(m.conversation_id, m.msg_id);
                }
                _ => {}
            }
        }
    });
    println!("* signed in as {}: /to NAME, /group ID, /quit", args.user);
    let mut to: Option<Recipient> = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim_end();
        if line == "/quit" {
            break;
        } else if let Some(name) = line.strip_prefix("/to ") {
            match client.user_by_name(name.trim()).await {
                Ok(id) => {
                    to = Some(Recipient::User(id));
                    println!("* writing to {}", name.trim());
                }
                Err(e) => println!("* {e}"),
            }
        } else if let Some(id) = line.strip_prefix("/group ") {
            match id.trim().parse::<u64>() {
                Ok(g) => to = Some(Recipient::Group(GroupId(g))),
                Err(_) => println!("* a group id is a number"),
            }
        } else if !line.is_empty() {
            let Some(to) = to else {
                println!("* pick someone first: /to NAME");
                continue;
            };
            client.send_text(to, line)?;
        }
    }
    if !client.outbox()?.is_empty() {
        bail!(
            "{} messages are still in the outbox; they go out at the next `parley-chat`",
            client.outbox()?.len()
        );
    }
    client.stop();
    let _ = run.await;
    printer.abort();
    Ok(())
}
