//! Reclaiming builder space after an image (`prune: true` in the spec): BuildKit's
//! unused cache records, and the engine's copy of an image that is safely in its registry.

use crate::buildkit::{self, EngineSocket};
use bollard_buildkit_proto::moby::buildkit::v1::PruneRequest;
use futures::StreamExt;

/// Ask BuildKit to drop its unused cache records (but those used within `keep_used`, when
/// given) and, when the image was pushed and lives in an engine, remove the engine's copy.
/// Returns the bytes reclaimed.
pub async fn reclaim(
    client: &buildkit::Client,
    engine: Option<&EngineSocket>,
    image: &str,
    pushed: bool,
    keep_used: Option<std::time::Duration>,
) -> anyhow::Result<u64> {
    let mut reclaimed: u64 = 0;
    // BuildKit keeps a record whose last use is younger than keep_duration (nanoseconds);
    // a second more covers the clocks of client and daemon.
    let keep_duration = keep_used
        .map(|d| (d + std::time::Duration::from_secs(1)).as_nanos() as i64)
        .unwrap_or(0);
    let mut stream = client
        .control()
        .prune(PruneRequest {
            all: false,
            keep_duration,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("BuildKit's prune failed: {}", e.message()))?
        .into_inner();
    let mut records = 0usize;
    while let Some(rec) = stream.next().await {
        let rec = rec.map_err(|e| anyhow::anyhow!("BuildKit prune: {}", e.message()))?;
        reclaimed += rec.size.max(0) as u64;
        records += 1;
    }
    tracing::debug!("BuildKit dropped {records} cache records");

    if let (Some(sock), true) = (engine, pushed) {
        let docker = buildkit::push::docker(sock)?;
        // Containers of the tests are already gone (they are removed in every case).
        if let Ok(info) = docker.inspect_image(image).await {
            let opts = bollard::query_parameters::RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match docker.remove_image(image, Some(opts), None).await {
                Ok(_) => reclaimed += info.size.unwrap_or(0).max(0) as u64,
                Err(e) => tracing::warn!("could not remove {image} from the engine: {e}"),
            }
        }
    }
    Ok(reclaimed)
}
