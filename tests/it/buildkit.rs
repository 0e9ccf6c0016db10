//! Builds through the Docker engine's real BuildKit (dockerd 20.10, BuildKit v0.8), checked by
//! running the images. Needs dockerd and docker-registry (scripts/dev-env, .ci/run).
use crate::support;

use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, LogsOptions, PushImageOptions,
    RemoveContainerOptions, RemoveImageOptions, TagImageOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{outcome, stackctl, text, Registry, RegistryAuth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Builds share one engine; running them one at a time keeps timings and cache state clear
/// (one test prunes the build cache).
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn docker() -> Docker {
    let sock = support::docker_socket();
    Docker::connect_with_unix(&sock.to_string_lossy(), 600, bollard::API_DEFAULT_VERSION).unwrap()
}

/// Remove test images (errors ignored: they may be gone already).
async fn remove_images(d: &Docker, refs: &[String]) {
    for r in refs {
        let opts = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let _ = d.remove_image(r, Some(opts), None).await;
    }
}

/// Run `sh -c script` in `image`; its exit code and output.
async fn run_in(d: &Docker, image: &str, script: &str) -> (i64, String) {
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    };
    let id = d
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .expect("create container")
        .id;
    d.start_container(
        &id,
        None::<bollard::query_parameters::StartContainerOptions>,
    )
    .await
    .unwrap();
    let mut code = 0;
    let mut w = d.wait_container(&id, None::<WaitContainerOptions>);
    while let Some(r) = w.next().await {
        match r {
            Ok(r) => code = r.status_code,
            Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
            Err(e) => panic!("wait: {e}"),
        }
    }
    let mut out = String::new();
    let mut logs = d.logs(
        &id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    while let Some(l) = logs.next().await {
        out.push_str(&l.unwrap().to_string());
    }
    let _ = d
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    (code, out)
}

/// A stack in a temp dir: spec.yml and images/<key>/Dockerfile.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn new(spec: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spec.yml"), spec).unwrap();
        Stack { dir }
    }
    fn image(&self, key: &str, dockerfile: &str) -> PathBuf {
        let p = self.dir.path().join("images").join(key);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("Dockerfile"), dockerfile).unwrap();
        p
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Run stackctl with `args` in `dir`, CI mode (plain progress), Docker config from `docker_config`.
async fn run_stackctl(dir: &Path, args: &[&str], docker_config: Option<&Path>) -> Output {
    let mut c = tokio::process::Command::from(stackctl());
    c.args(args).current_dir(dir).env("CI", "true");
    match docker_config {
        Some(p) => c.env("DOCKER_CONFIG", p),
        None => c.env("DOCKER_CONFIG", dir.join("no-docker-config")),
    };
    c.output().await.unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stage_build_sends_the_context_faithfully() {
    let _g = ENGINE.lock().await;
    let d = docker();
    let base = unique("stackctl-bk-test/busybox");
    support::images::busybox_image(&base, "1").await;
    let name = unique("stackctl-bk-test/ctx");
    let stack = Stack::new(&format!(
        "images:\n  ctx:\n    image_name: {name}\n    build_args: {{GREETING: hello-from-spec}}\ntag:\n  prefix: \"2026.3\"\n"
    ));
    let ctx = stack.image(
        "ctx",
        &format!(
            "FROM {base}:1 AS builder\nARG GREETING\nARG EXTRA\nRUN echo \"$GREETING $EXTRA\" > /greeting\n\
             FROM {base}:1\nCOPY --from=builder /greeting /greeting\nCOPY . /ctx/\n"
        ),
    );
    // Nested folders, a symlink (pointing out of the context), an ignored folder, an
    // executable, a 100 MB file.
    std::fs::create_dir_all(ctx.join("a/b/c")).unwrap();
    std::fs::write(ctx.join("a/b/c/deep.txt"), "deep\n").unwrap();
    std::fs::create_dir_all(ctx.join("ignored/sub")).unwrap();
    std::fs::write(ctx.join("ignored/sub/secret.txt"), "must not be sent\n").unwrap();
    std::fs::write(ctx.join("skip.log"), "ignored by pattern\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "ignored\n*.log\n").unwrap();
    std::os::unix::fs::symlink("../../../etc/hostname", ctx.join("a/outside-link")).unwrap();
    std::os::unix::fs::symlink("b/c/deep.txt", ctx.join("a/inside-link")).unwrap();
    let exe = ctx.join("a/run.sh");
    std::fs::write(&exe, "#!/bin/sh\necho run\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o750)).unwrap();
    let big = ctx.join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..100u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 31 + j * 7 % 251) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let big_sha = hex::encode(Sha256::digest(std::fs::read(&big).unwrap()));
    let log = stack.path().join("logs/ctx.build.log");

    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "ctx",
            "--tag",
            "t1",
            "--build-arg",
            "EXTRA=from-cli",
            "--progress",
            "plain",
            "--log",
            log.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    let image = format!("{name}:t1");
    assert_eq!(text(&out.stdout).trim(), image);

    let (code, got) = run_in(
        &d,
        &image,
        "cat /greeting; cd /ctx; sha256sum big.bin; stat -c '%a %s' a/run.sh big.bin; \
         readlink a/outside-link; readlink a/inside-link; cat a/inside-link; \
         test -e ignored && echo IGNORED-PRESENT; test -e skip.log && echo LOG-PRESENT; \
         find . | sort",
    )
    .await;
    assert_eq!(code, 0, "{got}");
    assert!(got.contains("hello-from-spec from-cli"), "{got}");
    assert!(got.contains(&format!("{big_sha}  big.bin")), "{got}");
    assert!(got.contains("750 "), "executable bit lost: {got}");
    assert!(got.contains("644 104857600"), "{got}");
    assert!(got.contains("../../../etc/hostname"), "{got}");
    assert!(got.contains("b/c/deep.txt\ndeep"), "{got}");
    assert!(
        !got.contains("IGNORED-PRESENT") && !got.contains("LOG-PRESENT"),
        "{got}"
    );
    assert!(got.contains("./a/b/c/deep.txt"), "{got}");

    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("Time each step took:"), "{log_text}");
    assert!(log_text.contains("RUN echo"), "{log_text}");
    assert!(log_text.contains("started 20"), "{log_text}");

    remove_images(&d, &[image, format!("{base}:1")]).await;
}

/// `build-image` makes the request `stackctl build` makes: a `BASE_TAG` the spec sets is
/// kept (it used to be overwritten with the build's tag), and `--build-arg` still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_keeps_a_base_tag_the_spec_sets() {
    let _g = ENGINE.lock().await;
    let d = docker();
    // The parent exists only as `:pinned` (and `:other`), never under the build's tag.
    let parent = unique("stackctl-bk-test/pinparent");
    support::images::busybox_image(&parent, "pinned").await;
    support::images::busybox_image(&parent, "other").await;
    let child = unique("stackctl-bk-test/pinchild");
    let stack = Stack::new(&format!(
        "images:\n  parent:\n    image_name: {parent}\n  child:\n    image_name: {child}\n    \
         depend_on: parent\n    build_args: {{BASE_TAG: pinned}}\ntag:\n  prefix: \"2026.3\"\n"
    ));
    stack.image("parent", "FROM scratch\n");
    stack.image(
        "child",
        &format!(
            "ARG BASE_TAG\nFROM {parent}:${{BASE_TAG}}\nARG BASE_TAG\nRUN echo \"$BASE_TAG\" > /base_tag\n"
        ),
    );
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "child",
            "--tag",
            "2026.3-t1",
            "--progress",
            "plain",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    let image = format!("{child}:2026.3-t1");
    let (code, got) = run_in(&d, &image, "cat /base_tag").await;
    assert_eq!((code, got.as_str()), (0, "pinned\n"));

    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "child",
            "--tag",
            "2026.3-t2",
            "--build-arg",
            "BASE_TAG=other",
            "--progress",
            "plain",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    let image2 = format!("{child}:2026.3-t2");
    let (code, got) = run_in(&d, &image2, "cat /base_tag").await;
    assert_eq!((code, got.as_str()), (0, "other\n"));
    remove_images(
        &d,
        &[
            image,
            image2,
            format!("{parent}:pinned"),
            format!("{parent}:other"),
        ],
    )
    .await;
}

