//! The scheduler of `stackctl build`: which image runs when.
//!
//! It knows nothing of BuildKit or registries: it gets the images in
//! topological order (parents first), whether each rebuilds, and an async
//! closure doing one image's work (build, test, push, ...). Rules:
//! - an image that does not rebuild is not started ([`Scheduled::UpToDate`]);
//! - an image starts once its parent is done (or up to date, or not part of the run),
//!   at most `jobs` at a time on each node, earliest in topological order first;
//! - with several nodes (BuildKit builders, [`run_schedule_placed`]), an image goes to the
//!   node that ran its parent in this run when that node has nothing running (its cache
//!   holds the parent's layers), else to the node with the fewest images running;
//! - work whose node was lost ([`ImageOutcome::node_lost`]) runs again on another node, once;
//!   the lost node gets no more work. With no node left, the images not started are
//!   [`Skip::NoNode`];
//! - when an image fails, its descendants are not started ([`Skip::AncestorFailed`]);
//! - without `keep_going`, no image starts after a failure, images already
//!   running finish ([`Skip::RunStopped`]); with it, other branches go on.
//!
//! The work futures are polled on the caller's task (a `FuturesUnordered`), so
//! they need not be `Send` or `'static`: the waiting is concurrent, the real
//! work happens in BuildKit and the engine.

use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use tokio::time::Instant;

pub use crate::report::outcome::{ImageOutcome, ScheduleEvent, Scheduled, ScheduledImage, Skip};

/// One image as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub key: String,
    /// The parent's key. A parent that is not among the jobs counts as ready.
    pub parent: Option<String>,
    /// Whether the image is rebuilt in this run (from the plan).
    pub rebuild: bool,
}

impl Job {
    /// Jobs for every image of `spec`, in topological order; `rebuild(key)` says which rebuild.
    pub fn from_spec(spec: &crate::spec::Spec, rebuild: impl Fn(&str) -> bool) -> Vec<Job> {
        spec.topological()
            .into_iter()
            .map(|img| Job {
                key: img.key.clone(),
                parent: img.depend_on.clone(),
                rebuild: rebuild(&img.key),
            })
            .collect()
    }
}

/// How the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// At most this many images at a time (`--jobs`); 0 is taken as 1.
    pub jobs: usize,
    /// After a failure, go on with images that do not descend from it (`--keep-going`).
    pub keep_going: bool,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            jobs: 2,
            keep_going: false,
        }
    }
}

/// The jobs cannot be scheduled as given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("image `{0}` is listed twice")]
    Duplicate(String),
    #[error(
        "image `{child}` comes before its parent `{parent}`: jobs must be in topological order"
    )]
    NotTopological { child: String, parent: String },
}

/// Run `work` for every job that rebuilds, by the rules in the module docs.
/// Returns one entry per job, in the jobs' (topological) order.
pub async fn run_schedule<T, F, Fut>(
    jobs: &[Job],
    opts: ScheduleOptions,
    work: F,
) -> Result<Vec<ScheduledImage<T>>, ScheduleError>
where
    T: ImageOutcome,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = T>,
{
    run_schedule_observed(jobs, opts, work, |_| {}).await
}

