//! Just enough XMPP for the load generator to drive ejabberd with the same
//! load shape as Parley: SASL PLAIN, resource bind, available presence,
//! `<message type='chat'>` out, and the bodies of incoming messages. No
//! XML library on the hot path: ejabberd writes each stanza whole, and the
//! generator only needs the body, as the harness's own Python client does
//! (`../shared/peers/ejabberd/xmpp_load.py`, kept as a cross-check).

use anyhow::{bail, Context, Result};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

fn header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The reading half of a signed-in stream.
pub struct Reader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Reader {
    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.rd.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Everything up to and including the first of `ends`.
    async fn until(&mut self, ends: &[&[u8]]) -> Result<String> {
        loop {
            if let Some(end) = ends
                .iter()
                .filter_map(|e| find(&self.buf, e).map(|i| i + e.len()))
                .min()
            {
                let got: Vec<u8> = self.buf.drain(..end).collect();
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            if !self.fill().await? {
                bail!("stream ended during sign-in");
            }
        }
    }

    /// The body of the next `<message>` (other stanzas are skipped), or
    /// `None` at the end of the stream.
    pub async fn next_body(&mut self) -> Result<Option<String>> {
        loop {
            match find(&self.buf, b"<message") {
                Some(start) => {
                    if let Some(len) = find(&self.buf[start..], b"</message>") {
                        let end = start + len + b"</message>".len();
                        let stanza = &self.buf[start..end];
                        let body = find(stanza, b"<body>").and_then(|b| {
                            let from = b + b"<body>".len();
                            let to = from + find(&stanza[from..], b"</body>")?;
                            Some(String::from_utf8_lossy(&stanza[from..to]).into_owned())
                        });
                        self.buf.drain(..end);
                        if let Some(body) = body {
                            return Ok(Some(body));
                        }
                        continue;
                    }
                    self.buf.drain(..start);
                }
                // Keep a tail that may be the start of `<message`.
                None => {
                    let keep = self.buf.len().saturating_sub(b"<message".len());
                    self.buf.drain(..keep);
                }
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

/// Signs `user@domain` in at `addr` (SASL PLAIN, bind, presence): the
/// stream's halves.
pub async fn sign_in(
    addr: &str,
    domain: &str,
    user: &str,
    password: &str,
) -> Result<(Reader, OwnedWriteHalf)> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (rd, mut wr) = tcp.into_split();
    let mut r = Reader {
        rd,
        buf: Vec::new(),
    };
    wr.write_all(header(domain).as_bytes()).await?;
    let features = r.until(&[b"</stream:features>"]).await?;
    if !features.contains("PLAIN") {
        bail!("{user}: no SASL PLAIN offered");
    }
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let auth =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>");
    wr.write_all(auth.as_bytes()).await?;
    let res = r.until(&[b"/>", b"</success>", b"</failure>"]).await?;
    if !res.contains("<success") {
        bail!("{user}: SASL failed: {res}");
    }
    wr.write_all(header(domain).as_bytes()).await?;
    r.until(&[b"</stream:features>"]).await?;
    let bind = "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                <resource>lg</resource></bind></iq>";
    wr.write_all(bind.as_bytes()).await?;
    let res = r.until(&[b"</iq>"]).await?;
    if !res.contains("type='result'") && !res.contains("type=\"result\"") {
        bail!("{user}: bind failed: {res}");
    }
    // Without available presence, ejabberd stores bare-JID messages offline.
    wr.write_all(b"<presence/>").await?;
    Ok((r, wr))
}

/// A chat message to `to@domain` with `id` and a plain-text `body`.
pub fn message(to: &str, domain: &str, id: &str, body: &str) -> String {
    format!("<message to='{to}@{domain}' type='chat' id='{id}'><body>{body}</body></message>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_come_out_of_a_stream_cut_anywhere() {
        let stream = "<presence from='a'/><message from='a' to='b' id='1'><body>lg 10 1</body>\
                      <stanza-id xmlns='urn:xmpp:sid:0' id='x'/></message><r xmlns='urn:xmpp:sm:3'/>\
                      <message id='2'><body>lg 20 2</body></message>";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Dribbled out in pieces that split tags.
            for chunk in stream.as_bytes().chunks(7) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        let (rd, _wr) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = Reader {
            rd,
            buf: Vec::new(),
        };
        assert_eq!(r.next_body().await.unwrap().as_deref(), Some("lg 10 1"));
        assert_eq!(r.next_body().await.unwrap().as_deref(), Some("lg 20 2"));
        writer.await.unwrap();
        assert_eq!(r.next_body().await.unwrap(), None);
    }
}
