//! The tag transaction under a promotion: retag every source to its target, all or nothing
//! as far as a registry allows, with a verdict read from the registry, never assumed.
//! What is promoted, and the files it leaves, is [`crate::promote::stack`].
//!
//! A registry has no transactions and no locks, and a new tag often cannot be deleted
//! (GHCR answers 405, Distribution 2.8 400 to a DELETE by tag), so stackctl never deletes a
//! tag. What it does instead:
//!
//! 1. **One read round**: every source and every target, all at once. A missing source
//!    stops the run before any write (a [`Failed`] error); an unreadable one too (any
//!    other error).
//! 2. **Plan**: targets that already hold their source's digest need nothing (a rerun
//!    completes a promotion: it is idempotent); *existing* targets can be put back;
//!    *new* targets cannot be taken back. The plan is logged before any write.
//! 3. **Existing targets first** (one PUT round). If one fails and every write of that round
//!    was answered, the run **rolls back**: each target this run changed is re-PUT with its
//!    old bytes, but only if it still holds this run's digest (another writer's result is
//!    never overwritten). If a write got no answer (timeout, dropped connection, the run's
//!    deadline), it may still land later, so rolling back is unsafe: the run **rolls
//!    forward** instead, retrying within the bound (`--timeout`).
//! 4. **New targets after** (a second PUT round), only once every existing target holds the
//!    source's digest. A failure here rolls forward (bounded); what still fails is reported.
//! 5. **Read-back round**: after a settle time when a write got no answer, every target is
//!    read (HEAD) again; a whole set is read once more after `confirm_after`. A target
//!    holding bytes this run PUT (its source's, or the old manifest of a restore, even one
//!    that landed after its answer was lost) is this run's doing. Another writer's values
//!    are ordered against this run's set ([`crate::promote::order`]): newer ones stop the
//!    run ([`Verdict::Superseded`]); older ones are written over again, in bounded rounds,
//!    by a run that had written its whole set, so that racing promotions converge on the
//!    newer one. The [`Verdict`] comes from what the registry holds: promoted, unchanged,
//!    partly promoted (or a target unknown), changed by another writer, or superseded.
//!
//! Round trips: the new digest is taken from each PUT answer's `Docker-Content-Digest`,
//! checked against the sha256 of the bytes sent, so no HEAD follows a PUT. The read-back is
//! still a round of its own: a PUT answer proves what the registry held when it answered,
//! not at the end of the run, and only a read after every write sees a concurrent writer.
//! So a promotion costs 3 rounds (read, PUT, read-back) when its targets are all
//! existing or all new, and 4 when both kinds are mixed (the all-or-nothing order).

use crate::exit::{Failed, Interrupted};
use crate::promote::order::{self, Age};
use crate::registry::client::{Manifest, RegistryClient};
use crate::registry::reference::ImageRef;
use crate::registry::transport::retry::Unanswered;
use anyhow::Context;
use futures::future::join_all;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One tag move of a promotion: a retag of its source's manifest to its target.
#[derive(Clone, Debug)]
pub struct TagMove {
    pub source: ImageRef,
    pub target: ImageRef,
    /// The names shown to people (logs, the table, the lines printed): as the spec or the
    /// wiki writes them (`ucsdets/notebook:2026.3-stable`), while requests use the
    /// normalized references above.
    pub source_name: String,
    pub target_name: String,
    /// The move of the image this one was built FROM (an index into the promotion's moves):
    /// its source must be the parent the source records.
    pub parent: Option<usize>,
}

impl TagMove {
    /// A move whose names for people are the normalized references.
    pub fn new(source: ImageRef, target: ImageRef) -> TagMove {
        TagMove {
            source_name: source.to_string(),
            target_name: target.to_string(),
            source,
            target,
            parent: None,
        }
    }

    /// A move from names as written (parsed for the requests, shown as given).
    pub fn named(
        source: &str,
        target: &str,
    ) -> Result<TagMove, crate::registry::reference::RefError> {
        Ok(TagMove {
            source: ImageRef::parse(source)?,
            target: ImageRef::parse(target)?,
            source_name: source.to_string(),
            target_name: target.to_string(),
            parent: None,
        })
    }
}

