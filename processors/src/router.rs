use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parley_engines::job::{events, Processor};
use parley_engines::{Log, Record, Result, StateOp};
use parley_schemas::event::{Event, InboxItem, StatusUpdate};
use parley_schemas::partition::user_partition;
use parley_schemas::wire::Recipient;
use parley_schemas::{codec, topics};

use parley_schemas::wire::RESEND_WINDOW_MS;

/// The job name under which the router stores its offsets.
pub const JOB: &str = "router";

pub struct Router {
    log: Arc<dyn Log>,
    inbox_partitions: u32,
}

impl Router {
    pub fn new(log: Arc<dyn Log>, inbox_partitions: u32) -> Self {
        Router {
            log,
            inbox_partitions,
        }
    }
}

#[async_trait]
impl Processor for Router {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let mut ops = Vec::new();
        // Inbox partition -> records, kept in log order.
        let mut out: BTreeMap<u32, Vec<Bytes>> = BTreeMap::new();
        let mut route = |user, event: &Event| {
            out.entry(user_partition(user, self.inbox_partitions))
                .or_default()
                .push(Bytes::from(codec::encode(event)));
        };
        for (offset, event) in events(topics::EVENTS, partition, records) {
            match event {
                Event::MessageSent(m) => {
                    let recipients = match m.to {
                        Recipient::User(u) => vec![u],
                        Recipient::Group(_) => Vec::new(), // groups: issue 6
                    };
                    for user in recipients.into_iter().chain(std::iter::once(m.from)) {
                        let item = Event::InboxItem(InboxItem {
                            user,
                            seq: 0,
                            message: m.clone(),
                        });
                        route(user, &item);
                    }
                    ops.push(StateOp::IdemPut {
                        user: m.from,
                        client_msg_id: m.client_msg_id.clone(),
                        msg_id: m.msg_id,
                        expires_at: m.ts + RESEND_WINDOW_MS,
                    });
                    ops.push(StateOp::TouchLastSeen {
                        user: m.from,
                        at: m.ts,
                    });
                }
                Event::Receipt(rc) => {
                    ops.push(StateOp::AdvanceMark {
                        conversation: rc.conversation,
                        user: rc.by,
                        status: rc.status,
                        up_to: rc.up_to,
                    });
                    // In a 1:1 chat the messages acknowledged are the peer's.
                    if let Some(sender) = rc.conversation.peer_of(rc.by) {
                        let status = Event::Status(StatusUpdate {
                            to: sender,
                            conversation: rc.conversation,
                            msg_id: rc.up_to,
                            status: rc.status,
                            by: rc.by,
                            ts: rc.ts,
                        });
                        route(sender, &status);
                    }
                }
                other => tracing::warn!(
                    partition,
                    offset,
                    kind = other.kind(),
                    "unexpected event on events"
                ),
            }
        }
        let appends = out
            .into_iter()
            .map(|(p, recs)| self.log.append(topics::INBOX, p, recs));
        futures::future::try_join_all(appends).await?;
        Ok(ops)
    }
}