/// `build-image` builds for the spec's `platforms:` as `build` does: two of them through the
/// engine's BuildKit is exit 2 before any build, naming a buildkitd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_of_two_platforms_through_the_engine_is_exit_2() {
    let name = unique("stackctl-bk-test/twoplat");
    let stack = Stack::new(&format!(
        "images:\n  two:\n    image_name: {name}\nplatforms: [linux/amd64, linux/arm64]\n\
         tag:\n  prefix: \"2026.3\"\n"
    ));
    stack.image("two", "FROM scratch\n");
    let out = run_stackctl(
        stack.path(),
        &["build-image", "two", "--tag", "t1", "--progress", "plain"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
    let err = text(&out.stderr);
    assert!(err.contains("2 platforms"), "{}", outcome(&out));
    assert!(err.contains("--buildkit tcp://"), "{}", outcome(&out));
}

/// Docker config with a credential for `host`.
fn docker_config(dir: &Path, host: &str, user: &str, pw: &str) -> PathBuf {
    use base64::Engine;
    let cfg = dir.join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    std::fs::write(
        cfg.join("config.json"),
        format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_from_pushed_parent_then_cache_from() {
    let _g = ENGINE.lock().await;
    let d = docker();
    let reg = Registry::start(RegistryAuth::Basic {
        user: "bob".into(),
        password: "s3cret-pw".into(),
    });
    let host = reg.host();
    let creds = bollard::auth::DockerCredentials {
        username: Some("bob".into()),
        password: Some("s3cret-pw".into()),
        serveraddress: Some(host.clone()),
        ..Default::default()
    };
    // The parent: busybox imported, pushed to the registry under the branch tag.
    let local = unique("stackctl-bk-test/parent");
    support::images::busybox_image(&local, "1").await;
    let parent = format!("{host}/stack/parent");
    d.tag_image(
        &format!("{local}:1"),
        Some(TagImageOptions {
            repo: Some(parent.clone()),
            tag: Some("2026.3-feat".into()),
        }),
    )
    .await
    .unwrap();
    let mut s = d.push_image(
        &parent,
        Some(PushImageOptions {
            tag: Some("2026.3-feat".into()),
            platform: None,
        }),
        Some(creds.clone()),
    );
    while let Some(r) = s.next().await {
        r.expect("push parent");
    }
    // The engine must pull it from the registry, not find it locally.
    let _ = d
        .remove_image(
            &format!("{parent}:2026.3-feat"),
            None::<RemoveImageOptions>,
            None,
        )
        .await;

    let child = format!("{host}/stack/child");
    let stack = Stack::new(&format!(
        "images:\n  parent:\n    image_name: {parent}\n  child:\n    image_name: {child}\n    depend_on: parent\ntag:\n  prefix: \"2026.3\"\n"
    ));
    stack.image("parent", "FROM scratch\n");
    stack.image(
        "child",
        &format!(
            "ARG BASE_TAG\nFROM {parent}:${{BASE_TAG}}\nRUN echo built-once > /marker && sleep 1\nCOPY file.txt /file.txt\n"
        ),
    );
    std::fs::write(stack.path().join("images/child/file.txt"), "payload\n").unwrap();
    let cfg = docker_config(stack.path(), &host, "bob", "s3cret-pw");

    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "child",
            "--tag",
            "2026.3-feat",
            "--push",
            "--progress",
            "plain",
        ],
        Some(&cfg),
    )
    .await;
    assert!(
        out.status.success(),
        "{}\nregistry:\n{}",
        outcome(&out),
        reg.log()
    );
    let stdout = text(&out.stdout).trim().to_string();
    let reference = format!("{child}:2026.3-feat");
    assert!(
        stdout.starts_with(&format!("{reference}@sha256:")),
        "{}",
        outcome(&out)
    );
    assert!(!outcome(&out).contains("s3cret-pw"), "password leaked");
    // The manifest is in the registry under that digest.
    let digest = stdout.split('@').nth(1).unwrap();
    assert!(
        reg.log().contains("/v2/stack/child/manifests/2026.3-feat"),
        "{}",
        reg.log()
    );
    let (code, got) = run_in(&d, &reference, "cat /marker /file.txt").await;
    assert_eq!((code, got.as_str()), (0, "built-once\npayload\n"));

    // Forget everything local: the image, the parent, BuildKit's cache.
    for r in [reference.clone(), format!("{parent}:2026.3-feat")] {
        let _ = d.remove_image(&r, None::<RemoveImageOptions>, None).await;
    }
    prune_build_cache().await;

    // A second build with --cache-from the pushed tag: its steps come from the inline cache.
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "child",
            "--tag",
            "2026.3-feat2",
            "--build-arg",
            "BASE_TAG=2026.3-feat",
            "--cache-from",
            &reference,
            "--json",
            "--progress",
            "plain",
        ],
        Some(&cfg),
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = o["steps"].as_array().unwrap();
    let run = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().contains("RUN echo built-once"))
        .expect("the RUN step");
    assert_eq!(run["cached"], true, "{}", outcome(&out));
    assert!(
        o["cached_steps"].as_u64().unwrap() >= 2,
        "{}",
        outcome(&out)
    );
    let _ = digest;
    remove_images(&d, &[format!("{child}:2026.3-feat2"), format!("{local}:1")]).await;
}

