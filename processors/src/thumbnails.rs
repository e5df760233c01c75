//! The thumbnail job, on `accounts` (by user): for each uploaded JPEG,
//! PNG, WebP or GIF (its first frame), a JPEG of at most
//! [`THUMBNAIL_PX`] a side, stored by content (`thumbs/<sha256>`), and the
//! image's size and the thumbnail's existence written to the store.
//!
//! Off the upload path, and off every other job's: decoding runs on the
//! blocking pool, at most [`DECODES_AT_ONCE`] images at a time in the
//! process, whatever the partitions it holds. The thumbnail is encoded from
//! pixels, so none of the original's metadata (EXIF, location) is in it;
//! its orientation is applied first, so it shows upright. Images over
//! [`MAX_IMAGE_PIXELS`] are not decoded, decoder memory is capped, and an
//! image that fails to decode is counted and skipped, never retried.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use parley_engines::job::{events, Processor};
use parley_engines::state::ImageInfo;
use parley_engines::telemetry::emit;
use parley_engines::{BlobStore, Record, Result, StateOp};
use parley_schemas::event::{Event, MediaAdded};
use parley_schemas::media::{blob_key, thumbnail_key, MAX_IMAGE_PIXELS, THUMBNAIL_PX};
use parley_schemas::topics;

use crate::internal_events::{ThumbnailFailed, ThumbnailMade};

pub const JOB: &str = parley_schemas::jobs::THUMBNAILS;

/// The types thumbnails are made of.
const IMAGES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];
/// Largest image file read into memory to decode.
const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// Decoder allocations per image.
const MAX_DECODE_BYTES: u64 = 512 << 20;
const JPEG_QUALITY: u8 = 80;
/// Images read and decoded at once in this process, across every
/// partition's job: each may hold its file and up to [`MAX_DECODE_BYTES`]
/// of decoder memory, so a node holding 64 partitions is bounded by this,
/// not by its partition count.
pub const DECODES_AT_ONCE: usize = 2;
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DECODES_AT_ONCE);
/// Images being read or decoded now, and the most there ever were (what
/// the test of [`DECODES_AT_ONCE`] reads).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// One image's turn: counted while it lasts.
struct Turn<'a>(#[allow(dead_code)] tokio::sync::SemaphorePermit<'a>);

impl Turn<'_> {
    async fn take() -> Turn<'static> {
        let permit = DECODES.acquire().await.expect("never closed");
        let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Turn(permit)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct ThumbnailJob {
    blobs: Arc<dyn BlobStore>,
}

impl ThumbnailJob {
    pub fn new(blobs: Arc<dyn BlobStore>) -> Self {
        ThumbnailJob { blobs }
    }

    /// The image's size and its thumbnail, stored; `None` if it is not an
    /// image we thumbnail or its blob is gone.
    async fn thumbnail(&self, m: &MediaAdded) -> Result<Option<ImageInfo>> {
        if !IMAGES.contains(&m.mime.as_str()) || m.size > MAX_IMAGE_BYTES {
            return Ok(None);
        }
        // The file and the decoder's memory, both under the one bound.
        let _turn = Turn::take().await;
        let Some(stream) = self.blobs.read(&blob_key(&m.sha256), None).await? else {
            return Ok(None);
        };
        // Read into one buffer of the file's size: chunks and then a copy
        // of them all would hold it twice.
        let bytes = stream
            .try_fold(
                Vec::with_capacity(m.size as usize),
                |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                },
            )
            .await?;
        let made = tokio::task::spawn_blocking(move || make(&bytes))
            .await
            .map_err(|e| parley_engines::EngineError::Unavailable(format!("thumbnailer: {e}")))?;
        let (width, height, jpeg) = match made {
            Ok(m) => m,
            Err(reason) => {
                emit(ThumbnailFailed {
                    media: m.media,
                    reason: &reason,
                });
                return Ok(None);
            }
        };
        let mut w = self.blobs.writer().await?;
        let size = jpeg.len();
        w.write(Bytes::from(jpeg)).await?;
        w.commit(&thumbnail_key(&m.sha256)).await?;
        emit(ThumbnailMade { bytes: size });
        Ok(Some(ImageInfo {
            width,
            height,
            thumbnail: true,
        }))
    }
}