/// How a promotion runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only read the registry.
    pub dry_run: bool,
    /// The run's deadline (`--timeout`): no write is started or waited for after it.
    pub deadline: Instant,
    /// The wait after the last write that got no answer before the read-back: such a write
    /// may land late.
    pub settle: Duration,
    /// The time the final read-back (and a rollback) may take, even past the deadline.
    pub read_back_timeout: Duration,
    /// An interrupt: like the deadline, but the verdict is then [`Verdict::Interrupted`].
    pub cancel: CancellationToken,
    /// After a read-back that shows the whole set, wait this long and read again before
    /// reporting it promoted: a concurrent promotion of a newer source may still be writing
    /// (zero: report the first whole read-back).
    pub confirm_after: Duration,
    /// What every source must carry (a signature, attestations), checked before any write.
    pub require: crate::promote::evidence::Requirements,
}

/// At most this many roll-forward rounds after the first PUT round (each already retried by
/// the client's retry policy), waiting 1 s, 2 s, 4 s, ... between them, within the deadline.
const ROLL_FORWARD_ROUNDS: u32 = 4;

/// What a target holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    Digest(String),
    Absent,
    /// It could not be read (the reason).
    Unknown(String),
}

impl Held {
    fn digest(&self) -> Option<&str> {
        match self {
            Held::Digest(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Digest(d) => f.write_str(d),
            Held::Absent => f.write_str("absent"),
            Held::Unknown(_) => f.write_str("unknown"),
        }
    }
}

/// A target's state after the run, from the read-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// It holds the source's digest.
    Promoted,
    /// It holds what it held before; this run's write (if any) did not land.
    Unchanged,
    /// This run changed it, then put it back.
    Restored,
    /// It holds what this run did not put there: another writer.
    OtherWriter,
    /// It could not be read.
    Unknown,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Promoted => "promoted",
            State::Unchanged => "unchanged",
            State::Restored => "restored",
            State::OtherWriter => "other-writer",
            State::Unknown => "unknown",
        })
    }
}

/// What a promotion's targets hold at the end, taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every target holds its source's digest.
    Promoted,
    /// A dry run: the registry was read, nothing was changed.
    Checked,
    /// Every target holds what it held before (some may have been put back).
    Unchanged,
    /// Some targets hold their source's digest and some do not, or one could not be read.
    Partial,
    /// Another writer changed a target during the run (it was not overwritten).
    ConcurrentWriter,
    /// The run was interrupted after it started writing.
    Interrupted,
    /// A concurrent promotion of a newer source is writing the same targets: this run
    /// stopped writing as soon as it saw it.
    Superseded,
}

/// One target's line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub source: String,
    pub target: String,
    pub before: Held,
    pub now: Held,
    /// The source's digest.
    pub intended: String,
    pub state: State,
    /// What happened to its write, for people (empty when nothing is worth saying).
    pub note: String,
}

/// The outcome of a promotion (or of a dry run: `now` is `before`).
#[derive(Debug)]
pub struct TransactionEnd {
    pub rows: Vec<Row>,
    /// What the registry holds at the end, taken together.
    pub verdict: Verdict,
    /// One sentence that says what the registry holds.
    pub summary: String,
    /// The request the run's deadline cut, or the one it kept from being retried.
    pub deadline_hit: Option<String>,
}