/// Drop all of the engine BuildKit's cache, through the Control API.
async fn prune_build_cache() {
    let addr = stackctl::buildkit::Address::Engine(stackctl::buildkit::EngineSocket::Unix(
        support::docker_socket(),
    ));
    let client = stackctl::buildkit::connect(&addr).await.unwrap();
    let mut s = client
        .control()
        .prune(bollard_buildkit_proto::moby::buildkit::v1::PruneRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while let Ok(Some(_)) = s.message().await {}
}

/// Upgrade a new engine connection to h2c on `/grpc`, then forward bytes between it and `client`.
async fn forward_to_engine_grpc<S>(mut client: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut eng = tokio::net::UnixStream::connect(support::docker_socket())
        .await
        .unwrap();
    eng.write_all(
        b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if eng.read(&mut byte).await.unwrap() == 0 {
            return;
        }
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", text(&head));
    let _ = tokio::io::copy_bidirectional(&mut client, &mut eng).await;
}

/// A loopback TCP endpoint standing in for a remote buildkitd: each connection is upgraded to
/// h2c on the engine's `/grpc` and then bytes are forwarded both ways. With `tls`, the endpoint
/// speaks TLS first and requires a client certificate.
async fn tcp_forwarder(
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => forward_to_engine_grpc(tcp).await,
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            forward_to_engine_grpc(s).await
                        }
                    }
                }
            });
        }
    });
    (port, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_transport_with_session_over_control() {
    let _g = ENGINE.lock().await;
    let (port, fwd) = tcp_forwarder(None).await;
    let addr = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let out = run_stackctl(dir.path(), &["buildkit", "info", "--buildkit", &addr], None).await;
    assert!(out.status.success(), "{}", outcome(&out));
    let s = text(&out.stdout);
    assert!(s.contains(&addr) && s.contains("worker moby"), "{s}");

    // The same over a unix socket, as buildkitd's own unix:///run/buildkit/buildkitd.sock.
    let sock = dir.path().join("buildkitd.sock");
    let ul = tokio::net::UnixListener::bind(&sock).unwrap();
    let ufwd = tokio::spawn(async move {
        while let Ok((s, _)) = ul.accept().await {
            tokio::spawn(forward_to_engine_grpc(s));
        }
    });
    let unix_addr = format!("unix://{}", sock.display());
    let out = run_stackctl(
        dir.path(),
        &["buildkit", "info", "--buildkit", &unix_addr],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    assert!(
        text(&out.stdout).contains("worker moby"),
        "{}",
        outcome(&out)
    );
    ufwd.abort();

    let d = docker();
    let base = unique("stackctl-bk-test/tcpbase");
    support::images::busybox_image(&base, "1").await;
    let name = unique("stackctl-bk-test/tcp");
    let stack = Stack::new(&format!(
        "images:\n  viatcp:\n    image_name: {name}\ntag:\n  prefix: \"2026.3\"\n"
    ));
    let ctx = stack.image(
        "viatcp",
        &format!("FROM {base}:1\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n"),
    );
    std::fs::write(ctx.join("hello.txt"), format!("hello over tcp {port}\n")).unwrap();
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "viatcp",
            "--tag",
            "t",
            "--buildkit",
            &addr,
            "--progress",
            "plain",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    // The context came through the session carried by Control.Session.
    let (code, got) = run_in(&d, &format!("{name}:t"), "cat /hello.txt").await;
    assert_eq!((code, got), (0, format!("hello over tcp {port}\n")));
    remove_images(&d, &[format!("{name}:t"), format!("{base}:1")]).await;
    fwd.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_wrong_protocol_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let err = info_fails_in_one_line(dir.path(), port).await;
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");

    // Something that speaks HTTP/1.1, not gRPC.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    info_fails_in_one_line(dir.path(), port).await;
    srv.abort();
}

/// Addresses are checked before any connection: user information is refused without being
/// repeated, an impossible port is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_named_without_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (addr, expect) in [
        ("tcp://user:s3cret-pw@127.0.0.1:1234", "user information"),
        (
            "tcp://127.0.0.1:99999",
            "port \"99999\" is not a port number (1 to 65535)",
        ),
    ] {
        let out = run_stackctl(dir.path(), &["buildkit", "info", "--buildkit", addr], None).await;
        assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
        let err = text(&out.stderr);
        assert!(err.contains(expect), "{err}");
        assert!(
            !err.contains("s3cret-pw") && !err.contains("builder error"),
            "{err}"
        );
    }
}

