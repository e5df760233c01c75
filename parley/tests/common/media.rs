//! Media helpers for the tests: uploads, downloads, chunks, and files
//! of a generated kind.

use std::path::Path;

use reqwest::header;
use serde_json::{json, Value};

/// Bytes that sniff as a PNG (a real image is not needed until thumbnails).
pub fn png_like(n: usize, seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    b
}

pub async fn upload(url: &str, token: &str, mime: &str, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/media"))
        .bearer_auth(token)
        .header(header::CONTENT_TYPE, mime)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub async fn fetch(url: &str, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .get(format!("{url}/v1/media/{id}"))
        .bearer_auth(token);
    if let Some(range) = range {
        r = r.header(header::RANGE, range);
    }
    r.send().await.unwrap()
}

pub async fn status_of(url: &str, token: &str, id: &str) -> u16 {
    fetch(url, token, id, None).await.status().as_u16()
}

pub fn media_to(to: Value, cid: &str, media_id: &str) -> Value {
    json!({"type": "send", "client_msg_id": cid, "to": to,
           "body": {"media": {"media_id": media_id, "mime": "text/html", "caption": "look"}}})
}

/// Files under the media store's `dir` (`blobs`, `Tmp`).
pub fn files(data: &Path, dir: &str) -> usize {
    std::fs::read_dir(data.join("media").join(dir)).map_or(0, |d| d.count())
}

/// A real JPEG of `w` x `h` with an EXIF segment (GPS included) after SOI.
pub fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let jpeg = out.into_inner();
    let payload = b"Exif\0\0MM\0*\0\0\0\x08\0\0GPSLatitude 52.52N secret-place";
    let mut app1 = vec![0xff, 0xe1];
    app1.extend(((payload.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(payload);
    [&jpeg[..2], &app1[..], &jpeg[2..]].concat()
}

pub async fn put_chunk(
    url: &str,
    token: &str,
    id: &str,
    start: usize,
    bytes: &[u8],
    total: usize,
) -> (u16, Value) {
    let end = start + bytes.len() - 1;
    let r = reqwest::Client::new()
        .put(format!("{url}/v1/media/uploads/{id}"))
        .bearer_auth(token)
        .header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{total}"),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Every file under the media store's `dir`, however deep.
pub fn deep_files(data: &Path, dir: &str) -> usize {
    fn count(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&data.join("media").join(dir))
}

/// `POST /v1/media/uploads` (a resumable upload's session): status and body.
pub async fn begin_upload(url: &str, token: &str, session: Value) -> (u16, Value) {
    let at = format!("{url}/v1/media/uploads");
    super::call(reqwest::Method::POST, &at, token, Some(session)).await
}
