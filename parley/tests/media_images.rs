//! Thumbnails through the protocol: made in the background without the
//! original's metadata, announced in `body.media`, members only.

mod common;

use common::media::*;
use common::*;
use reqwest::header;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_get_a_metadata_free_thumbnail_and_their_size_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (_, bob) = alice_and_bob(&s.url).await;
    let (at, _) = login(&s.url, "alice", None).await;
    let (bt, _) = login(&s.url, "bob", None).await;
    let original = jpeg_with_exif(1200, 900);
    assert!(original.windows(11).any(|w| w == b"GPSLatitude"));
    let (status, up) = upload(&s.url, &at, "image/jpeg", original.clone()).await;
    assert_eq!(status, 201, "{up}");
    let id = up["media_id"].as_str().unwrap().to_owned();

    let thumb_url = format!("{}/v1/media/{id}/thumbnail", s.url);
    let thumb = eventually("a thumbnail", WAIT, || {
        let (url, at) = (thumb_url.clone(), at.clone());
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(at)
                .send()
                .await
                .unwrap();
            (r.status() == 200).then_some(r)
        }
    })
    .await;
    assert_eq!(thumb.headers()[header::CONTENT_TYPE], "image/jpeg");
    let thumb = thumb.bytes().await.unwrap();
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (320, 240));
    assert!(!thumb.windows(4).any(|w| w == b"Exif"), "metadata left in");
    assert!(!thumb.windows(11).any(|w| w == b"GPSLatitude"));
    // The original is served as uploaded, byte for byte.
    let r = fetch(&s.url, &at, &id, None).await;
    assert_eq!(r.bytes().await.unwrap(), original);

    // Sent now, the message says how big the image is and that a
    // thumbnail is there; the recipient may fetch it, a stranger not.
    let mut a = Client::connect(&s.url, &at).await;
    let mut b = Client::connect(&s.url, &bt).await;
    a.send(media_to(json!({"user": bob.id}), "img", &id)).await;
    a.expect("ack").await;
    let msg = b.expect("msg").await;
    let media = &msg["body"]["media"];
    assert_eq!(
        (&media["width"], &media["height"], &media["thumbnail"]),
        (&json!(1200), &json!(900), &json!(true))
    );
    let (status, _) = get(&s.url, &bt, &format!("/v1/media/{id}/thumbnail")).await;
    assert_eq!(status, 200);
    register(&s.url, "eve").await;
    let (et, _) = login(&s.url, "eve", None).await;
    let (status, _) = get(&s.url, &et, &format!("/v1/media/{id}/thumbnail")).await;
    assert_eq!(status, 404);

    // A PNG (generated) gets one too.
    let png = {
        let img =
            image::RgbaImage::from_fn(500, 1000, |x, y| image::Rgba([x as u8, y as u8, 1, 200]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let (_, up) = upload(&s.url, &at, "image/png", png).await;
    let png_thumb = format!("/v1/media/{}/thumbnail", up["media_id"].as_str().unwrap());
    let thumb = eventually("the PNG's thumbnail", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), png_thumb.clone());
        async move {
            let r = reqwest::Client::new()
                .get(format!("{url}{path}"))
                .bearer_auth(at)
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                return None;
            }
            Some(r.bytes().await.unwrap())
        }
    })
    .await;
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (160, 320));

    // A corrupt image is stored (it is the sender's file) but gets no
    // thumbnail, and the job goes on to the next one.
    // Metrics are per process, and the other tests of this file upload
    // image-like bytes too: count the change.
    let failed = || metric(&s.url, "parley_thumbnails_failed_total", "");
    let failed_before = failed().await;
    let mut broken = vec![0xff, 0xd8, 0xff, 0xe0];
    broken.extend([0x42; 500]);
    let (_, bad) = upload(&s.url, &at, "image/jpeg", broken).await;
    let (_, good) = upload(&s.url, &at, "image/jpeg", jpeg_with_exif(100, 50)).await;
    let good_thumb = format!("/v1/media/{}/thumbnail", good["media_id"].as_str().unwrap());
    eventually("the next image's thumbnail", WAIT, || {
        let (url, at, path) = (s.url.clone(), at.clone(), good_thumb.clone());
        async move { (get(&url, &at, &path).await.0 == 200).then_some(()) }
    })
    .await;
    let bad_thumb = format!("/v1/media/{}/thumbnail", bad["media_id"].as_str().unwrap());
    assert_eq!(get(&s.url, &at, &bad_thumb).await.0, 404);
    assert_eq!(failed().await - failed_before, 1.0);
    s.stop().await;
}