/// `tag.suffix: commit`: build-image tags `<prefix>-<short HEAD commit>` by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_suffix_tags_the_build_with_the_short_commit() {
    let _g = ENGINE.lock().await;
    let d = docker();
    let r = support::git_repo::TestRepo::new("feature");
    let name = unique("stackctl-bk-test/suffix");
    r.write(
        "spec.yml",
        &format!("images:\n  sfx:\n    image_name: {name}\ntag:\n  prefix: \"2026.3\"\n  suffix: commit\n"),
    )
    .write("images/sfx/Dockerfile", "FROM scratch\nCOPY f /f\n")
    .write("images/sfx/f", "x\n");
    let head = r.commit("stack");
    let out = run_stackctl(
        r.path(),
        &["build-image", "sfx", "--progress", "plain"],
        None,
    )
    .await;
    let reference = format!("{name}:2026.3-{}", &head.to_string()[..7]);
    remove_images(&d, std::slice::from_ref(&reference)).await;
    assert!(out.status.success(), "{}", outcome(&out));
    assert_eq!(text(&out.stdout).trim(), reference);
}

/// A push the registry refuses (wrong password) exits 2, as README's table says for refused
/// access; the password is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_a_wrong_password_exits_2() {
    let _g = ENGINE.lock().await;
    let d = docker();
    let reg = Registry::start(RegistryAuth::Basic {
        user: "bob".into(),
        password: "right-pw".into(),
    });
    let host = reg.host();
    let name = format!("{host}/stack/refused");
    let stack = Stack::new(&format!(
        "images:\n  refused:\n    image_name: {name}\ntag:\n  prefix: \"2026.3\"\n"
    ));
    stack.image("refused", "FROM scratch\nCOPY file.txt /file.txt\n");
    std::fs::write(stack.path().join("images/refused/file.txt"), "x\n").unwrap();
    let cfg = docker_config(stack.path(), &host, "bob", "wrong-pw-123");
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "refused",
            "--tag",
            "2026.3-t",
            "--push",
            "--progress",
            "plain",
        ],
        Some(&cfg),
    )
    .await;
    remove_images(&d, &[format!("{name}:2026.3-t")]).await;
    assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
    let err = text(&out.stderr);
    assert!(err.contains("refused access"), "{err}");
    assert!(!outcome(&out).contains("wrong-pw-123"), "password leaked");
}