impl TransactionEnd {
    /// The table of every target: target, before, now, intended, state (and a note).
    pub fn table(&self) -> String {
        let w = self.rows.iter().map(|r| r.target.len()).max().unwrap_or(6);
        let dw = 71; // `sha256:` and 64 hex digits
        let mut s = format!(
            "{:w$}  {:dw$}  {:dw$}  {:dw$}  STATE\n",
            "TARGET", "BEFORE", "NOW", "INTENDED"
        );
        for r in &self.rows {
            let line = format!(
                "{:w$}  {:dw$}  {:dw$}  {:dw$}  {}  {}",
                r.target,
                r.before.to_string(),
                r.now.to_string(),
                r.intended,
                r.state,
                r.note
            );
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }

    /// What the verdict means for people, with the request the run's deadline (`timeout`)
    /// cut, if it cut one.
    pub fn verdict_message(&self, timeout: Duration) -> String {
        let mut msg = self.summary.clone();
        if let Some(r) = &self.deadline_hit {
            msg.push_str(&format!(
                "\nthe run's deadline (--timeout {}) was hit by {r}",
                humantime::format_duration(timeout)
            ));
        }
        if self.verdict == Verdict::Interrupted {
            msg = format!("interrupted; {msg}");
        }
        msg
    }
}

/// What happened to one target's writes during the run.
#[derive(Default)]
struct Write {
    unanswered: Unanswered,
    /// A PUT was answered with the source's digest.
    confirmed: bool,
    /// The last failure, and whether asking again cannot help.
    error: Option<(String, bool)>,
    /// The deadline or an interrupt cut a PUT in flight.
    cut: bool,
    /// This run put the old manifest back (the answer said so).
    restored: bool,
    /// A PUT of the old manifest (a restore) was sent: if the target holds those bytes, it
    /// is this run's doing, answered or not.
    restore_sent: std::sync::atomic::AtomicBool,
    /// A restore was skipped: the target no longer held this run's digest.
    left_alone: Option<String>,
}

/// Why a bounded operation did not finish.
enum Cut {
    Deadline,
    Interrupted,
}

/// Run `fut` unless the deadline passes or the run is interrupted first.
async fn bounded<T>(
    deadline: Instant,
    cancel: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, Cut> {
    tokio::select! {
        r = tokio::time::timeout_at(deadline, fut) => r.map_err(|_| Cut::Deadline),
        _ = cancel.cancelled() => Err(Cut::Interrupted),
    }
}

/// Promote (or with `dry_run` only read). `Err` only before any write: a missing source
/// ([`Failed`]), an interrupt ([`Interrupted`]) or a registry that cannot be read (any
/// other error). After the first write the result is always a [`TransactionEnd`] whose
/// verdict says what the registry holds.
pub async fn promote(
    client: &RegistryClient,
    steps: &[TagMove],
    opts: &Options,
) -> anyhow::Result<TransactionEnd> {
    // 1. One read round: sources and targets together.
    let (manifests, before_manifests) = read_sources_and_targets(client, steps, opts).await?;
    let before: Vec<Held> = before_manifests
        .iter()
        .map(|m| match m {
            Some(m) => Held::Digest(m.digest.clone()),
            None => Held::Absent,
        })
        .collect();

    // 2. The stack must fit together: each child built FROM the parent promoted with it.
    check_lineage(client, steps, &manifests).await?;
    if !opts.require.is_empty() {
        let sources: Vec<(String, ImageRef)> = steps
            .iter()
            .map(|s| (s.source_name.clone(), s.source.clone()))
            .collect();
        let lacking = crate::promote::evidence::check(client, &sources, &manifests, &opts.require)
            .await
            .context("cannot read the sources' signatures and attestations; nothing was changed")?;
        if !lacking.is_empty() {
            return Err(crate::exit::Unverified(format!(
                "refusing to promote: {} of {} images lack what is required; nothing was changed:\n  {}",
                lacking.len(),
                steps.len(),
                lacking.join("\n  ")
            ))
            .into());
        }
    }

    // 3. The plan.
    let todo: Vec<usize> = (0..steps.len())
        .filter(|&i| before[i].digest() != Some(manifests[i].digest.as_str()))
        .collect();
    let (existing, new): (Vec<usize>, Vec<usize>) =
        todo.iter().partition(|&&i| before_manifests[i].is_some());
    log_plan(steps, &manifests, &before, &existing, &new, opts.dry_run);
    if opts.dry_run {
        return Ok(dry_run_end(steps, &manifests, &before, &todo));
    }

    // 3. and 4. The writes: existing targets first, then new ones.
    let mut run = Run {
        client,
        steps,
        manifests: &manifests,
        before: &before_manifests,
        opts,
        writes: steps.iter().map(|_| Write::default()).collect(),
        deadline_hit: None,
        interrupted: false,
    };
    run.write_all(&existing, &new).await;

    // 5. Read back (after a settle time when a write got no answer) until the set is whole
    //    and stays so, or another writer is seen: the newer source writes again, the older
    //    stops.
    let (rows, superseded) = run.converge(&todo, &before).await;
    let Run {
        deadline_hit,
        interrupted,
        ..
    } = run;
    let (verdict, summary) = match &superseded {
        Some((own, theirs)) => (
            Verdict::Superseded,
            format!(
                "superseded: another promotion, of a newer source (its newest image {theirs}; \
                 this run's {own}), is writing {} of {} targets; this run stopped writing and \
                 leaves them to it",
                rows.iter()
                    .filter(|r| r.state == State::OtherWriter)
                    .count(),
                rows.len()
            ),
        ),
        None => verdict_of(&rows),
    };
    Ok(TransactionEnd {
        rows,
        verdict: if interrupted {
            Verdict::Interrupted
        } else {
            verdict
        },
        summary,
        deadline_hit,
    })
}

/// At most this many rounds of writing the set again when an older promotion's values are
/// seen (each followed by a read-back), within the deadline.
const REAPPLY_ROUNDS: u32 = 8;

/// The ages of the promotions seen during a run: this run's set, and each image another
/// writer put on a target.
#[derive(Default)]
struct Ages {
    own: Option<Option<Age>>,
    seen: std::collections::HashMap<String, Age>,
}

/// Refuse (before any write) a promotion whose child records another parent than the one
/// promoted with it; a child that records none is a warning.
async fn check_lineage(
    client: &RegistryClient,
    steps: &[TagMove],
    manifests: &[Manifest],
) -> anyhow::Result<()> {
    let refs: Vec<ImageRef> = steps.iter().map(|s| s.source.clone()).collect();
    let names: Vec<String> = steps.iter().map(|s| s.source_name.clone()).collect();
    let parents: Vec<Option<usize>> = steps.iter().map(|s| s.parent).collect();
    let (mismatches, unrecorded) =
        crate::promote::lineage::check(client, &refs, &names, manifests, &parents)
            .await
            .context("cannot read which parent each image was built FROM; nothing was changed")?;
    for u in unrecorded {
        tracing::warn!(
            "{u} records no parent digest (built before stackctl recorded it): not checked"
        );
    }
    if !mismatches.is_empty() {
        anyhow::bail!(
            "refusing to promote a stack that does not fit together; nothing was changed:\n  {}",
            mismatches
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    Ok(())
}

/// The read round: each source's manifest and each target's (None: absent), read all at
/// once. A source that is missing, or anything that cannot be read, is an error: nothing
/// has been written yet.
async fn read_sources_and_targets(
    client: &RegistryClient,
    steps: &[TagMove],
    opts: &Options,
) -> anyhow::Result<(Vec<Manifest>, Vec<Option<Manifest>>)> {
    let cancel = &opts.cancel;
    let reads = join_all(
        steps
            .iter()
            .map(|s| &s.source)
            .chain(steps.iter().map(|s| &s.target))
            .map(|r| async move {
                match bounded(opts.deadline, cancel, client.get_manifest(r)).await {
                    Ok(res) => res.map_err(|e| e.to_string()),
                    Err(Cut::Deadline) => Err(format!(
                        "GET {r}: the run's deadline (--timeout) passed before it was answered"
                    )),
                    Err(Cut::Interrupted) => Err(format!("GET {r}: interrupted")),
                }
            }),
    )
    .await;
    if cancel.is_cancelled() {
        return Err(Interrupted(
            "interrupted while reading the registry; nothing was changed".into(),
        )
        .into());
    }
    let (source_reads, target_reads) = reads.split_at(steps.len());
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut manifests: Vec<Manifest> = Vec::new();
    for (s, r) in steps.iter().zip(source_reads) {
        match r {
            Ok(Some(m)) => manifests.push(m.clone()),
            Ok(None) => missing.push(s.source_name.clone()),
            Err(e) => errors.push(e.clone()),
        }
    }
    let mut before_manifests: Vec<Option<Manifest>> = Vec::new();
    for (s, r) in steps.iter().zip(target_reads) {
        match r {
            Ok(m) => before_manifests.push(m.clone()),
            Err(e) => errors.push(format!("target {}: {e}", s.target_name)),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "cannot read the registry; nothing was changed:\n  {}",
            errors.join("\n  ")
        );
    }
    if !missing.is_empty() {
        return Err(Failed(format!(
            "{} of {} source images are missing; nothing was changed:\n  {}",
            missing.len(),
            steps.len(),
            missing.join("\n  ")
        ))
        .into());
    }
    Ok((manifests, before_manifests))
}

/// A dry run's end: every target as it was read (`now` is `before`).
fn dry_run_end(
    steps: &[TagMove],
    manifests: &[Manifest],
    before: &[Held],
    todo: &[usize],
) -> TransactionEnd {
    let rows = (0..steps.len())
        .map(|i| Row {
            source: steps[i].source_name.clone(),
            target: steps[i].target_name.clone(),
            before: before[i].clone(),
            now: before[i].clone(),
            intended: manifests[i].digest.clone(),
            state: if todo.contains(&i) {
                State::Unchanged
            } else {
                State::Promoted
            },
            note: String::new(),
        })
        .collect();
    TransactionEnd {
        rows,
        verdict: Verdict::Checked,
        summary: "dry run: nothing was changed".into(),
        deadline_hit: None,
    }
}

/// Wait, after the last write that got no answer, for `settle`: such a write may land late.
async fn settle(writes: &[Write], settle: Duration) {
    let last_unanswered = writes
        .iter()
        .filter_map(|w| w.unanswered.get().map(|(_, t)| t))
        .max();
    if let Some(t) = last_unanswered {
        let until = Instant::from_std(t) + settle;
        if until > Instant::now() {
            tracing::info!(
                "a write got no answer; waiting {:.1}s for it to land before reading back",
                (until - Instant::now()).as_secs_f64()
            );
            tokio::time::sleep_until(until).await;
        }
    }
}

/// What the reads said of one target.
struct Read<'a> {
    before: &'a Held,
    now: &'a Held,
    /// The source's digest.
    intended: &'a str,
    /// The plan had it to write.
    in_todo: bool,
}

/// One target's row: its state from the read-back, and notes on its writes.
fn row(step: &TagMove, read: &Read<'_>, w: &Write) -> Row {
    let state = match read.now {
        Held::Unknown(_) => State::Unknown,
        Held::Digest(d) if d == read.intended => State::Promoted,
        n if n == read.before => {
            if w.restored || w.restore_sent.load(std::sync::atomic::Ordering::SeqCst) {
                State::Restored
            } else if w.confirmed {
                // This run's digest was there, and someone put the old one back.
                State::OtherWriter
            } else {
                State::Unchanged
            }
        }
        _ => State::OtherWriter,
    };
    let mut notes = Vec::new();
    if let Held::Unknown(e) = read.now {
        notes.push(format!("read-back failed: {e}"));
    }
    if let Some(why) = &w.left_alone {
        notes.push(why.clone());
    }
    if state != State::Promoted {
        if let Some((e, _)) = &w.error {
            notes.push(format!("PUT failed: {e}"));
        }
        if w.cut {
            notes.push("the PUT was cut short (deadline or interrupt)".into());
        }
        if let Some((n, _)) = w.unanswered.get() {
            notes.push(format!(
                "{n} PUT attempt(s) got no answer and may still land"
            ));
        }
        if read.in_todo && !w.confirmed && w.error.is_none() && !w.cut {
            notes.push("not written".into());
        }
    }
    Row {
        source: step.source_name.clone(),
        target: step.target_name.clone(),
        before: read.before.clone(),
        now: read.now.clone(),
        intended: read.intended.to_string(),
        state,
        note: notes.join("; "),
    }
}

/// The verdict of the rows taken together, and one sentence that says it.
fn verdict_of(rows: &[Row]) -> (Verdict, String) {
    let count = |s: State| rows.iter().filter(|r| r.state == s).count();
    let n = rows.len();
    if count(State::OtherWriter) > 0 {
        (
            Verdict::ConcurrentWriter,
            format!(
                "another writer changed {} of {n} targets during this run (it was not overwritten); \
                 promotions of one stack must not run at once (a `concurrency:` group)",
                count(State::OtherWriter)
            ),
        )
    } else if count(State::Unknown) > 0 {
        (
            Verdict::Partial,
            format!(
                "{} of {n} targets could not be read back: their state is unknown; \
                 run the same command again to complete the promotion",
                count(State::Unknown)
            ),
        )
    } else if count(State::Promoted) == n {
        (
            Verdict::Promoted,
            format!("all {n} targets hold their source's digest"),
        )
    } else if count(State::Unchanged) + count(State::Restored) == n {
        (
            Verdict::Unchanged,
            format!(
                "nothing was changed: every target holds what it held before ({} put back)",
                count(State::Restored)
            ),
        )
    } else {
        (
            Verdict::Partial,
            format!(
                "partly promoted: {} of {n} targets hold their source's digest; \
                 run the same command again to complete the promotion",
                count(State::Promoted)
            ),
        )
    }
}

/// The write side of one promotion.
struct Run<'a> {
    client: &'a RegistryClient,
    steps: &'a [TagMove],
    manifests: &'a [Manifest],
    before: &'a [Option<Manifest>],
    opts: &'a Options,
    writes: Vec<Write>,
    /// The first request the deadline cut (or kept from being retried).
    deadline_hit: Option<String>,
    interrupted: bool,
}

impl Run<'_> {
    /// The rows of every target as `now` holds it.
    fn rows(&self, todo: &[usize], before: &[Held], now: &[Held]) -> Vec<Row> {
        (0..self.steps.len())
            .map(|i| {
                let read = Read {
                    before: &before[i],
                    now: &now[i],
                    intended: &self.manifests[i].digest,
                    in_todo: todo.contains(&i),
                };
                row(&self.steps[i], &read, &self.writes[i])
            })
            .collect()
    }

    /// Whether every target of `todo` was written and none put back: only such a run may
    /// write its set again.
    fn whole_written(&self, todo: &[usize]) -> bool {
        todo.iter().all(|&i| {
            let w = &self.writes[i];
            w.confirmed && !w.restored && !w.restore_sent.load(std::sync::atomic::Ordering::SeqCst)
        })
    }

    /// Read every target back until the verdict is settled. A whole set is read again
    /// after `confirm_after` before it counts (a newer promotion may be about to write
    /// over it). Another writer's values: when they are newer than this run's set (see
    /// [`order`]), the run stops writing (the second value: the ages, this run's and
    /// theirs); when older, the run writes what it lacks again, in bounded rounds. Returns
    /// the rows of the last read-back.
    async fn converge(
        &mut self,
        todo: &[usize],
        before: &[Held],
    ) -> (Vec<Row>, Option<(Age, Age)>) {
        let opts = self.opts;
        let confirm = !todo.is_empty() && !opts.confirm_after.is_zero();
        let mut confirmed = !confirm;
        let mut ages = Ages::default();
        let mut rounds = 0;
        loop {
            settle(&self.writes, opts.settle).await;
            let now = read_back(self.client, self.steps, opts).await;
            let rows = self.rows(todo, before, &now);
            if self.interrupted || opts.cancel.is_cancelled() {
                self.interrupted |= opts.cancel.is_cancelled();
                return (rows, None);
            }
            if rows.iter().all(|r| r.state == State::Promoted) {
                if confirmed {
                    return (rows, None);
                }
                confirmed = true;
                tokio::select! {
                    _ = tokio::time::sleep(opts.confirm_after) => {}
                    _ = opts.cancel.cancelled() => self.interrupted = true,
                }
                continue;
            }
            let foreign: Vec<(usize, String)> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.state == State::OtherWriter)
                .filter_map(|(i, r)| r.now.digest().map(|d| (i, d.to_string())))
                .collect();
            if rows.iter().all(|r| r.state != State::OtherWriter) {
                return (rows, None);
            }
            let own = self.own_age(&mut ages).await;
            let theirs = self.foreign_age(&mut ages, &foreign).await;
            if let (Some(own), Some(theirs)) = (&own, theirs) {
                if theirs > *own {
                    tracing::warn!(
                        "another writer put {theirs} on a target: its source is newer than \
                         this run's ({own}); stopping, writing nothing more"
                    );
                    return (rows, Some((own.clone(), theirs)));
                }
            }
            let redo: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].state != State::Promoted)
                .collect();
            if !self.whole_written(todo)
                || rounds >= REAPPLY_ROUNDS
                || Instant::now() >= opts.deadline
            {
                return (rows, None);
            }
            rounds += 1;
            tracing::warn!(
                "another writer changed {} target(s) with an older source than this run's: \
                 writing them again (round {rounds} of {REAPPLY_ROUNDS})",
                redo.len()
            );
            self.put_round(&redo).await;
            confirmed = !confirm;
        }
    }

    /// This run's set's age: its newest source (read once).
    async fn own_age(&self, ages: &mut Ages) -> Option<Age> {
        if ages.own.is_none() {
            let all = join_all(
                self.steps
                    .iter()
                    .zip(self.manifests)
                    .map(|(s, m)| async move {
                        Age {
                            created: order::created(self.client, &s.source, m).await,
                            digest: m.digest.clone(),
                        }
                    }),
            )
            .await;
            ages.own = Some(order::newest(all));
        }
        ages.own.clone().flatten()
    }

    /// The newest image another writer was seen to put on a target during the run.
    async fn foreign_age(&self, ages: &mut Ages, foreign: &[(usize, String)]) -> Option<Age> {
        let unread: Vec<&(usize, String)> = foreign
            .iter()
            .filter(|(_, d)| !ages.seen.contains_key(d))
            .collect();
        let read = join_all(
            unread
                .iter()
                .map(|(i, d)| order::age_of(self.client, &self.steps[*i].target, d)),
        )
        .await;
        for a in read {
            ages.seen.insert(a.digest.clone(), a);
        }
        order::newest(ages.seen.values().cloned())
    }

    /// The writes: `existing` targets first (rolled back if one fails and every write was
    /// answered, else rolled forward), then the `new` ones, only once every existing one
    /// holds its source's digest (rolled forward: a new tag cannot be taken back).
    async fn write_all(&mut self, existing: &[usize], new: &[usize]) {
        let mut failing = self.put_round(existing).await;
        let mut rolled_back = false;
        if !failing.is_empty() && !self.interrupted {
            let rollback_possible = existing
                .iter()
                .all(|&i| self.writes[i].unanswered.get().is_none());
            if rollback_possible {
                tracing::warn!(
                    "promotion failed before any new tag was written: putting back what this run changed"
                );
                self.restore(existing).await;
                rolled_back = true;
            } else {
                tracing::warn!(
                    "a write got no answer and may still land: rolling forward instead of back"
                );
                failing = self.roll_forward(failing).await;
            }
        }
        if failing.is_empty() && !rolled_back && !self.interrupted && !new.is_empty() {
            let f = self.put_round(new).await;
            if !f.is_empty() && !self.interrupted {
                tracing::warn!("a new tag cannot be taken back: rolling forward");
                self.roll_forward(f).await;
            }
        }
    }

    /// One PUT round over `idx`, all at once; returns the indices not confirmed.
    async fn put_round(&mut self, idx: &[usize]) -> Vec<usize> {
        let results = {
            let this = &*self;
            join_all(idx.iter().map(|&i| async move {
                let s = &this.steps[i];
                if Instant::now() >= this.opts.deadline {
                    return (i, None);
                }
                let r = bounded(
                    this.opts.deadline,
                    &this.opts.cancel,
                    this.client.retag_manifest_noting(
                        &s.source,
                        &this.manifests[i],
                        &s.target,
                        Some(&this.writes[i].unanswered),
                    ),
                )
                .await;
                (i, Some(r))
            }))
            .await
        };
        let mut failing = Vec::new();
        for (i, r) in results {
            let target = self.steps[i].target_name.clone();
            let w = &mut self.writes[i];
            match r {
                Some(Ok(Ok(_))) => {
                    w.confirmed = true;
                    w.error = None;
                }
                Some(Ok(Err(e))) => {
                    tracing::warn!("{e}");
                    w.error = Some((e.to_string(), e.is_refusal()));
                    failing.push(i);
                }
                Some(Err(c)) => {
                    // A PUT in flight when the bound cut it may still land (one cut while
                    // waiting to retry did not leave).
                    if w.unanswered.in_flight() {
                        w.unanswered.note();
                    }
                    w.cut = true;
                    match c {
                        Cut::Interrupted => self.interrupted = true,
                        Cut::Deadline => {
                            self.deadline_hit
                                .get_or_insert_with(|| format!("PUT {target}"));
                        }
                    }
                    failing.push(i);
                }
                None => {
                    self.deadline_hit.get_or_insert_with(|| {
                        format!("PUT {target} (not started: the deadline had passed)")
                    });
                    failing.push(i);
                }
            }
        }
        failing
    }

    /// Retry the failures that asking again may fix, in bounded rounds within the deadline.
    /// Returns the indices still not confirmed.
    async fn roll_forward(&mut self, mut failing: Vec<usize>) -> Vec<usize> {
        for round in 1..=ROLL_FORWARD_ROUNDS {
            let retry: Vec<usize> = failing
                .iter()
                .copied()
                .filter(|&i| !matches!(self.writes[i].error, Some((_, true))))
                .collect();
            if retry.is_empty() || self.interrupted {
                break;
            }
            let wait = Duration::from_secs(1 << (round - 1));
            if Instant::now() + wait >= self.opts.deadline {
                let t = self.steps[retry[0]].target.to_string();
                self.deadline_hit.get_or_insert_with(|| {
                    format!("PUT {t} (the deadline left no time to retry it)")
                });
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.opts.cancel.cancelled() => {
                    self.interrupted = true;
                    break;
                }
            }
            tracing::info!(
                "rolling forward: retrying {} target(s), round {round} of {ROLL_FORWARD_ROUNDS}",
                retry.len()
            );
            let still = self.put_round(&retry).await;
            failing.retain(|i| still.contains(i) || !retry.contains(i));
            if failing.is_empty() {
                break;
            }
        }
        failing
    }

    /// Put back the targets among `idx` that this run changed, each only if it still holds
    /// this run's digest (a HEAD just before the PUT; the registry offers no conditional
    /// PUT, so a writer in between is seen by the read-back).
    async fn restore(&mut self, idx: &[usize]) {
        let limit = self
            .opts
            .deadline
            .max(Instant::now() + self.opts.read_back_timeout);
        let results = {
            let this = &*self;
            join_all(
                idx.iter()
                    .filter(|&&i| this.writes[i].confirmed)
                    .map(|&i| async move {
                        let t = &this.steps[i].target;
                        let old = this.before[i].as_ref().expect("an existing target");
                        let intended = &this.manifests[i].digest;
                        let r = bounded(limit, &this.opts.cancel, async {
                            match this.client.head_manifest(t).await {
                                Ok(Some(d)) if d.digest == *intended => {
                                    let w = &this.writes[i];
                                    w.restore_sent
                                        .store(true, std::sync::atomic::Ordering::SeqCst);
                                    let put = this.client.put_manifest_noting(
                                        t,
                                        old,
                                        Some(&w.unanswered),
                                    );
                                    match put.await {
                                        Ok(d) if d == old.digest => Ok(true),
                                        Ok(d) => Err(format!("the re-PUT stored {d}")),
                                        Err(e) => Err(format!("could not put it back: {e}")),
                                    }
                                }
                                Ok(Some(d)) => Err(format!(
                                    "not put back: it now holds {}, which this run did not write",
                                    d.digest
                                )),
                                Ok(None) => {
                                    Err("not put back: it is now absent, which this run did not do"
                                        .into())
                                }
                                Err(e) => Err(format!("not put back: cannot read it: {e}")),
                            }
                        })
                        .await;
                        (i, r)
                    }),
            )
            .await
        };
        for (i, r) in results {
            match r {
                Ok(Ok(_)) => self.writes[i].restored = true,
                Ok(Err(why)) => {
                    tracing::warn!("{}: {why}", self.steps[i].target_name);
                    self.writes[i].left_alone = Some(why);
                }
                Err(_) => {
                    // A PUT cut in flight may still land: the settle time waits for it.
                    if self.writes[i].unanswered.in_flight() {
                        self.writes[i].unanswered.note();
                    }
                    self.writes[i].left_alone = Some("the restore was cut short".into());
                }
            }
        }
    }
}

