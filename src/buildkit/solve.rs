//! One image build: a Solve with the Dockerfile frontend, followed through the Status stream.
//!
//! BuildKit v0.8 (Docker 20.10) predates the `Exporters` list and `Info`; the request uses the
//! fields every version reads: `Exporter`/`ExporterAttrs`, `FrontendAttrs`, `Cache`.

use super::cache::{self, CacheExport};
use super::progress::Progress;
use super::session::{LocalDir, Session};
use super::Client;
use crate::credentials::CredentialStore;
use crate::spec::attest::ProvenanceMode;
use bollard_buildkit_proto::moby::buildkit::v1::{CacheOptions, SolveRequest, StatusRequest};
use indexmap::IndexMap;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// How messages name the image (its key in the spec).
    pub label: String,
    /// The build context (the image's folder).
    pub context: PathBuf,
    /// The Dockerfile [default: CONTEXT/Dockerfile].
    pub dockerfile: Option<PathBuf>,
    /// Full references the image gets (`registry/repo:tag`); the first is the main one.
    pub tags: Vec<String>,
    /// `--build-arg`s, in order.
    pub build_args: IndexMap<String, String>,
    /// Stage to build (`--target`).
    pub target: Option<String>,
    /// Target platforms (`linux/amd64`, ...); empty: BuildKit's own.
    pub platforms: Vec<String>,
    /// Images whose inline cache may be used, pulled only as far as needed.
    pub cache_from: Vec<String>,
    /// Build every step again.
    pub no_cache: bool,
    /// Put the image in its registry.
    pub push: bool,
    /// Push without a tag (buildkitd only): `tags` then name repositories, and the image is
    /// known by the digest the outcome gives. Nothing has to be taken back if it fails.
    pub push_by_digest: bool,
    /// Where the build's cache goes (inline is added, unless `source_date_epoch` is set).
    pub cache_to: CacheExport,
    /// Registry credentials for pulls and pushes.
    pub credentials: CredentialStore,
    /// Where the build log goes (written on failure too).
    pub log: Option<PathBuf>,
    /// The parent image it is built FROM, recorded in the image (see [`base_record`]).
    pub base: Option<BaseImage>,
    /// More (key, value) pairs recorded in the image the same way as `base`.
    pub record: Attrs,
    /// Provenance and SBOM attached to the pushed image (a buildkitd's image exporter only).
    pub attest: Attestations,
    /// Reproducible build: `SOURCE_DATE_EPOCH` (seconds), and the exporter rewrites the
    /// layers' timestamps to it (not the engine's v0.8: see [`solve_request`]).
    pub source_date_epoch: Option<i64>,
}

/// What BuildKit attaches to an image as in-toto attestations in its index. The engine's
/// v0.8 has no attestations; a request for it carries none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestations {
    /// SLSA provenance; None: none.
    pub provenance: Option<ProvenanceMode>,
    /// An SBOM: None, none; `Some(None)`, from BuildKit's default generator image.
    pub sbom: Option<Option<String>>,
    /// Who built it (the CI run's address), for the provenance's `builder.id`.
    pub builder_id: Option<String>,
    /// The repository and commit the context comes from (the provenance's source).
    pub source: Option<String>,
    pub revision: Option<String>,
}

impl Attestations {
    pub fn is_empty(&self) -> bool {
        self.provenance.is_none() && self.sbom.is_none()
    }
}

/// The frontend attributes that ask for `a` (`attest:provenance=mode=min`, `attest:sbom`,
/// `vcs:source`, `vcs:revision`), as buildx sends them. Values with a comma would break
/// BuildKit's CSV parsing of `attest:` values, so such a builder id is left out.
pub fn attest_attrs(a: &Attestations) -> Attrs {
    let mut out = vec![];
    if let Some(mode) = a.provenance {
        let mut v = format!(
            "mode={}",
            match mode {
                ProvenanceMode::Max => "max",
                _ => "min",
            }
        );
        if let Some(id) = a.builder_id.as_ref().filter(|id| !id.contains(',')) {
            v.push_str(&format!(",builder-id={id}"));
        }
        out.push(("attest:provenance".into(), v));
    }
    if let Some(generator) = &a.sbom {
        let v = match generator {
            Some(g) => format!("generator={g}"),
            None => String::new(),
        };
        out.push(("attest:sbom".into(), v));
    }
    if !a.is_empty() {
        if let Some(s) = &a.source {
            out.push(("vcs:source".into(), s.clone()));
        }
        if let Some(r) = &a.revision {
            out.push(("vcs:revision".into(), r.clone()));
        }
    }
    out
}