/// A Dockerfile or .dockerignore that links out of the context is refused before the build,
/// and what it points to is never read (its content appears nowhere). It is the image's
/// fault: exit 1, not the exit 2 of a BuildKit that could not be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_out_of_the_context_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "FROM scratch\n# top-secret-line\n").unwrap();
    for linked in ["Dockerfile", ".dockerignore"] {
        let stack = Stack::new(
            "images:\n  linked:\n    image_name: stackctl-bk-test/linked\ntag:\n  prefix: \"2026.3\"\n",
        );
        let dir = stack.image("linked", "FROM scratch\n");
        std::fs::remove_file(dir.join(linked)).ok();
        std::os::unix::fs::symlink(&secret, dir.join(linked)).unwrap();
        let out = run_stackctl(
            stack.path(),
            &[
                "-v",
                "build-image",
                "linked",
                "--tag",
                "2026.3-t",
                "--progress",
                "plain",
            ],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{linked}: {}", outcome(&out));
        let all = outcome(&out);
        assert!(all.contains("outside the build context"), "{linked}: {all}");
        assert!(!all.contains("could not be reached"), "{linked}: {all}");
        assert!(all.contains(linked), "{all}");
        assert!(!all.contains("top-secret-line"), "{linked}: {all}");
    }
}

/// `buildkit info --buildkit tcp://127.0.0.1:PORT` must exit 2 with one line on stderr,
/// which it returns.
async fn info_fails_in_one_line(dir: &Path, port: u16) -> String {
    let addr = format!("tcp://127.0.0.1:{port}");
    let out = run_stackctl(dir, &["buildkit", "info", "--buildkit", &addr], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

/// Build a one-image stack with `dockerfile`; it must fail with exit 1, a message naming the
/// image and `expect`, and a log file.
async fn failing_build(dockerfile: &str, expect: &[&str]) {
    let _g = ENGINE.lock().await;
    let d = docker();
    let base = unique("stackctl-bk-test/failbase");
    support::images::busybox_image(&base, "1").await;
    let stack = Stack::new(
        "images:\n  broken:\n    image_name: stackctl-bk-test/broken\ntag:\n  prefix: \"2026.3\"\n",
    );
    stack.image("broken", &dockerfile.replace("BASE", &format!("{base}:1")));
    let log = stack.path().join("logs/broken.build.log");
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "broken",
            "--tag",
            "t",
            "--progress",
            "plain",
            "--log",
            log.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", outcome(&out));
    let err = text(&out.stderr);
    let msg = err
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(msg.contains("image broken"), "{}", outcome(&out));
    for e in expect {
        assert!(
            msg.contains(e),
            "expected {e:?} in:\n{msg}\n---\n{}",
            outcome(&out)
        );
    }
    let log_text = std::fs::read_to_string(&log).expect("the log file is written on failure");
    assert!(log_text.contains("FAILED"), "{log_text}");
    remove_images(&d, &[format!("{base}:1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_syntax_error_is_reported() {
    failing_build(
        "FROM BASE\nFORM nothing\n",
        &["unknown instruction", "FORM"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_base_image_is_reported() {
    let port = support::free_port();
    failing_build(
        &format!("FROM 127.0.0.1:{port}/nothing/here:missing\nRUN true\n"),
        &[
            "load metadata",
            &format!("127.0.0.1:{port}/nothing/here:missing"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_run_step_names_step_and_output() {
    failing_build(
        "FROM BASE\nRUN echo first-line && echo the-last-words >&2 && exit 3\n",
        &["RUN echo first-line", "exit code: 3", "the-last-words"],
    )
    .await;
}

/// `openssl` in `dir`: a CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
          -keyout ca.key -out ca.pem -days 1 -subj /CN=stackctl-test-ca 2>/dev/null
        for who in server client; do
          openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
        done
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        for who in server client; do
          openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out $who.pem -days 1 -extfile $who.ext 2>/dev/null
        done",
    );
}

fn server_tls(dir: &Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let chain = vec![CertificateDer::from_pem_file(dir.join("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    std::sync::Arc::new(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_transport_with_mutual_tls() {
    let _g = ENGINE.lock().await;
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (port, fwd) = tcp_forwarder(Some(server_tls(certs.path()))).await;
    let addr = format!("tcp://127.0.0.1:{port}");
    let c = |f: &str| certs.path().join(f).to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let out = run_stackctl(
        dir.path(),
        &[
            "buildkit",
            "info",
            "--buildkit",
            &addr,
            "--buildkit-tls-ca",
            &c("ca.pem"),
            "--buildkit-tls-cert",
            &c("client.pem"),
            "--buildkit-tls-key",
            &c("client.key"),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    assert!(
        text(&out.stdout).contains("worker moby"),
        "{}",
        outcome(&out)
    );

    // Without a client certificate the endpoint refuses: one line, exit 2.
    let out = run_stackctl(
        dir.path(),
        &[
            "buildkit",
            "info",
            "--buildkit",
            &addr,
            "--buildkit-tls-ca",
            &c("ca.pem"),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
    assert_eq!(
        text(&out.stderr).trim().lines().count(),
        1,
        "{}",
        outcome(&out)
    );
    fwd.abort();
}

/// A busybox base pushed to `reg` as `<host>/stack/busybox:1`, for buildkitd builds (a
/// buildkitd takes FROM images from registries only).
async fn busybox_in(reg: &Registry) -> (String, String) {
    let local = support::images::busybox_image(&unique("stackctl-bk-test/bkd-busybox"), "1").await;
    let pushed = support::images::push(&local, &reg.host(), "stack/busybox", "1", false).await;
    (local, pushed)
}

async fn registry_digest(reference: &str) -> Option<String> {
    use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
    let client = RegistryClient::new(
        stackctl::credentials::CredentialStore::default(),
        ClientOptions::default(),
    )
    .unwrap();
    let r = ImageRef::parse(reference).unwrap();
    client.head_manifest(&r).await.unwrap().map(|d| d.digest)
}

/// `build-image --push` through a real buildkitd, over tcp with mutual TLS and over its
/// unix socket; the images run in the engine, pulled from the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_through_buildkitd_over_tcp_mtls_and_unix() {
    let Some(bk) = support::buildkitd::Buildkitd::start(
        "build_image_through_buildkitd_over_tcp_mtls_and_unix",
    ) else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let (local_base, base) = busybox_in(&reg).await;
    let name = format!("{}/stack/bkd", reg.host());
    let stack = Stack::new(&format!(
        "images:\n  bkd:\n    image_name: {name}\ntag:\n  prefix: \"2026.3\"\n"
    ));
    let dir = stack.image(
        "bkd",
        &format!("FROM {base}\nRUN echo built-by-buildkitd > /marker\nCOPY file.txt /file.txt\n"),
    );
    std::fs::write(dir.join("file.txt"), "payload\n").unwrap();

    // buildkit info over tcp with mTLS: a buildkitd, not an engine.
    let tcp: Vec<String> = bk.tcp_args();
    let tcp: Vec<&str> = tcp.iter().map(String::as_str).collect();
    let mut args = vec!["buildkit", "info"];
    args.extend(&tcp);
    let out = run_stackctl(stack.path(), &args, None).await;
    assert!(out.status.success(), "{}", outcome(&out));
    let info = text(&out.stdout);
    assert!(
        info.contains("buildkit: github.com/moby/buildkit v0."),
        "{info}"
    );
    assert!(!info.contains("worker moby"), "{info}");

    let d = docker();
    let mut made = vec![];
    for (via, tag) in [("tcp", "2026.3-tcp"), ("unix", "2026.3-unix")] {
        let cache_to = format!("type=registry,ref={name}:buildcache-{tag},mode=max");
        let mut args = vec![
            "build-image",
            "bkd",
            "--tag",
            tag,
            "--push",
            "--progress",
            "plain",
        ];
        if via == "tcp" {
            args.extend(&tcp);
        } else {
            args.extend(["--buildkit", bk.unix.as_str(), "--cache-to", &cache_to]);
        }
        let out = run_stackctl(stack.path(), &args, None).await;
        assert!(
            out.status.success(),
            "{via}: {}\n{}",
            outcome(&out),
            bk.log()
        );
        let stdout = text(&out.stdout).trim().to_string();
        let reference = format!("{name}:{tag}");
        let (r, digest) = stdout.split_once('@').expect("REF@DIGEST");
        assert_eq!(r, reference, "{via}");
        assert_eq!(
            registry_digest(&reference).await.as_deref(),
            Some(digest),
            "{via}: the registry has the printed digest"
        );
        let mut pull = d.create_image(
            Some(CreateImageOptions {
                from_image: Some(reference.clone()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(r) = pull.next().await {
            r.expect("the engine pulls what the buildkitd pushed");
        }
        let (code, got) = run_in(&d, &reference, "cat /marker /file.txt").await;
        assert_eq!(
            (code, got.as_str()),
            (0, "built-by-buildkitd\npayload\n"),
            "{via}"
        );
        made.push(reference);
    }
    // --cache-to in buildx syntax exported a registry cache next to the image.
    let cache = format!("{name}:buildcache-2026.3-unix");
    assert!(registry_digest(&cache).await.is_some(), "{cache}");
    // A cache export that fails is a warning; the image is built.
    let nowhere = format!(
        "type=registry,ref=127.0.0.1:{}/stack/cache:x",
        support::free_port()
    );
    let out = run_stackctl(
        stack.path(),
        &[
            "build-image",
            "bkd",
            "--tag",
            "2026.3-warn",
            "--buildkit",
            &bk.unix,
            "--cache-to",
            &nowhere,
            "--progress",
            "plain",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    assert!(
        text(&out.stderr).contains("the registry cache export failed"),
        "{}",
        outcome(&out)
    );
    made.push(local_base);
    remove_images(&d, &made).await;
}

/// A client certificate made with a plain `openssl x509 -req` is X.509 v1: the error says
/// so and how to make a v3 one, instead of rustls' "UnsupportedCertVersion" alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_client_certificate_is_named_with_the_fix() {
    let certs = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("sh")
        .arg("-ec")
        .arg(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout client.key -out client.csr -subj /CN=client 2>/dev/null
             openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
               -out client.pem -days 1 2>/dev/null
             openssl x509 -in client.pem -noout -text | grep -q 'Version: 1'",
        )
        .current_dir(certs.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let c = |f: &str| certs.path().join(f).to_string_lossy().into_owned();
    let addr = format!("tcp://127.0.0.1:{}", support::free_port());
    let out = run_stackctl(
        certs.path(),
        &[
            "buildkit",
            "info",
            "--buildkit",
            &addr,
            "--buildkit-tls-ca",
            &c("ca.pem"),
            "--buildkit-tls-cert",
            &c("client.pem"),
            "--buildkit-tls-key",
            &c("client.key"),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", outcome(&out));
    let err = text(&out.stderr);
    assert!(err.contains("X.509 v1"), "{err}");
    assert!(
        err.contains("needs v3") && err.contains("-extfile"),
        "{err}"
    );
    assert!(err.contains(&c("client.pem")), "{err}");
}

/// The engine's BuildKit (v0.8, moby worker) cannot export a registry cache: asked for one,
/// stackctl says so once and builds with inline cache; the image is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_cannot_export_registry_cache_says_so_and_builds_inline() {
    let _g = ENGINE.lock().await;
    let d = docker();
    let base = unique("stackctl-bk-test/cachebase");
    support::images::busybox_image(&base, "1").await;
    let name = unique("stackctl-bk-test/enginecache");
    let stack = Stack::new(&format!(
        "images:\n  ec:\n    image_name: {name}\ncache:\n  type: registry\ntag:\n  prefix: \"2026.3\"\n"
    ));
    stack.image("ec", &format!("FROM {base}:1\nRUN echo inline > /marker\n"));
    let out = run_stackctl(
        stack.path(),
        &["build-image", "ec", "--tag", "t1", "--progress", "plain"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", outcome(&out));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("cannot export a registry cache").count(),
        1,
        "{}",
        outcome(&out)
    );
    let (code, got) = run_in(&d, &format!("{name}:t1"), "cat /marker").await;
    assert_eq!((code, got.as_str()), (0, "inline\n"));
    remove_images(&d, &[format!("{name}:t1"), format!("{base}:1")]).await;
}
