//! Time limits on a connection that no single request sees: the first
//! request's headers must arrive within a deadline counted from accept
//! (TLS handshake and HTTP/2 preface included), a connection with no
//! request in flight is closed once idle, and request bodies must keep up
//! a minimum rate. A socket that says nothing, or says it very slowly,
//! cannot hold a place.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Why a connection was closed by its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No request's headers within the deadline from accept.
    FirstRequest,
    /// Nothing in flight for the idle timeout.
    Idle,
}

#[derive(Clone, Copy)]
struct State {
    requests: u64,
    in_flight: usize,
    last: Instant,
}

/// One connection's requests: how many came, how many are in flight, and
/// when the last one ended.
pub struct Activity {
    tx: watch::Sender<State>,
}

/// A request in flight, until its response body has been sent (or
/// dropped).
pub struct InFlight {
    tx: watch::Sender<State>,
}

impl Activity {
    pub fn new() -> Activity {
        let (tx, _) = watch::channel(State {
            requests: 0,
            in_flight: 0,
            last: Instant::now(),
        });
        Activity { tx }
    }

    /// A request arrived (its headers were read).
    pub fn begin(&self) -> InFlight {
        self.tx.send_modify(|s| {
            s.requests += 1;
            s.in_flight += 1;
        });
        InFlight {
            tx: self.tx.clone(),
        }
    }

    /// Resolves when the connection is past one of its deadlines: no
    /// request by `first_by`, or nothing in flight for `idle`.
    pub async fn expired(&self, first_by: Instant, idle: Duration) -> Expired {
        let mut rx = self.tx.subscribe();
        loop {
            let s = *rx.borrow_and_update();
            let due = match (s.requests, s.in_flight) {
                (_, n) if n > 0 => None,
                (0, _) => Some((first_by, Expired::FirstRequest)),
                _ => Some((s.last + idle, Expired::Idle)),
            };
            match due {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => {
                    // The sender lives as long as `self`.
                    let _ = rx.changed().await;
                }
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.tx.send_modify(|s| {
            s.in_flight -= 1;
            s.last = Instant::now();
        });
    }
}

/// A response body that holds its request's [`InFlight`] until sent.
pub fn tracked(body: Body, flight: InFlight) -> Body {
    Body::new(Tracked {
        inner: body,
        _flight: flight,
    })
}

struct Tracked {
    inner: Body,
    _flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The slowest a request body may come: after `grace`, at least
/// `bytes_per_sec` on average since the body began (Apache's
/// mod_reqtimeout `body=20,MinRate=500`).
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    pub grace: Duration,
    pub bytes_per_sec: u32,
}

/// A body read too slowly, ended with an error.
#[derive(Debug, thiserror::Error)]
#[error("request body slower than {0} bytes/s")]
pub struct TooSlow(u32);

/// `body`, ended with [`TooSlow`] when it falls behind `rate`.
pub fn min_rate(body: Body, rate: MinRate) -> Body {
    if rate.bytes_per_sec == 0 || body.is_end_stream() {
        return body;
    }
    let start = Instant::now();
    Body::new(Paced {
        inner: body,
        rate,
        start,
        received: 0,
        check: Box::pin(tokio::time::sleep_until(start + rate.grace)),
    })
}

struct Paced {
    inner: Body,
    rate: MinRate,
    start: Instant,
    received: u64,
    check: Pin<Box<Sleep>>,
}

impl Paced {
    /// When what has come so far stops being enough.
    fn due(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.rate.bytes_per_sec as f64);
        self.start + self.rate.grace + earned
    }
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => loop {
                if self.check.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = self.due();
                if due <= Instant::now() {
                    crate::serve::slow_body();
                    let rate = self.rate.bytes_per_sec;
                    return Poll::Ready(Some(Err(axum::Error::new(TooSlow(rate)))));
                }
                self.check.as_mut().reset(due);
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_expires_and_one_in_flight_does_not() {
        let a = Activity::new();
        let t0 = Instant::now();
        let why = a
            .expired(t0 + Duration::from_secs(10), Duration::from_secs(60))
            .await;
        assert_eq!(why, Expired::FirstRequest);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));

        let a = std::sync::Arc::new(Activity::new());
        let flight = a.begin();
        let t1 = Instant::now();
        let watch = {
            let a = a.clone();
            tokio::spawn(async move {
                a.expired(t1 + Duration::from_secs(1), Duration::from_secs(60))
                    .await
            })
        };
        // In flight for five minutes: no deadline runs.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!watch.is_finished());
        drop(flight);
        assert_eq!(watch.await.unwrap(), Expired::Idle);
        assert_eq!(t1.elapsed(), Duration::from_secs(360));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_drips_is_cut_and_one_that_flows_is_not() {
        let rate = MinRate {
            grace: Duration::from_secs(2),
            bytes_per_sec: 100,
        };
        // One byte every 29 s.
        let drip = futures::stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_secs(29)).await;
            (n < 3).then(|| (Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let t0 = Instant::now();
        let err = axum::body::to_bytes(min_rate(Body::from_stream(drip), rate), 1 << 20).await;
        assert!(err.is_err());
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

        // 1 KiB a second: well above the rate, for ten seconds.
        let flow = futures::stream::iter(0..10).then(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 1024]))
        });
        let got = axum::body::to_bytes(min_rate(Body::from_stream(flow), rate), 1 << 20).await;
        assert_eq!(got.unwrap().len(), 10 * 1024);
    }
}
