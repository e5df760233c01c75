//! The web client in a real browser: Debian's chromium driven by
//! playwright-core (`parley/tests/web/scenario.mjs`) against a real
//! `parley up`. Screenshots go to `target/web-screenshots/` (CI keeps
//! them). `scripts/test` installs chromium and the driver.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_carries_a_chat_in_a_real_browser() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in {} (scripts/test does)",
        web.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.notify.webpush_subject = Some("mailto:ops@example.com".into());
    let s = Server::start_with(cfg).await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let image = dir.path().join("photo.png");
    image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(&image)
        .unwrap();
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&web)
            .arg("scenario.mjs")
            .arg(&url)
            .arg(&shots)
            .arg(&image)
            .output()
            .expect("node is installed")
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    println!("{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser scenario failed:\n{log}");
    assert!(log.contains("scenario passed"));
    s.stop().await;
}
