//! Media throughput on a real `parley up` child process (its RSS from
//! /proc, so the client's memory is not in it).
//!
//! - `transfer`: uploads one file of `--mib` MiB, generated as it streams
//!   (the client never holds it), then downloads it and checks its
//!   SHA-256; reports MB/s each way and the server's RSS before and at its
//!   peak (sampled every 50 ms) during each.
//! - `images`: `--uploads` JPEG photos of `--width` x `--height`, sent
//!   `--concurrency` at a time; reports uploads/s, and how long until every
//!   thumbnail existed (the thumbnail job's throughput).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use parley_benches::{rand_suffix, rss_kib, session, spawn_up};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Transfer,
    Images,
}

#[derive(Parser)]
#[command(about = "Upload and download throughput, server memory, thumbnails per second")]
struct Args {
    #[arg(value_enum)]
    mode: Mode,
    /// The parley binary to start (a release build).
    #[arg(long, default_value = "target/release/parley")]
    parley: PathBuf,
    /// Transfer: the file's size.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    #[arg(long, default_value_t = 200)]
    uploads: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 1600)]
    width: u32,
    #[arg(long, default_value_t = 1200)]
    height: u32,
}

/// Samples `pid`'s RSS every 50 ms until dropped; the peak.
struct Peak {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    fn watch(pid: u32) -> Peak {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Peak { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let limits = [
        ("PARLEY__LIMITS__MEDIA_MAX_BYTES", "4294967296"),
        ("PARLEY__LIMITS__MEDIA_BYTES_PER_DAY", "1099511627776"),
        ("PARLEY__LIMITS__MEDIA_UPLOADS_PER_MIN", "1000000"),
    ];
    let server = spawn_up(&args.parley, &limits).await?;
    let http = reqwest::Client::new();
    let (_, token) = session(&http, &server.url, &format!("media{}", rand_suffix())).await?;
    match args.mode {
        Mode::Transfer => transfer(&args, &http, &server.url, server.pid, &token).await,
        Mode::Images => images(&args, &http, &server.url, &token).await,
    }
}

const MIB: u64 = 1 << 20;

async fn transfer(
    args: &Args,
    http: &reqwest::Client,
    url: &str,
    pid: u32,
    token: &str,
) -> Result<()> {
    let size = args.mib * MIB;
    // Deterministic, incompressible-looking bytes, made as they are sent.
    let chunk = |i: u64| -> Bytes {
        let mut b = vec![0u8; MIB as usize];
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for v in b.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.copy_from_slice(&x.to_le_bytes()[..v.len()]);
        }
        Bytes::from(b)
    };
    let mut want = Sha256::new();
    for i in 0..args.mib {
        want.update(chunk(i));
    }
    let want = format!("{:x}", want.finalize());
    let before = rss_kib(pid)?;
    let peak = Peak::watch(pid);
    let body = futures::stream::iter(0..args.mib).map(move |i| Ok::<_, std::io::Error>(chunk(i)));
    let t = Instant::now();
    let up: Value = http
        .post(format!("{url}/v1/media"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let up_secs = t.elapsed().as_secs_f64();
    let up_peak = peak.stop();
    if up["sha256"] != want.as_str() {
        bail!("stored hash {} is not {want}", up["sha256"]);
    }
    let id = up["media_id"].as_str().context("media_id")?;
    let between = rss_kib(pid)?;
    let peak = Peak::watch(pid);
    let t = Instant::now();
    let mut got = Sha256::new();
    let mut n = 0u64;
    let mut stream = http
        .get(format!("{url}/v1/media/{id}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .bytes_stream();
    while let Some(c) = stream.try_next().await? {
        n += c.len() as u64;
        got.update(&c);
    }
    let down_secs = t.elapsed().as_secs_f64();
    let down_peak = peak.stop();
    if n != size || format!("{:x}", got.finalize()) != want {
        bail!("downloaded {n} bytes that are not the upload");
    }
    let mb = size as f64 / 1e6;
    println!(
        "upload   {} MiB in {up_secs:.2} s = {:.0} MB/s; server RSS {} -> peak {} MiB",
        args.mib,
        mb / up_secs,
        before / 1024,
        up_peak / 1024
    );
    println!(
        "download {} MiB in {down_secs:.2} s = {:.0} MB/s; server RSS {} -> peak {} MiB",
        args.mib,
        mb / down_secs,
        between / 1024,
        down_peak / 1024
    );
    Ok(())
}

/// A photo-like JPEG (gradients and noise, so it compresses like one).
fn photo(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed) >> 27;
        image::Rgb([
            (x / 7) as u8 ^ n as u8,
            (y / 5) as u8,
            (seed as u8).wrapping_add(n as u8),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encodes");
    out.into_inner()
}

async fn images(args: &Args, http: &reqwest::Client, url: &str, token: &str) -> Result<()> {
    let files: Vec<Vec<u8>> = (0..args.uploads)
        .map(|i| photo(args.width, args.height, i as u32))
        .collect();
    let avg = files.iter().map(Vec::len).sum::<usize>() / files.len().max(1);
    let t = Instant::now();
    let ids: Vec<String> = futures::stream::iter(files)
        .map(|f| async move {
            let v: Value = http
                .post(format!("{url}/v1/media"))
                .bearer_auth(token)
                .header("content-type", "image/jpeg")
                .body(f)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(v["media_id"].as_str().context("media_id")?.to_owned())
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let upload_secs = t.elapsed().as_secs_f64();
    // Every thumbnail: polled newest first, since the job takes them in order.
    for id in ids.iter().rev() {
        loop {
            let r = http
                .get(format!("{url}/v1/media/{id}/thumbnail"))
                .bearer_auth(token)
                .send()
                .await?;
            if r.status() == 200 {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("no thumbnail of {id} after 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all_secs = t.elapsed().as_secs_f64();
    let n = args.uploads as f64;
    println!(
        "{} JPEGs of {}x{} (avg {} KiB), {} at a time: {:.0} uploads/s; every thumbnail after {:.2} s = {:.0} thumbnails/s",
        args.uploads,
        args.width,
        args.height,
        avg / 1024,
        args.concurrency,
        n / upload_secs,
        all_secs,
        n / all_secs
    );
    Ok(())
}
