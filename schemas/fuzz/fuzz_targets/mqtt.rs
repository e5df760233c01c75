//! Feeds arbitrary bytes, split at an arbitrary point, to the MQTT reader
//! the edge runs on every MQTT connection (`parley_ingest::mqtt::codec`),
//! and every PUBLISH it reads to the topic mapping. Neither may panic; a
//! packet must read the same whether its bytes came whole or in two reads.
//! The codec is compiled from its own files (it needs `rmqtt-codec`, not
//! the edge), so the fuzzer does not build the whole ingest crate.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../ingest/src/mqtt/codec/mod.rs"]
mod codec;

use codec::{topics, Codec, In};

/// Every packet `chunks` decode to, and whether the stream stayed good.
fn read(chunks: &[&[u8]]) -> (Vec<In>, bool) {
    let mut codec = Codec::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
    }
    (out, true)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(data.len());
    let (whole, whole_ok) = read(&[data]);
    let (split, split_ok) = read(&[&data[..cut], &data[cut..]]);
    if whole_ok && split_ok {
        assert_eq!(whole, split);
    }
    for p in whole {
        match p {
            In::Publish(p) => {
                let _ = topics::client_frame(&p.topic, &p.payload);
            }
            In::Subscribe { filters, .. } => {
                for (f, _) in filters {
                    let _ = topics::subscription(&f);
                }
            }
            _ => {}
        }
    }
});