/// Attributes of a Solve request, as (key, value).
pub type Attrs = Vec<(String, String)>;

/// The image an image is built FROM: its reference and manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    pub name: String,
    pub digest: String,
}

/// How the parent is recorded: a buildkitd's image exporter annotates the manifest (each
/// platform's, and an index's own when there are several platforms); the engine's
/// BuildKit v0.8 cannot annotate, so its frontend sets config labels of the same names.
/// Returns (exporter attributes, frontend attributes).
pub fn base_record(base: &BaseImage, moby: bool, platforms: usize) -> (Attrs, Attrs) {
    use crate::registry::{BASE_DIGEST_KEY, BASE_NAME_KEY};
    let pairs = [(BASE_NAME_KEY, &base.name), (BASE_DIGEST_KEY, &base.digest)];
    record(&pairs, moby, platforms)
}

/// (key, value) pairs recorded as [`base_record`] records the base.
pub fn record<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
    moby: bool,
    platforms: usize,
) -> (Attrs, Attrs) {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    if moby {
        let labels = pairs
            .iter()
            .map(|(k, v)| (format!("label:{k}"), v.to_string()))
            .collect();
        return (vec![], labels);
    }
    let mut exporter = vec![];
    for (k, v) in pairs {
        exporter.push((format!("annotation.{k}"), v.to_string()));
        if platforms > 1 {
            exporter.push((format!("annotation-index.{k}"), v.to_string()));
        }
    }
    (exporter, vec![])
}

/// What a successful build gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildOutcome {
    /// The main reference.
    pub image: String,
    /// The pushed manifest's digest (`sha256:...`), when pushed.
    pub digest: Option<String>,
    /// The image's config digest (its id in a Docker engine).
    pub config_digest: Option<String>,
    /// Build steps BuildKit reported cached, and all build steps.
    pub cached_steps: usize,
    pub total_steps: usize,
    /// Of the cached steps, those whose layer came from an imported registry cache.
    pub registry_cached_steps: usize,
    /// Wall time of the build (without the push).
    pub seconds: f64,
    /// Every step, in order.
    pub steps: Vec<super::progress::VertexStep>,
    /// Why the registry cache export failed, when it did (the image is fine).
    pub cache_warning: Option<String>,
}

