//! Package inventories (changes::inventory) read inside real images, on a real buildkitd and
//! in the Docker engine: an image with a `.deb` and a wheel made here (installed from the
//! build context, no network), and busybox, which has no package manager.

use crate::support::buildkitd::Buildkitd;
use crate::support::{images, packages, Registry, RegistryAuth};
use stackctl::buildkit::{self, Address, TlsFiles};
use stackctl::changes::inventory::{self, Inventory, Manager, Package};
use stackctl::containers::in_buildkit::Node;
use stackctl::containers::runner::Runner;
use stackctl::credentials::CredentialStore;
use stackctl::registry::ImageRef;
use stackctl::spec::InfoCmd;
use std::time::Duration;

async fn node(bk: &Buildkitd) -> Node {
    let addr = Address::parse(&bk.unix, TlsFiles::default()).unwrap();
    let client = buildkit::connect(&addr).await.unwrap();
    Node::new(client, CredentialStore::default())
}

/// The inventory script for `managers` run in `image` by `runner`: it must succeed.
async fn read(runner: &Runner, image: &ImageRef, managers: &[Manager]) -> Inventory {
    let cmd = InfoCmd {
        description: "Packages".into(),
        command: inventory::script(managers),
    };
    let out = runner
        .info_commands(
            image,
            None,
            &[cmd],
            Duration::from_secs(300),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(out[0].ok, "{runner:?} in {image}: {}", out[0].text);
    inventory::parse(&out[0].stdout)
        .unwrap_or_else(|e| panic!("{runner:?} in {image}: {e:#}\n{}", out[0].stdout))
}

fn has(inv: &Inventory, m: Manager, name: &str) -> Option<String> {
    inv.of(m)
        .find(|p| p.name == name)
        .map(|p| p.version.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_of_an_image_in_buildkit_and_in_the_engine() {
    let Some(bk) = Buildkitd::start("inventory_of_an_image_in_buildkit_and_in_the_engine") else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let base = images::base_image();
    let dir = tempfile::tempdir().unwrap();
    let deb = packages::make_deb(dir.path(), "stackctl-inv-demo", "1:1.2.3-1");
    // Not PEP 503's form: the inventory keeps the name as its metadata gives it.
    let whl = packages::make_wheel(dir.path(), "Stackctl_Inv.Demo", "0.4.1");
    let (deb_name, whl_name) = (
        deb.file_name().unwrap().to_str().unwrap().to_string(),
        whl.file_name().unwrap().to_str().unwrap().to_string(),
    );
    let dockerfile = format!(
        "FROM {base}\nCOPY {deb_name} {whl_name} /tmp/\n\
         RUN dpkg -i /tmp/{deb_name} && {} && rm /tmp/{deb_name} /tmp/{whl_name}\n",
        packages::install_wheel(&format!("/tmp/{whl_name}")),
    );
    let local = format!("stackctl-test/inventory:{}", std::process::id());
    packages::build_image(&local, &dockerfile, &[deb, whl]).await;
    let pushed = images::push(&local, &host, "stack/inv", "t1", false).await;
    images::remove_tag(&local).await;
    let image = ImageRef::parse(&pushed).unwrap();

    let bb_local = images::busybox_image("stackctl-test/busybox-inv", "1").await;
    let bb =
        ImageRef::parse(&images::push(&bb_local, &host, "stack/bb", "t1", false).await).unwrap();

    let runners = [
        Runner::BuildKit(node(&bk).await),
        Runner::Engine(CredentialStore::default()),
    ];
    let mut seen = vec![];
    for runner in &runners {
        let inv = read(runner, &image, &[]).await;
        assert_eq!(inv.managers, [Manager::Apt, Manager::Pip], "{runner:?}");
        assert_eq!(
            has(&inv, Manager::Apt, "stackctl-inv-demo").as_deref(),
            Some("1:1.2.3-1"),
            "{runner:?}"
        );
        assert!(has(&inv, Manager::Apt, "dpkg").is_some(), "{runner:?}");
        assert!(has(&inv, Manager::Apt, "python3").is_some(), "{runner:?}");
        assert_eq!(
            has(&inv, Manager::Pip, "Stackctl_Inv.Demo").as_deref(),
            Some("0.4.1"),
            "{runner:?}: {:?}",
            inv.of(Manager::Pip).collect::<Vec<_>>()
        );
        assert!(has(&inv, Manager::Pip, "pytest").is_some(), "{runner:?}");
        // Sorted and unique, one version per name here.
        let mut sorted = inv.packages.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, inv.packages);
        let mut names: Vec<(Manager, &str)> = inv
            .packages
            .iter()
            .map(|p| (p.manager, p.name.as_str()))
            .collect();
        names.dedup();
        assert_eq!(names.len(), inv.packages.len(), "{runner:?}");

        let pip = read(runner, &image, &[Manager::Pip]).await;
        assert_eq!(pip.managers, [Manager::Pip], "{runner:?}");
        assert_eq!(
            pip.packages,
            inv.of(Manager::Pip).cloned().collect::<Vec<Package>>(),
            "{runner:?}"
        );

        // No dpkg, no python: nothing read, and no failure.
        assert_eq!(
            read(runner, &bb, &[]).await,
            Inventory::default(),
            "{runner:?}"
        );
        seen.push(inv);
    }
    assert_eq!(
        seen[0], seen[1],
        "BuildKit and the engine see the same image"
    );
}