/// Read every target (HEAD), all at once, each within the read-back timeout.
async fn read_back(client: &RegistryClient, steps: &[TagMove], opts: &Options) -> Vec<Held> {
    join_all(steps.iter().map(|s| async move {
        match tokio::time::timeout(opts.read_back_timeout, client.head_manifest(&s.target)).await {
            Ok(Ok(Some(d))) => Held::Digest(d.digest),
            Ok(Ok(None)) => Held::Absent,
            Ok(Err(e)) => Held::Unknown(e.to_string()),
            Err(_) => Held::Unknown(format!("no answer within {:.0?}", opts.read_back_timeout)),
        }
    }))
    .await
}

/// Log what the run will do before any write.
fn log_plan(
    steps: &[TagMove],
    manifests: &[Manifest],
    before: &[Held],
    existing: &[usize],
    new: &[usize],
    dry_run: bool,
) {
    tracing::info!(
        "plan{}: {} targets; {} existing (moved first, can be put back), {} new (cannot be \
         taken back on this registry: stackctl never deletes a tag, GHCR and Distribution \
         refuse it), {} already promoted",
        if dry_run { " (dry run)" } else { "" },
        steps.len(),
        existing.len(),
        new.len(),
        steps.len() - existing.len() - new.len()
    );
    for (i, s) in steps.iter().enumerate() {
        let what = if existing.contains(&i) {
            format!("existing ({}): can be put back", before[i])
        } else if new.contains(&i) {
            "NEW: cannot be rolled back; written after every existing target, then rolled forward"
                .to_string()
        } else {
            "already holds it: nothing to do".to_string()
        };
        tracing::info!("  {} <- {}: {what}", s.target_name, manifests[i].digest);
    }
}
