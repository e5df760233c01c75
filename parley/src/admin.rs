//! The operator's commands that are no role: reading the moderation
//! reports (`parley moderation`) and making a Web Push key (`parley
//! vapid-key`).

use anyhow::{Context, Result};
use parley_engines::{EngineError, Log};
use parley_processors::notify::webpush::Vapid;
use parley_schemas::topics;

/// Every report on the `moderation` topic the log still holds, oldest
/// first per partition, as JSON objects (`parley moderation` prints them).
pub async fn moderation_reports(log: &dyn Log) -> Result<Vec<serde_json::Value>> {
    use parley_engines::log::ReadLimit;
    use parley_schemas::codec;
    use parley_schemas::event::Event;
    let mut out = Vec::new();
    let partitions = match log.partitions(topics::MODERATION).await {
        Ok(n) => n,
        Err(EngineError::UnknownTopic(_)) => return Ok(out),
        Err(e) => return Err(e).context("reading the moderation topic"),
    };
    for p in 0..partitions {
        let bounds = log.bounds(topics::MODERATION, p).await?;
        let mut at = bounds.start;
        while at < bounds.end {
            let batch = log
                .read(topics::MODERATION, p, at, ReadLimit::default())
                .await?;
            for r in &batch.records {
                let Ok(Event::ReportFiled(f)) = codec::decode(&r.payload) else {
                    continue;
                };
                let messages: serde_json::Value =
                    serde_json::from_str(&f.messages_json).unwrap_or_default();
                out.push(serde_json::json!({
                    "report_id": f.report_id, "reporter": f.reporter, "user_id": f.user,
                    "conversation_id": f.conversation, "msg_id": f.msg_id,
                    "reason": f.reason, "messages": messages, "ts": f.ts,
                }));
            }
            if batch.next_offset <= at {
                break;
            }
            at = batch.next_offset;
        }
    }
    Ok(out)
}

/// A new VAPID key for `notify.webpush_key` (base64url PKCS#8) and its
/// public half (base64url point).
pub fn new_vapid_key() -> Result<(String, String)> {
    let key = Vapid::generate();
    let vapid = Vapid::new(&key, "mailto:x").map_err(anyhow::Error::msg)?;
    let public = vapid.public_key().to_owned();
    Ok((key, public))
}