/// Decodes, orients, shrinks and encodes: `(width, height, jpeg)` of the
/// upright original and its thumbnail, or why not.
pub fn make(bytes: &[u8]) -> std::result::Result<(u32, u32, Vec<u8>), String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    // The decoder has read the header only: the size is checked before
    // any pixel is decoded.
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("reading its header: {e}"))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(format!("{w}x{h} is over {MAX_IMAGE_PIXELS} pixels"));
    }
    let orientation = decoder.orientation().ok();
    let img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    // Shrunk first, then turned upright: turning the full image would copy
    // it whole, outside the decoder's memory cap.
    let (w, h) = (img.width(), img.height());
    let mut thumb = if w.max(h) > THUMBNAIL_PX {
        img.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX)
    } else {
        img
    };
    let (mut width, mut height) = (w, h);
    if let Some(o) = orientation {
        thumb.apply_orientation(o);
        if turns_sideways(o) {
            (width, height) = (h, w);
        }
    }
    let thumb = thumb.into_rgb8();
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    thumb
        .write_with_encoder(encoder)
        .map_err(|e| format!("encoding: {e}"))?;
    debug_assert_eq!(
        image::guess_format(&out).ok(),
        Some(ImageFormat::Jpeg),
        "thumbnails are JPEG"
    );
    Ok((width, height, out))
}

/// Whether `o` swaps an image's width and height.
fn turns_sideways(o: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::*;
    matches!(o, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
}

#[async_trait]
impl Processor for ThumbnailJob {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let mut ops = Vec::new();
        for (_, event) in events(topics::ACCOUNTS, partition, records)? {
            if let Event::MediaAdded(m) = event {
                if let Some(image) = self.thumbnail(&m).await? {
                    ops.push(StateOp::SetMediaImage {
                        media: m.media,
                        image,
                    });
                }
            }
        }
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn thumbnails_are_small_jpegs_of_the_whole_image() {
        let (w, h, jpeg) = make(&png(1000, 500)).unwrap();
        assert_eq!((w, h), (1000, 500));
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        let (_, _, small) = make(&png(40, 30)).unwrap();
        let t = image::load_from_memory(&small).unwrap();
        assert_eq!((t.width(), t.height()), (40, 30), "never enlarged");
    }

    /// A JPEG of `w` x `h` whose EXIF says to turn it 90 degrees
    /// (orientation 6), as phones write them.
    fn sideways_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\x01".to_vec();
        exif.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        let mut app1 = vec![0xff, 0xe1];
        app1.extend(((exif.len() + 2) as u16).to_be_bytes());
        app1.extend(exif);
        [&jpeg[..2], &app1[..], &jpeg[2..]].concat()
    }

    #[test]
    fn a_sideways_photo_is_measured_and_thumbnailed_upright() {
        let (w, h, jpeg) = make(&sideways_jpeg(800, 400)).unwrap();
        assert_eq!((w, h), (400, 800), "the upright size");
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (160, 320));
    }

    /// However many partitions' jobs want images decoded at once, at
    /// most DECODES_AT_ONCE are read and decoded together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn decodes_across_jobs_share_one_bound() {
        use parley_engines::FsBlobs;
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobs::open(dir.path()).unwrap());
        let mut added = Vec::new();
        for i in 0..8u32 {
            let bytes = png(600 + i, 400);
            let sha256 = format!("{:064x}", i + 1);
            let mut w = blobs.writer().await.unwrap();
            w.write(Bytes::from(bytes.clone())).await.unwrap();
            w.commit(&blob_key(&sha256)).await.unwrap();
            added.push(MediaAdded {
                media: parley_schemas::media::MediaId(u128::from(i)),
                uploader: parley_schemas::ids::UserId(1),
                sha256,
                size: bytes.len() as u64,
                mime: "image/png".into(),
                ts: 0,
            });
        }
        // Eight jobs (one per partition) at once.
        let jobs: Vec<ThumbnailJob> = (0..8).map(|_| ThumbnailJob::new(blobs.clone())).collect();
        let made =
            futures::future::join_all(jobs.iter().zip(&added).map(|(j, m)| j.thumbnail(m))).await;
        assert!(made.iter().all(|r| matches!(r, Ok(Some(_)))));
        assert_eq!(PEAK.load(Ordering::SeqCst), DECODES_AT_ONCE);
        assert_eq!(IN_FLIGHT.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn corrupt_and_oversized_images_are_refused_not_fatal() {
        let mut cut = png(100, 100);
        cut.truncate(cut.len() / 2);
        assert!(make(&cut).is_err());
        assert!(make(b"\x89PNG\r\n\x1a\nnonsense").is_err());
        // A GIF whose header claims 60,000 x 60,000 pixels: refused
        // before any pixel is decoded.
        let mut bomb = b"GIF89a".to_vec();
        bomb.extend(60_000u16.to_le_bytes());
        bomb.extend(60_000u16.to_le_bytes());
        bomb.extend([0, 0, 0, 0x2c, 0, 0, 0, 0]);
        bomb.extend(60_000u16.to_le_bytes());
        bomb.extend(60_000u16.to_le_bytes());
        bomb.extend([0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
        let e = make(&bomb).unwrap_err();
        assert!(e.contains("over 50000000 pixels"), "{e}");
    }
}
