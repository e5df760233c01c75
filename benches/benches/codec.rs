//! Encode/decode cost of the event envelope.
//! `cargo bench -p parley-benches --bench codec`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parley_schemas::event::{Event, InboxItem, MessageSent};
use parley_schemas::ids::{ConversationId, DeviceId, MessageIdGenerator, UserId};
use parley_schemas::wire::{Body, Recipient};
use parley_schemas::{codec, ids::now_ms};

fn message() -> MessageSent {
    MessageSent {
        msg_id: MessageIdGenerator::new(7).unwrap().next_id(),
        conversation: ConversationId::direct(UserId(123_456_789), UserId(987_654_321)),
        from: UserId(123_456_789),
        from_device: DeviceId(2),
        to: Recipient::User(UserId(987_654_321)),
        client_msg_id: "7f3c2a10-client".into(),
        body: Body::Text("Happy new year! ".repeat(9)),
        ts: now_ms(),
        reply_to: None,
        forwarded: false,
    }
}

fn bench(c: &mut Criterion) {
    let events = [
        ("message_sent", Event::MessageSent(message())),
        (
            "inbox_item",
            Event::InboxItem(InboxItem {
                user: UserId(987_654_321),
                seq: 4242,
                message: message(),
            }),
        ),
    ];
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    for (name, e) in &events {
        let bytes = codec::encode(e);
        g.bench_function(format!("encode/{name}/{}B", bytes.len()), |b| {
            let mut buf = Vec::with_capacity(512);
            b.iter(|| {
                buf.clear();
                codec::encode_into(std::hint::black_box(e), &mut buf);
                buf.len()
            })
        });
        g.bench_function(format!("decode/{name}/{}B", bytes.len()), |b| {
            b.iter(|| codec::decode(std::hint::black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
