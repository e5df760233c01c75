//! The push seam, beside [`Cluster`]: where a job's pushes to connected
//! devices go. A sequencer runs on a delivery node (or in `parley up`);
//! the sockets it pushes to live on edges. In one process the edge's hub
//! takes pushes directly; in a cluster [`ClusterPusher`] looks the users
//! up in the session registry and mails each edge the pushes for its
//! sockets, which the edge hands to its hub.
//!
//! Mail is best effort (Redis pub/sub). Nothing is lost by that: every
//! item is stored before it is pushed, a device fills a gap from the store
//! when the next item arrives, and a lost subscription ([`Mail::Gap`])
//! makes every socket of the edge check the store at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::{ServerFrame, SharedMsg};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::internal_events::{PushesMailed, PushesNotMailed};
use crate::telemetry::emit;

/// What a device's writer receives.
#[derive(Debug, Clone)]
pub enum Push {
    /// Inbox item `seq` of the user: a `msg`, rendered once for every
    /// inbox it goes to. `origin` is the device that sent it, when the item
    /// is in its sender's own inbox: that device already has it.
    Item {
        seq: u64,
        msg: Arc<SharedMsg>,
        origin: Option<DeviceId>,
    },
    /// A frame outside the inbox (`status`, `typing`, `presence`).
    Frame(Arc<ServerFrame>),
    /// Pushes may have been lost on the way here: check the store.
    Resync,
    /// This device of the user signed out: its sockets close.
    SignedOut(DeviceId),
}

/// Where a job's pushes go.
pub trait Pusher: Send + Sync {
    fn deliver(&self, pushes: Vec<(UserId, Push)>);
}

/// A batch of pushes as mailed between nodes. Each distinct frame travels
/// once: a group message goes to hundreds of members on one edge, and only
/// their seqs differ.
#[derive(Serialize, Deserialize)]
struct Letter {
    frames: Vec<ServerFrame>,
    pushes: Vec<Mailed>,
}

#[derive(Serialize, Deserialize)]
struct Mailed {
    user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<DeviceId>,
    /// Index into `frames` (unused with `signed_out`).
    #[serde(default)]
    frame: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_out: Option<DeviceId>,
}

pub fn encode(pushes: &[(UserId, Push)]) -> Bytes {
    let mut mail = Letter {
        frames: Vec::new(),
        pushes: Vec::with_capacity(pushes.len()),
    };
    // Frames shared by pushes are the same allocation.
    let mut index: HashMap<*const (), usize> = HashMap::new();
    for (user, push) in pushes {
        let (seq, origin, ptr) = match push {
            Push::Item { seq, msg, origin } => (Some(*seq), *origin, Arc::as_ptr(msg) as *const ()),
            Push::Frame(frame) => (None, None, Arc::as_ptr(frame) as *const ()),
            Push::Resync => continue,
            Push::SignedOut(device) => {
                mail.pushes.push(Mailed {
                    user: *user,
                    seq: None,
                    origin: None,
                    frame: 0,
                    signed_out: Some(*device),
                });
                continue;
            }
        };
        let frame = *index.entry(ptr).or_insert_with(|| {
            mail.frames.push(match push {
                Push::Item { msg, .. } => ServerFrame::Msg(msg.frame.clone()),
                Push::Frame(frame) => (**frame).clone(),
                Push::Resync | Push::SignedOut(_) => unreachable!("skipped above"),
            });
            mail.frames.len() - 1
        });
        mail.pushes.push(Mailed {
            user: *user,
            seq,
            origin,
            frame,
            signed_out: None,
        });
    }
    Bytes::from(serde_json::to_vec(&mail).expect("pushes serialize"))
}

pub fn decode(bytes: &[u8]) -> Result<Vec<(UserId, Push)>, serde_json::Error> {
    let mail: Letter = serde_json::from_slice(bytes)?;
    let msgs: Vec<Option<Arc<SharedMsg>>> = mail
        .frames
        .iter()
        .map(|f| match f {
            ServerFrame::Msg(m) => Some(Arc::new(SharedMsg::new(m.clone()))),
            _ => None,
        })
        .collect();
    let frames: Vec<Arc<ServerFrame>> = mail.frames.into_iter().map(Arc::new).collect();
    mail.pushes
        .into_iter()
        .map(|m| {
            if let Some(device) = m.signed_out {
                return Ok((m.user, Push::SignedOut(device)));
            }
            let frame = frames.get(m.frame).ok_or_else(|| {
                serde::de::Error::custom(format!("frame {} of {}", m.frame, frames.len()))
            })?;
            let push = match (m.seq, &msgs[m.frame]) {
                (Some(seq), Some(msg)) => Push::Item {
                    seq,
                    msg: msg.clone(),
                    origin: m.origin,
                },
                _ => Push::Frame(frame.clone()),
            };
            Ok((m.user, push))
        })
        .collect()
}