/// [`run_schedule`], calling `observe` for each image as it is started, finished or skipped.
pub async fn run_schedule_observed<T, F, Fut>(
    jobs: &[Job],
    opts: ScheduleOptions,
    mut work: F,
    observe: impl FnMut(ScheduleEvent<'_, T>),
) -> Result<Vec<ScheduledImage<T>>, ScheduleError>
where
    T: ImageOutcome,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = T>,
{
    run_schedule_placed(jobs, opts, 1, |key, _node| work(key), observe).await
}

/// [`run_schedule_observed`] over `nodes` nodes (numbered from 0): `work(key, node)` runs an
/// image on the node chosen for it, `opts.jobs` at a time on each node.
pub async fn run_schedule_placed<T, F, Fut>(
    jobs: &[Job],
    opts: ScheduleOptions,
    nodes: usize,
    mut work: F,
    mut observe: impl FnMut(ScheduleEvent<'_, T>),
) -> Result<Vec<ScheduledImage<T>>, ScheduleError>
where
    T: ImageOutcome,
    F: FnMut(String, usize) -> Fut,
    Fut: Future<Output = T>,
{
    let mut board = Board::new(jobs, opts.jobs.max(1), nodes.max(1), &mut observe)?;
    let t0 = Instant::now();
    let mut running = FuturesUnordered::new();
    let mut first_failure: Option<usize> = None;
    loop {
        let stopped = first_failure.is_some() && !opts.keep_going;
        if !stopped {
            // Start ready images, earliest in topological order first.
            for (i, job) in jobs.iter().enumerate() {
                if !board.has_room() {
                    break;
                }
                if !board.ready(i) {
                    continue;
                }
                let Some(node) = board.start(i, &mut observe) else {
                    break;
                };
                let started = t0.elapsed();
                let fut = work(job.key.clone(), node);
                running.push(async move {
                    let outcome = fut.await;
                    (i, node, started, outcome)
                });
            }
        }
        let Some((i, node, started, outcome)) = running.next().await else {
            break;
        };
        if board.lost_and_retried(i, node, &outcome, &mut observe) {
            continue;
        }
        let took = t0.elapsed().saturating_sub(started);
        observe(ScheduleEvent::Finished {
            key: &jobs[i].key,
            outcome: &outcome,
            took,
        });
        let failed = !outcome.succeeded();
        if failed && first_failure.is_none() {
            first_failure = Some(i);
        }
        board.state[i] = State::Done(Scheduled::Ran {
            outcome,
            started,
            took,
        });
        if failed {
            board.skip_descendants(i, &mut observe);
        }
    }
    board.skip_held_back(first_failure, &mut observe);
    Ok(board.results())
}

/// Where one job is in the run.
enum State<T> {
    Pending,
    Running,
    Done(Scheduled<T>),
}

/// The scheduler's view of the run: each job's state, and each node's.
struct Board<'j, T> {
    jobs: &'j [Job],
    /// Each job's parent's position (None: no parent among the jobs).
    parents: Vec<Option<usize>>,
    state: Vec<State<T>>,
    per_node: usize,
    alive: Vec<bool>,
    busy: Vec<usize>,
    /// The node each image last ran on, and whether it already ran again after a lost node.
    ran_on: Vec<Option<usize>>,
    retried: Vec<bool>,
}

impl<'j, T: ImageOutcome> Board<'j, T> {
    /// Every job pending, except those that do not rebuild (up to date, observed as such).
    fn new(
        jobs: &'j [Job],
        per_node: usize,
        nodes: usize,
        observe: &mut impl FnMut(ScheduleEvent<'_, T>),
    ) -> Result<Self, ScheduleError> {
        let index = check_order(jobs)?;
        let parents = jobs
            .iter()
            .map(|j| {
                j.parent
                    .as_ref()
                    .and_then(|p| index.get(p.as_str()).copied())
            })
            .collect();
        let state = jobs
            .iter()
            .map(|j| {
                if j.rebuild {
                    State::Pending
                } else {
                    observe(ScheduleEvent::UpToDate { key: &j.key });
                    State::Done(Scheduled::UpToDate)
                }
            })
            .collect();
        Ok(Board {
            jobs,
            parents,
            state,
            per_node,
            alive: vec![true; nodes],
            busy: vec![0; nodes],
            ran_on: vec![None; jobs.len()],
            retried: vec![false; jobs.len()],
        })
    }

    /// Whether some live node can take one more image.
    fn has_room(&self) -> bool {
        (0..self.alive.len()).any(|n| self.alive[n] && self.busy[n] < self.per_node)
    }

    /// Whether job `i` is pending and its parent is done with success (or up to date, or not
    /// part of the run).
    fn ready(&self, i: usize) -> bool {
        if !matches!(self.state[i], State::Pending) {
            return false;
        }
        match self.parents[i] {
            None => true,
            Some(p) => match &self.state[p] {
                State::Done(Scheduled::UpToDate) => true,
                State::Done(Scheduled::Ran { outcome, .. }) => outcome.succeeded(),
                _ => false,
            },
        }
    }

    /// Mark job `i` running on the node chosen for it (None: every live node is full).
    fn start(&mut self, i: usize, observe: &mut impl FnMut(ScheduleEvent<'_, T>)) -> Option<usize> {
        let parent_node = self.parents[i].and_then(|p| self.ran_on[p]);
        let node = place(parent_node, &self.alive, &self.busy, self.per_node)?;
        self.busy[node] += 1;
        self.ran_on[i] = Some(node);
        self.state[i] = State::Running;
        observe(ScheduleEvent::Started {
            key: &self.jobs[i].key,
        });
        Some(node)
    }

    /// Job `i` ended on `node`. When the node was lost, it gets no more work, and the job,
    /// unless it already ran again, is pending again (true) for another node.
    fn lost_and_retried(
        &mut self,
        i: usize,
        node: usize,
        outcome: &T,
        observe: &mut impl FnMut(ScheduleEvent<'_, T>),
    ) -> bool {
        self.busy[node] -= 1;
        if !outcome.node_lost() {
            return false;
        }
        self.alive[node] = false;
        if self.retried[i] || !self.alive.iter().any(|a| *a) {
            return false;
        }
        self.retried[i] = true;
        observe(ScheduleEvent::Retried {
            key: &self.jobs[i].key,
            outcome,
        });
        self.state[i] = State::Pending;
        true
    }

    /// Job `i` failed: its descendants will never start; say so now, not at the end of the
    /// run. Descendants come after `i`, parents before children: one forward pass.
    fn skip_descendants(&mut self, i: usize, observe: &mut impl FnMut(ScheduleEvent<'_, T>)) {
        let jobs = self.jobs;
        let mut below = vec![i];
        for j in i + 1..jobs.len() {
            let Some(p) = self.parents[j] else { continue };
            if below.contains(&p) && matches!(self.state[j], State::Pending) {
                let why = Skip::AncestorFailed {
                    failed: jobs[i].key.clone(),
                    direct: p == i,
                };
                observe(ScheduleEvent::Skipped {
                    key: &jobs[j].key,
                    why: &why,
                });
                self.state[j] = State::Done(Scheduled::Skipped(why));
                below.push(j);
            }
        }
    }

    /// Whatever is still pending at the end was held back by a failure (without
    /// --keep-going), or found no node. Parents come first, so an ancestor's state is final
    /// when its descendant is looked at.
    fn skip_held_back(
        &mut self,
        first_failure: Option<usize>,
        observe: &mut impl FnMut(ScheduleEvent<'_, T>),
    ) {
        let jobs = self.jobs;
        for i in 0..jobs.len() {
            if !matches!(self.state[i], State::Pending) {
                continue;
            }
            let no_node = !self.alive.iter().any(|a| *a);
            let why = match (self.failed_ancestor(i), first_failure) {
                (Some((failed, direct)), _) => Skip::AncestorFailed { failed, direct },
                (None, _) if no_node => Skip::NoNode,
                (None, Some(f)) => Skip::RunStopped {
                    failed: jobs[f].key.clone(),
                },
                // Unreachable: with no failure every pending image becomes ready in turn.
                (None, None) => continue,
            };
            observe(ScheduleEvent::Skipped {
                key: &jobs[i].key,
                why: &why,
            });
            self.state[i] = State::Done(Scheduled::Skipped(why));
        }
    }

    /// The nearest ancestor of job `i` that ran and failed, and whether it is the parent.
    fn failed_ancestor(&self, i: usize) -> Option<(String, bool)> {
        let mut cur = self.parents[i];
        let mut direct = true;
        while let Some(p) = cur {
            if let State::Done(Scheduled::Ran { outcome, .. }) = &self.state[p] {
                if !outcome.succeeded() {
                    return Some((self.jobs[p].key.clone(), direct));
                }
            }
            direct = false;
            cur = self.parents[p];
        }
        None
    }

    /// One entry per job, in the jobs' order.
    fn results(self) -> Vec<ScheduledImage<T>> {
        self.jobs
            .iter()
            .zip(self.state)
            .map(|(j, s)| ScheduledImage {
                key: j.key.clone(),
                result: match s {
                    State::Done(r) => r,
                    State::Pending | State::Running => unreachable!("every job ends done"),
                },
            })
            .collect()
    }
}

/// The node for an image whose parent ran on `parent` (None: not in this run): the parent's
/// node when it has nothing running, else the live node with the fewest images running
/// (the parent's first among equals, then the lowest number). None when every live node is
/// full.
fn place(parent: Option<usize>, alive: &[bool], busy: &[usize], per_node: usize) -> Option<usize> {
    if let Some(p) = parent {
        if alive[p] && busy[p] == 0 {
            return Some(p);
        }
    }
    (0..alive.len())
        .filter(|&n| alive[n] && busy[n] < per_node)
        .min_by_key(|&n| (busy[n], Some(n) != parent, n))
}

/// Key → position, checking keys are unique and parents come before children.
fn check_order(jobs: &[Job]) -> Result<HashMap<&str, usize>, ScheduleError> {
    let mut index = HashMap::with_capacity(jobs.len());
    for (i, j) in jobs.iter().enumerate() {
        if index.insert(j.key.as_str(), i).is_some() {
            return Err(ScheduleError::Duplicate(j.key.clone()));
        }
    }
    for (i, j) in jobs.iter().enumerate() {
        if let Some(p) = &j.parent {
            if index.get(p.as_str()).is_some_and(|&pi| pi >= i) {
                return Err(ScheduleError::NotTopological {
                    child: j.key.clone(),
                    parent: p.clone(),
                });
            }
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests;
