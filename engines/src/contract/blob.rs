//! The blob-store contract: what every [`BlobStore`] must do.

use bytes::Bytes;
use futures::TryStreamExt;

use super::unique;
use crate::blob::BlobStore;

/// Runs the blob-store contract against `store`. Keys are fresh, so the
/// suite can share a bucket.
pub async fn blob_contract<S: BlobStore + ?Sized>(store: &S) {
    commit_makes_a_blob_whole_and_visible(store).await;
    ranges_and_absent_blobs(store).await;
    a_second_commit_to_a_key_keeps_the_first(store).await;
    aborted_and_dropped_writers_leave_nothing(store).await;
    list_and_delete(store).await;
    bad_keys_are_refused(store).await;
    big_blobs_stream_in_parts(store).await;
}

async fn read_all<S: BlobStore + ?Sized>(
    s: &S,
    key: &str,
    range: Option<std::ops::Range<u64>>,
) -> Option<Vec<u8>> {
    let stream = s.read(key, range).await.expect("read")?;
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("stream");
    Some(chunks.concat())
}

fn key(prefix: &str) -> String {
    unique(prefix).to_lowercase().replace('-', "/")
}

async fn put<S: BlobStore + ?Sized>(s: &S, key: &str, chunks: &[&[u8]]) {
    let mut w = s.writer().await.expect("writer");
    for c in chunks {
        w.write(Bytes::copy_from_slice(c)).await.expect("write");
    }
    w.commit(key).await.expect("commit");
}

async fn commit_makes_a_blob_whole_and_visible<S: BlobStore + ?Sized>(s: &S) {
    let k = key("whole");
    let mut w = s.writer().await.unwrap();
    w.write(Bytes::from_static(b"hello, ")).await.unwrap();
    w.write(Bytes::from_static(b"world")).await.unwrap();
    assert_eq!(s.size(&k).await.unwrap(), None, "visible before commit");
    w.commit(&k).await.unwrap();
    assert_eq!(s.size(&k).await.unwrap(), Some(12));
    assert_eq!(read_all(s, &k, None).await.unwrap(), b"hello, world");
}

async fn ranges_and_absent_blobs<S: BlobStore + ?Sized>(s: &S) {
    let k = key("range");
    put(s, &k, &[b"0123456789"]).await;
    assert_eq!(read_all(s, &k, Some(2..5)).await.unwrap(), b"234");
    assert_eq!(read_all(s, &k, Some(9..10)).await.unwrap(), b"9");
    assert_eq!(read_all(s, &k, Some(4..4)).await.unwrap(), b"");
    let absent = key("absent");
    assert!(read_all(s, &absent, None).await.is_none());
    assert_eq!(s.size(&absent).await.unwrap(), None);
}

async fn a_second_commit_to_a_key_keeps_the_first<S: BlobStore + ?Sized>(s: &S) {
    let k = key("dedup");
    put(s, &k, &[b"first"]).await;
    put(s, &k, &[b"other"]).await;
    assert_eq!(read_all(s, &k, None).await.unwrap(), b"first");
}

async fn aborted_and_dropped_writers_leave_nothing<S: BlobStore + ?Sized>(s: &S) {
    let k = key("abort");
    let mut w = s.writer().await.unwrap();
    w.write(Bytes::from_static(b"half")).await.unwrap();
    w.abort().await;
    assert_eq!(s.size(&k).await.unwrap(), None);
    let mut w = s.writer().await.unwrap();
    w.write(Bytes::from_static(b"half")).await.unwrap();
    drop(w);
    assert_eq!(s.size(&k).await.unwrap(), None);
}

async fn list_and_delete<S: BlobStore + ?Sized>(s: &S) {
    let dir = key("list");
    for (name, body) in [("b", &b"22"[..]), ("a", b"1"), ("c/d", b"333")] {
        put(s, &format!("{dir}/{name}"), &[body]).await;
    }
    put(s, &format!("{dir}x/e"), &[b"not under the prefix"]).await;
    let listed = s.list(&format!("{dir}/")).await.unwrap();
    let got: Vec<(String, u64)> = listed.iter().map(|b| (b.key.clone(), b.size)).collect();
    assert_eq!(
        got,
        vec![
            (format!("{dir}/a"), 1),
            (format!("{dir}/b"), 2),
            (format!("{dir}/c/d"), 3)
        ]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(listed
        .iter()
        .all(|b| b.modified_ms + 3_600_000 > now && b.modified_ms < now + 3_600_000));
    s.delete(&format!("{dir}/b")).await.unwrap();
    s.delete(&format!("{dir}/b")).await.unwrap();
    let left = s.list(&format!("{dir}/")).await.unwrap();
    assert_eq!(left.len(), 2);
    // Emptied, a prefix lists nothing, and takes blobs again.
    s.delete(&format!("{dir}/c/d")).await.unwrap();
    s.delete(&format!("{dir}/a")).await.unwrap();
    assert!(s.list(&format!("{dir}/")).await.unwrap().is_empty());
    put(s, &format!("{dir}/c/e"), &[b"4"]).await;
    assert_eq!(s.size(&format!("{dir}/c/e")).await.unwrap(), Some(1));
    assert!(s
        .list(&format!("{}/", key("empty")))
        .await
        .unwrap()
        .is_empty());
}

async fn bad_keys_are_refused<S: BlobStore + ?Sized>(s: &S) {
    for bad in ["../etc/passwd", "a//b", "/abs", "UP"] {
        assert!(s.size(bad).await.is_err(), "{bad}");
        assert!(s.read(bad, None).await.is_err(), "{bad}");
        let w = s.writer().await.unwrap();
        assert!(w.commit(bad).await.is_err(), "{bad}");
    }
    assert!(s.list("no-slash").await.is_err());
}

/// Bigger than S3's 5 MiB part, in uneven chunks.
async fn big_blobs_stream_in_parts<S: BlobStore + ?Sized>(s: &S) {
    let k = key("big");
    let body: Vec<u8> = (0..(11 * 1024 * 1024 + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut w = s.writer().await.unwrap();
    for c in body.chunks(700_001) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit(&k).await.unwrap();
    assert_eq!(s.size(&k).await.unwrap(), Some(body.len() as u64));
    assert!(read_all(s, &k, None).await.unwrap() == body);
    let r = 5 * 1024 * 1024 - 3..5 * 1024 * 1024 + 5;
    assert_eq!(
        read_all(s, &k, Some(r.start as u64..r.end as u64))
            .await
            .unwrap(),
        body[r]
    );
}