/// Routes pushes through the session registry, in the order given, on one
/// background task (a job's commit never waits for the network).
pub struct ClusterPusher {
    tx: mpsc::UnboundedSender<Vec<(UserId, Push)>>,
}

impl ClusterPusher {
    pub fn spawn(cluster: Arc<dyn Cluster>) -> Arc<ClusterPusher> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<(UserId, Push)>>();
        tokio::spawn(async move {
            let mut batches = Vec::new();
            while rx.recv_many(&mut batches, 64).await > 0 {
                let pushes: Vec<(UserId, Push)> = batches.drain(..).flatten().collect();
                // A short outage is retried; past that, devices recover the
                // items from the store when their next push arrives.
                let mut wait = std::time::Duration::from_millis(100);
                for attempt in 1..=3 {
                    match route(&*cluster, &pushes).await {
                        Ok(()) => break,
                        Err(e) if attempt == 3 => {
                            emit(PushesNotMailed { error: &e });
                        }
                        Err(_) => {
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                    }
                }
            }
        });
        Arc::new(ClusterPusher { tx })
    }
}

impl Pusher for ClusterPusher {
    fn deliver(&self, pushes: Vec<(UserId, Push)>) {
        if !pushes.is_empty() {
            let _ = self.tx.send(pushes);
        }
    }
}

async fn route(cluster: &dyn Cluster, pushes: &[(UserId, Push)]) -> crate::Result<()> {
    let mut users: Vec<UserId> = pushes.iter().map(|(u, _)| *u).collect();
    users.sort_unstable();
    users.dedup();
    let nodes = cluster.session_nodes(&users).await?;
    let nodes_of: BTreeMap<UserId, Vec<u32>> = users.into_iter().zip(nodes).collect();
    let mut per_node: BTreeMap<u32, Vec<(UserId, Push)>> = BTreeMap::new();
    for (user, push) in pushes {
        for node in &nodes_of[user] {
            per_node
                .entry(*node)
                .or_default()
                .push((*user, push.clone()));
        }
    }
    for (node, pushes) in per_node {
        emit(PushesMailed {
            count: pushes.len(),
        });
        cluster.publish(node, encode(&pushes)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_schemas::ids::{ConversationId, MessageId};
    use parley_schemas::wire::{Body, MsgFrame, Recipient, TypingNotice};

    #[test]
    fn mail_round_trips() {
        let typing = Arc::new(ServerFrame::Typing(TypingNotice {
            conversation_id: ConversationId::direct(UserId(1), UserId(2)),
            user_id: UserId(1),
        }));
        let msg = Arc::new(SharedMsg::new(MsgFrame {
            seq: None,
            msg_id: MessageId(11),
            conversation_id: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(1),
            to: Recipient::User(UserId(2)),
            body: Body::Text("hi".into()),
            ts: 5,
            extra: Default::default(),
        }));
        let pushes = vec![
            (
                UserId(2),
                Push::Item {
                    seq: 7,
                    msg: msg.clone(),
                    origin: Some(DeviceId(3)),
                },
            ),
            (UserId(2), Push::Frame(typing.clone())),
            (UserId(5), Push::Resync),
            (UserId(5), Push::SignedOut(DeviceId(4))),
            (
                UserId(6),
                Push::Item {
                    seq: 1,
                    msg: msg.clone(),
                    origin: None,
                },
            ),
        ];
        let bytes = encode(&pushes);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text.matches(r#""text":"hi""#).count(),
            1,
            "one copy: {text}"
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 4, "resync is local only");
        assert!(matches!(back[2], (UserId(5), Push::SignedOut(DeviceId(4)))));
        match (&back[0].1, &back[3].1) {
            (Push::Item { msg: a, .. }, Push::Item { msg: b, seq: 1, .. }) => {
                assert!(Arc::ptr_eq(a, b), "decoded once, shared")
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(br#"{"frames":[],"pushes":[{"user":"1","frame":0}]}"#).is_err());
        assert!(
            matches!(&back[0], (UserId(2), Push::Item { seq: 7, origin: Some(DeviceId(3)), msg: m }) if **m == *msg)
        );
        assert!(matches!(&back[1], (UserId(2), Push::Frame(f)) if **f == *typing));
    }
}
