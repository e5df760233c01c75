//! The blob contract against S3, on a private S3-compatible server (moto)
//! started on a free port.

use parley_engines::contract::blob_contract;
use parley_engines::contract::servers::S3Server;
use parley_engines::s3::S3Blobs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_pass_the_blob_contract() {
    let server = S3Server::start();
    blob_contract(&S3Blobs::connect(&server.url).unwrap()).await;
    // The same bucket under a prefix: keys and listings stay under it.
    let prefixed = format!(
        "s3://{}/media/v1?endpoint=http://127.0.0.1:{}&region=us-east-1&access_key_id=test&secret_access_key=test",
        server.bucket, server.port
    );
    blob_contract(&S3Blobs::connect(&prefixed).unwrap()).await;
}

#[test]
fn s3_urls_are_checked() {
    assert!(S3Blobs::connect("s3://?endpoint=http://x").is_err());
    assert!(S3Blobs::connect("s3://b?no_such_setting=1").is_err());
    assert!(S3Blobs::connect("s3://b/../x").is_err());
    assert!(S3Blobs::connect("file:///x").is_err());
}