impl BuildOutcome {
    /// `3 of 5 steps cached, 2 from the registry cache`.
    pub fn cache_summary(&self) -> String {
        let mut s = format!("{} of {} steps cached", self.cached_steps, self.total_steps);
        if self.registry_cached_steps > 0 {
            s.push_str(&format!(
                ", {} from the {}",
                self.registry_cached_steps,
                super::progress::REGISTRY_CACHE
            ));
        }
        s
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// BuildKit ran the build and it failed (syntax error, missing base, failing step).
    #[error("{0}")]
    Failed(String),
    /// BuildKit could not be reached or refused the request, or the registry refused access
    /// to a push.
    #[error("{0}")]
    Unavailable(String),
    /// The connection to BuildKit was lost during the build (the node went away, the
    /// connection was reset): the build may be tried again on another node; alone, as
    /// [`BuildError::Unavailable`].
    #[error("{0}")]
    NodeLost(String),
}

/// The frontend attributes of a request.
pub fn frontend_attrs(req: &BuildRequest) -> HashMap<String, String> {
    let mut a = HashMap::new();
    let filename = req
        .dockerfile
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    a.insert("filename".into(), filename);
    for (k, v) in &req.build_args {
        a.insert(format!("build-arg:{k}"), v.clone());
    }
    // Inline cache metadata in the image config: any pushed tag can later serve as cache.
    a.insert("build-arg:BUILDKIT_INLINE_CACHE".into(), "1".into());
    if let Some(t) = &req.target {
        a.insert("target".into(), t.clone());
    }
    if !req.platforms.is_empty() {
        a.insert("platform".into(), req.platforms.join(","));
    }
    if let Some(t) = req.source_date_epoch {
        a.insert("build-arg:SOURCE_DATE_EPOCH".into(), t.to_string());
    }
    if req.no_cache {
        a.insert("no-cache".into(), String::new());
    }
    if !req.cache_from.is_empty() {
        // The frontend resolves the cache images' configs itself (v0.8 reads `cache-imports`).
        let imports: Vec<serde_json::Value> = req
            .cache_from
            .iter()
            .map(|r| serde_json::json!({"Type": "registry", "Attrs": {"ref": r}}))
            .collect();
        a.insert(
            "cache-imports".into(),
            serde_json::Value::Array(imports).to_string(),
        );
        a.insert("cache-from".into(), req.cache_from.join(","));
    }
    a
}

/// The Solve request: frontend, exporter, cache options.
pub fn solve_request(
    req: &BuildRequest,
    moby: bool,
    build_ref: &str,
    session: &str,
) -> SolveRequest {
    let mut exporter_attrs = HashMap::new();
    exporter_attrs.insert("name".to_string(), req.tags.join(","));
    let exporter = if moby {
        // Docker's exporter: the image lands in the engine's image store under the names.
        "moby"
    } else {
        exporter_attrs.insert("push".into(), req.push.to_string());
        if req.push && req.push_by_digest {
            // `name` holds repositories; the registry gets the manifest without a tag.
            exporter_attrs.insert("push-by-digest".into(), "true".into());
        }
        if req.source_date_epoch.is_some() {
            exporter_attrs.insert("rewrite-timestamp".into(), "true".into());
        }
        "image"
    };
    let mut frontend = frontend_attrs(req);
    // An index is pushed for several platforms, and for one with attestations: the
    // records then go on the index too.
    let index = req.platforms.len() > 1 || (!moby && !req.attest.is_empty());
    let manifests = if index { 2 } else { 1 };
    if moby && req.source_date_epoch.is_some() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                "the Docker engine's BuildKit (v0.8) cannot rewrite timestamps: its images \
                 are built without SOURCE_DATE_EPOCH and are not reproducible"
            )
        });
        frontend.remove("build-arg:SOURCE_DATE_EPOCH");
    }
    if let Some(base) = &req.base {
        let (e, f) = base_record(base, moby, manifests);
        exporter_attrs.extend(e);
        frontend.extend(f);
    }
    let (e, f) = record(&req.record, moby, manifests);
    exporter_attrs.extend(e);
    frontend.extend(f);
    if !moby {
        frontend.extend(attest_attrs(&req.attest));
    }
    // Inline cache metadata carries the layers' build times: a reproducible image has none.
    let reproducible = !moby && req.source_date_epoch.is_some();
    if reproducible {
        frontend.remove("build-arg:BUILDKIT_INLINE_CACHE");
    }
    let mut exports = cache::export_entries(if moby {
        &CacheExport::Inline
    } else {
        &req.cache_to
    });
    exports.retain(|e| !(reproducible && e.r#type == "inline"));
    SolveRequest {
        r#ref: build_ref.to_string(),
        definition: None,
        exporter_deprecated: exporter.into(),
        exporter_attrs_deprecated: exporter_attrs,
        session: session.to_string(),
        frontend: "dockerfile.v0".into(),
        frontend_attrs: frontend,
        cache: Some(CacheOptions {
            // The engine's v0.8 cannot export a registry cache: Client::build made it inline.
            exports,
            imports: cache::import_entries(&req.cache_from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A stable key for a folder, so BuildKit can send only what changed since the last build of it.
fn shared_key(dir: &std::path::Path) -> String {
    let h = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
    hex::encode(&h[..16])
}

/// Run the build. The progress is shown as it comes and the log written at the end, failed or not.
pub async fn build(
    client: &Client,
    req: &BuildRequest,
    progress: &mut Progress,
) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    // What is wrong with the image's own folder (a link out of it, no Dockerfile, a bad
    // .dockerignore) is the image's failure, not BuildKit's: exit 1, as a failed step.
    let context = std::fs::canonicalize(&req.context).map_err(|e| {
        BuildError::Failed(format!(
            "image {}: build context {}: {e}",
            req.label,
            req.context.display()
        ))
    })?;
    let dockerfile = req
        .dockerfile
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    if req.dockerfile.is_none() {
        // The default Dockerfile must not be a link out of the context.
        super::context::inside_context(&context, "Dockerfile")
            .map_err(|e| BuildError::Failed(format!("image {}: {e:#}", req.label)))?;
    }
    if !dockerfile.is_file() {
        return Err(BuildError::Failed(format!(
            "image {}: no Dockerfile at {}",
            req.label,
            dockerfile.display()
        )));
    }
    let dockerfile_dir = dockerfile
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    let unavailable = |e: anyhow::Error| BuildError::Unavailable(format!("{e:#}"));
    let ctx_dir = LocalDir::with_dockerignore(context.clone())
        .map_err(|e| BuildError::Failed(format!("image {}: {e:#}", req.label)))?;
    let dirs = HashMap::from([
        ("context".to_string(), ctx_dir),
        (
            "dockerfile".to_string(),
            LocalDir {
                root: dockerfile_dir,
                excludes: vec![],
            },
        ),
    ]);
    let name = context
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "context".into());
    let session = Session::new(&name, &shared_key(&context), dirs, req.credentials.clone());
    let control = client.control();
    let _handle = session
        .attach(client.address(), &control)
        .await
        .map_err(unavailable)?;

    let build_ref = super::new_id();
    let sreq = solve_request(req, client.kind().is_engine(), &build_ref, &session.id);
    tracing::debug!(
        "solve {}: frontend attrs {:?}",
        req.label,
        sreq.frontend_attrs.keys().collect::<Vec<_>>()
    );

    // Status and Solve run side by side; Status ends shortly after the Solve does.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let mut status_client = control.clone();
    let status_ref = build_ref.clone();
    let status_task = tokio::spawn(async move {
        let Ok(resp) = status_client
            .status(StatusRequest { r#ref: status_ref })
            .await
        else {
            return;
        };
        let mut stream = resp.into_inner();
        while let Ok(Some(m)) = stream.message().await {
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut solve_client = control.clone();
    let solve = solve_client.solve(sreq);
    tokio::pin!(solve);
    let result = loop {
        tokio::select! {
            r = &mut solve => break r,
            Some(m) = rx.recv() => progress.update(&m),
        }
    };
    // Drain the rest of the status (the last vertexes, errors and logs).
    let drain = async {
        while let Some(m) = rx.recv().await {
            progress.update(&m);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
    status_task.abort();
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();

    let header = format!(
        "image {} ({}) built through BuildKit at {}",
        req.label,
        req.tags.join(", "),
        client.address()
    );
    let outcome = match result {
        Ok(resp) => {
            let resp = resp.into_inner().exporter_response;
            let (cached, total) = progress.cached_counts();
            Ok(BuildOutcome {
                image: req.tags.first().cloned().unwrap_or_default(),
                digest: (!client.kind().is_engine() && req.push)
                    .then(|| resp.get("containerimage.digest").cloned())
                    .flatten(),
                config_digest: resp
                    .get("containerimage.config.digest")
                    .or_else(|| resp.get("containerimage.digest"))
                    .cloned(),
                cached_steps: cached,
                total_steps: total,
                registry_cached_steps: progress.registry_cached_count(),
                seconds,
                steps: progress.steps.values().cloned().collect(),
                cache_warning: cache_export_error(progress),
            })
        }
        Err(status) => Err(failure_message(req, client.address(), progress, &status)),
    };
    if let Some(log) = &req.log {
        let header = match &outcome {
            Ok(_) => format!("{header}\nresult: success in {seconds:.1}s"),
            Err(e) => format!("{header}\nresult: FAILED after {seconds:.1}s\n{e}"),
        };
        if let Err(e) = progress.write_log(log, &header) {
            tracing::warn!("cannot write the build log {}: {e}", log.display());
        }
    }
    outcome
}

/// The error of the registry cache export step, if it failed (BuildKit ignored it, as
/// asked with `ignore-error`: the image is built and pushed).
fn cache_export_error(progress: &Progress) -> Option<String> {
    progress
        .steps
        .values()
        .filter(|s| s.name.starts_with("exporting cache") || s.name.contains("exporting cache to"))
        .find_map(|s| s.error.clone())
        .map(|e| one_line(&e))
}

/// One clear message for a failed Solve: the image, the step, its last output lines.
fn failure_message(
    req: &BuildRequest,
    address: &super::Address,
    progress: &Progress,
    status: &tonic::Status,
) -> BuildError {
    use tonic::Code;
    let msg = status.message().trim().to_string();
    // BuildKit gone (the connection dropped, the daemon died) is a service problem, not a
    // failed Dockerfile, whenever it happens.
    if status.code() == Code::Unavailable || connection_lost(status) {
        let cause = std::error::Error::source(status)
            .map(super::transport::flatten)
            .unwrap_or_else(|| msg.clone());
        return BuildError::NodeLost(format!(
            "image {}: the connection to BuildKit at {} was lost during the build ({})",
            req.label,
            address,
            one_line(&cause)
        ));
    }
    if status.code() == Code::Unimplemented && progress.steps.is_empty() {
        return BuildError::Unavailable(format!(
            "image {}: BuildKit did not run the build: {}",
            req.label,
            one_line(&msg)
        ));
    }
    // A push (BuildKit pushing itself) refused by the registry: refused access, unavailable.
    let at_push = progress
        .failed_step(&msg)
        .is_none_or(|s| s.name.starts_with("exporting") || s.name.contains("pushing"));
    if req.push && at_push && super::push::is_access_refused(&msg) {
        return super::push_error(&req.label, &one_line(&msg));
    }
    let mut out = format!("image {} failed to build", req.label);
    match progress.failed_step(&msg) {
        Some(step) => {
            out.push_str(&format!(" at step `{}`", step.name));
            out.push_str(&format!(": {}", one_line(&msg)));
            let lines = step.last_lines(15);
            if !lines.is_empty() {
                out.push_str("\nlast output lines:");
                for l in lines {
                    out.push_str("\n  ");
                    out.push_str(&l);
                }
            }
        }
        None => {
            // Errors in the Dockerfile itself come before any step runs.
            out.push_str(&format!(": {}", one_line(&msg)));
        }
    }
    BuildError::Failed(out)
}

/// Whether a failed call's status was made on this side from a broken connection (tonic's
/// "transport error": the peer closed or reset it) rather than sent by BuildKit: a status
/// BuildKit sends has no source error, one made from a transport failure has.
fn connection_lost(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unknown | Code::Internal | Code::Cancelled
    ) && std::error::Error::source(status).is_some()
}

/// A message on one line, without the wrapping BuildKit adds around the frontend's errors.
fn one_line(s: &str) -> String {
    let mut s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    for noise in [
        "failed to solve with frontend dockerfile.v0: ",
        "failed to create LLB definition: ",
        "rpc error: code = Unknown desc = ",
    ] {
        s = s.replace(noise, "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> BuildRequest {
        BuildRequest {
            label: "base".into(),
            context: "images/base".into(),
            tags: vec!["127.0.0.1:5000/a/base:t1".into()],
            build_args: IndexMap::from([("BASE_TAG".to_string(), "t1".to_string())]),
            target: Some("final".into()),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            cache_from: vec!["127.0.0.1:5000/a/base:t0".into()],
            no_cache: true,
            push: true,
            ..Default::default()
        }
    }

    #[test]
    fn attestations_are_frontend_attributes_of_a_buildkitd_request_only() {
        let mut r = req();
        r.attest = Attestations {
            provenance: Some(ProvenanceMode::Max),
            sbom: Some(Some("127.0.0.1:5000/gen:1".into())),
            builder_id: Some("https://github.com/o/r/actions/runs/7".into()),
            source: Some("https://github.com/o/r".into()),
            revision: Some("abc".into()),
        };
        let a = solve_request(&r, false, "ref1", "s").frontend_attrs;
        assert_eq!(
            a["attest:provenance"],
            "mode=max,builder-id=https://github.com/o/r/actions/runs/7"
        );
        assert_eq!(a["attest:sbom"], "generator=127.0.0.1:5000/gen:1");
        assert_eq!(a["vcs:source"], "https://github.com/o/r");
        assert_eq!(a["vcs:revision"], "abc");
        let engine = solve_request(&r, true, "ref1", "s").frontend_attrs;
        assert!(!engine
            .keys()
            .any(|k| k.starts_with("attest:") || k.starts_with("vcs:")));
        r.attest = Attestations {
            provenance: Some(ProvenanceMode::Min),
            sbom: Some(None),
            builder_id: Some("a,b".into()),
            ..Default::default()
        };
        let a = solve_request(&r, false, "ref1", "s").frontend_attrs;
        assert_eq!(a["attest:provenance"], "mode=min");
        assert_eq!(a["attest:sbom"], "");
        let a = solve_request(&req(), false, "ref1", "s").frontend_attrs;
        assert!(!a
            .keys()
            .any(|k| k.starts_with("attest:") || k.starts_with("vcs:")));
    }

    #[test]
    fn engine_request_uses_moby_exporter_and_inline_cache() {
        let r = solve_request(&req(), true, "ref1", "sess1");
        assert_eq!(r.exporter_deprecated, "moby");
        assert_eq!(
            r.exporter_attrs_deprecated["name"],
            "127.0.0.1:5000/a/base:t1"
        );
        assert!(!r.exporter_attrs_deprecated.contains_key("push"));
        assert_eq!(r.frontend, "dockerfile.v0");
        assert_eq!(r.session, "sess1");
        let a = &r.frontend_attrs;
        assert_eq!(a["build-arg:BASE_TAG"], "t1");
        assert_eq!(a["build-arg:BUILDKIT_INLINE_CACHE"], "1");
        assert_eq!(a["target"], "final");
        assert_eq!(a["platform"], "linux/amd64,linux/arm64");
        assert!(a.contains_key("no-cache"));
        assert!(a["cache-imports"].contains("127.0.0.1:5000/a/base:t0"));
        let cache = r.cache.unwrap();
        assert_eq!(cache.exports[0].r#type, "inline");
        assert_eq!(cache.imports[0].attrs["ref"], "127.0.0.1:5000/a/base:t0");
    }

    /// A reproducible build sets the epoch and rewrites timestamps; the engine's v0.8
    /// can do neither, and gets neither.
    #[test]
    fn reproducible_sets_the_epoch_and_rewrites_timestamps() {
        let mut q = req();
        let r = solve_request(&q, false, "ref1", "sess1");
        assert!(!r
            .exporter_attrs_deprecated
            .contains_key("rewrite-timestamp"));
        assert!(!r.frontend_attrs.contains_key("build-arg:SOURCE_DATE_EPOCH"));
        q.source_date_epoch = Some(1700000000);
        let r = solve_request(&q, false, "ref1", "sess1");
        assert_eq!(r.exporter_attrs_deprecated["rewrite-timestamp"], "true");
        assert_eq!(
            r.frontend_attrs["build-arg:SOURCE_DATE_EPOCH"],
            "1700000000"
        );
        let r = solve_request(&q, true, "ref1", "sess1");
        assert!(!r
            .exporter_attrs_deprecated
            .contains_key("rewrite-timestamp"));
        assert!(!r.frontend_attrs.contains_key("build-arg:SOURCE_DATE_EPOCH"));
    }

    /// The parent is recorded as manifest (and, for several platforms, index) annotations
    /// through a buildkitd, and as config labels through the engine's BuildKit.
    #[test]
    fn the_parent_is_annotated_or_labelled() {
        let mut q = req();
        q.base = Some(BaseImage {
            name: "127.0.0.1:5000/a/base:t1".into(),
            digest: "sha256:ab".into(),
        });
        let key = "org.opencontainers.image.base.digest";
        let r = solve_request(&q, false, "ref1", "sess1");
        let e = &r.exporter_attrs_deprecated;
        assert_eq!(e[&format!("annotation.{key}")], "sha256:ab");
        assert_eq!(e[&format!("annotation-index.{key}")], "sha256:ab");
        assert!(!r.frontend_attrs.contains_key(&format!("label:{key}")));
        let r = solve_request(&q, true, "ref1", "sess1");
        assert_eq!(r.frontend_attrs[&format!("label:{key}")], "sha256:ab");
        assert!(!r
            .exporter_attrs_deprecated
            .keys()
            .any(|k| k.starts_with("annotation")));
        q.platforms.truncate(1);
        let r = solve_request(&q, false, "ref1", "sess1");
        assert!(!r
            .exporter_attrs_deprecated
            .contains_key(&format!("annotation-index.{key}")));
    }

    #[test]
    fn the_other_records_go_the_same_way() {
        let mut q = req();
        q.record = vec![("org.opencontainers.image.revision".into(), "abc".into())];
        let r = solve_request(&q, false, "ref1", "sess1");
        let e = &r.exporter_attrs_deprecated;
        assert_eq!(e["annotation.org.opencontainers.image.revision"], "abc");
        assert_eq!(
            e["annotation-index.org.opencontainers.image.revision"],
            "abc"
        );
        let r = solve_request(&q, true, "ref1", "sess1");
        assert_eq!(
            r.frontend_attrs["label:org.opencontainers.image.revision"],
            "abc"
        );
    }

    #[test]
    fn buildkitd_request_pushes_with_image_exporter() {
        let r = solve_request(&req(), false, "ref1", "sess1");
        assert_eq!(r.exporter_deprecated, "image");
        assert_eq!(r.exporter_attrs_deprecated["push"], "true");
        assert!(!r.exporter_attrs_deprecated.contains_key("push-by-digest"));
    }

    #[test]
    fn push_by_digest_names_the_repository_and_exports_registry_cache() {
        let mut q = req();
        q.tags = vec!["127.0.0.1:5000/a/base".into()];
        q.push_by_digest = true;
        q.cache_to = CacheExport::Registry {
            reference: "127.0.0.1:5000/a/base:buildcache-t1".into(),
            mode: crate::spec::cache::CacheMode::Max,
        };
        let r = solve_request(&q, false, "ref1", "sess1");
        let a = &r.exporter_attrs_deprecated;
        assert_eq!(a["name"], "127.0.0.1:5000/a/base");
        assert_eq!(a["push"], "true");
        assert_eq!(a["push-by-digest"], "true");
        let cache = r.cache.unwrap();
        assert_eq!(cache.exports[0].r#type, "registry");
        assert_eq!(
            cache.exports[0].attrs["ref"],
            "127.0.0.1:5000/a/base:buildcache-t1"
        );
        // The engine's BuildKit gets inline only, whatever was asked.
        let r = solve_request(&q, true, "ref1", "sess1");
        let cache = r.cache.unwrap();
        assert_eq!(cache.exports.len(), 1);
        assert_eq!(cache.exports[0].r#type, "inline");
    }

    #[test]
    fn the_cache_summary_names_the_registry_cache_when_it_served_steps() {
        let mut o = BuildOutcome {
            image: "r/a/app".into(),
            digest: None,
            config_digest: None,
            cached_steps: 3,
            total_steps: 5,
            registry_cached_steps: 2,
            seconds: 1.0,
            steps: vec![],
            cache_warning: None,
        };
        assert_eq!(
            o.cache_summary(),
            "3 of 5 steps cached, 2 from the registry cache"
        );
        o.registry_cached_steps = 0;
        assert_eq!(o.cache_summary(), "3 of 5 steps cached");
    }

    #[test]
    fn frontend_noise_is_dropped() {
        assert_eq!(
            one_line("failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2:\n unknown instruction: FORM"),
            "dockerfile parse error line 2: unknown instruction: FORM"
        );
    }
}
