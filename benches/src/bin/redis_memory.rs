//! Redis memory per user of the state store, for docs/redis-keys.md.
//!
//! Starts a private redis-server, seeds `--users` users with the state an
//! active user has (account, two devices with cursors, presence, an inbox
//! of `--inbox` 200-byte items, marks in `--conversations` chats, today's
//! idempotency keys) through the real `RedisState`, and divides the growth
//! of `used_memory` by the users.
//!
//! `cargo run --release -p parley-benches --bin parley-redis-memory -- --users 20000`

use bytes::Bytes;
use clap::Parser;
use parley_engines::contract::servers::RedisServer;
use parley_engines::redis::RedisState;
use parley_engines::state::{AccountStore, InboxStore, JobStore};
use parley_engines::StateOp;
use parley_schemas::codec;
use parley_schemas::event::{Event, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{Body, ReceiptStatus, Recipient};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    users: u64,
    /// Undelivered-or-recent inbox items kept per user
    #[arg(long, default_value_t = 20)]
    inbox: u64,
    #[arg(long, default_value_t = 5)]
    conversations: u64,
    /// Sends per user within the resend window (idempotency keys)
    #[arg(long, default_value_t = 20)]
    sends: u64,
}

fn used_memory(url: &str) -> u64 {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = RedisServer::start();
    let store = RedisState::connect(&server.url, "parley").await?;
    let before = used_memory(&server.url);
    let base = 1_000_000u64;
    for u in 0..args.users {
        let user = UserId(base + u);
        store.create_account(&format!("user{u:09}"), "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", "Display Name").await?;
        let mut ops = Vec::new();
        for d in 1..=2 {
            store.new_device(user).await?;
            store.advance_cursor(user, DeviceId(d), args.inbox).await?;
        }
        ops.push(StateOp::SetPresence {
            user,
            online: true,
            last_seen: Some(1_764_000_000_000),
            at: 1_764_000_000_000,
        });
        for c in 0..args.conversations {
            let peer = UserId(base + (u + c + 1) % args.users);
            let conversation = ConversationId::direct(user, peer);
            ops.push(StateOp::AdvanceMark {
                conversation,
                user,
                status: ReceiptStatus::Read,
                up_to: MessageId(1 << 60),
            });
        }
        for s in 1..=args.inbox {
            let peer = UserId(base + (u + s % args.conversations + 1) % args.users);
            let message = MessageSent {
                msg_id: MessageId((1 << 60) + s),
                conversation: ConversationId::direct(user, peer),
                from: peer,
                from_device: DeviceId(1),
                to: Recipient::User(user),
                client_msg_id: format!("c-{s:08}"),
                body: Body::Text("x".repeat(150)),
                ts: 1_764_000_000_000,
                reply_to: None,
                forwarded: false,
            };
            let item = Event::InboxItem(InboxItem {
                user,
                seq: s,
                message: message.clone(),
            });
            ops.push(StateOp::InboxPut {
                user,
                seq: s,
                conversation: message.conversation,
                msg_id: message.msg_id,
                item: Bytes::from(codec::encode(&item)),
            });
        }
        for s in 0..args.sends {
            ops.push(StateOp::IdemPut {
                user,
                client_msg_id: format!("3f2a9c1e-{s:08}"),
                msg_id: MessageId((1 << 60) + s),
                conversation: ConversationId::direct(user, UserId(user.0 + 1)),
                expires_at: parley_schemas::ids::now_ms() + 86_400_000,
            });
        }
        store.write(ops).await?;
    }
    let after = used_memory(&server.url);
    let per_user = (after - before) as f64 / args.users as f64;
    println!(
        "{} users, inbox {} items, {} conversations, {} idempotency keys each: {:.0} bytes/user; 500M users: {:.1} TiB",
        args.users,
        args.inbox,
        args.conversations,
        args.sends,
        per_user,
        per_user * 500e6 / (1u64 << 40) as f64
    );
    Ok(())
}
