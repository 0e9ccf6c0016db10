//! An image's inventory computed where it is (a BuildKit node, or the engine), for an
//! image that has none attached.

use super::inventory::{self, Inventory, Manager};
use crate::containers::runner::Runner;
use crate::registry::ImageRef;
use crate::spec::InfoCmd;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The packages of `image` on `platform`, read by running the inventory in it; the error
/// says why there are none.
pub async fn inventory(
    runner: &Runner,
    image: &ImageRef,
    platform: &str,
    managers: &[Manager],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Inventory, String> {
    let cmd = InfoCmd {
        description: "Package inventory".into(),
        command: inventory::script(managers),
    };
    let out = runner
        .info_commands(image, Some(platform), &[cmd], timeout, cancel)
        .await
        .map_err(|stop| format!("the inventory of {image} did not run: {stop}"))?;
    let out = out.into_iter().next().ok_or("the inventory did not run")?;
    if !out.ok {
        return Err(format!(
            "the inventory of {image} failed: {}",
            out.text.trim()
        ));
    }
    inventory::parse(&out.stdout).map_err(|e| format!("the inventory of {image}: {e:#}"))
}
