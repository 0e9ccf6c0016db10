//! The scheduler with real async work: tokio timers stand in for BuildKit's time.
//!
//! Every test runs on tokio's paused clock: time moves only when every task waits on a
//! timer, straight to the next deadline. So spans are exact (a 40 ms sleep takes 40 ms of
//! the test's clock) and the order and overlap asserted below cannot depend on the load of
//! the machine.

use super::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn job(key: &str, parent: Option<&str>) -> Job {
    Job {
        key: key.into(),
        parent: parent.map(Into::into),
        rebuild: true,
    }
}

/// What the work closure saw: when each key started and ended, and the most at once.
#[derive(Default)]
struct Trace {
    spans: Vec<(String, Instant, Instant)>,
    running: usize,
    max_running: usize,
    calls: Vec<String>,
}

impl Trace {
    fn span(&self, key: &str) -> (Instant, Instant) {
        let (_, s, e) = self.spans.iter().find(|(k, _, _)| k == key).unwrap();
        (*s, *e)
    }
}

/// Work that sleeps `ms(key)` and succeeds unless the key is in `fail`.
fn sleeper(
    trace: Rc<RefCell<Trace>>,
    ms: impl Fn(&str) -> u64,
    fail: &'static [&'static str],
) -> impl FnMut(String) -> std::pin::Pin<Box<dyn Future<Output = bool>>> {
    move |key: String| {
        let trace = trace.clone();
        let d = Duration::from_millis(ms(&key));
        Box::pin(async move {
            let start = Instant::now();
            {
                let mut t = trace.borrow_mut();
                t.calls.push(key.clone());
                t.running += 1;
                t.max_running = t.max_running.max(t.running);
            }
            tokio::time::sleep(d).await;
            let mut t = trace.borrow_mut();
            t.running -= 1;
            t.spans.push((key.clone(), start, Instant::now()));
            !fail.contains(&key.as_str())
        })
    }
}

fn keys<T>(out: &[ScheduledImage<T>]) -> Vec<&str> {
    out.iter().map(|s| s.key.as_str()).collect()
}

/// base with four children.
fn fan_out() -> Vec<Job> {
    vec![
        job("base", None),
        job("a", Some("base")),
        job("b", Some("base")),
        job("c", Some("base")),
        job("d", Some("base")),
    ]
}

#[tokio::test(start_paused = true)]
async fn siblings_run_concurrently_up_to_the_job_limit() {
    for limit in [1, 2, 4] {
        let trace = Rc::new(RefCell::new(Trace::default()));
        let opts = ScheduleOptions {
            jobs: limit,
            keep_going: false,
        };
        let out = run_schedule(&fan_out(), opts, sleeper(trace.clone(), |_| 60, &[]))
            .await
            .unwrap();
        let t = trace.borrow();
        assert_eq!(t.max_running, limit, "limit {limit}");
        assert_eq!(keys(&out), ["base", "a", "b", "c", "d"]);
        assert!(out
            .iter()
            .all(|s| matches!(s.result, Scheduled::Ran { outcome: true, .. })));
        // No child starts before the parent's work is over.
        let (_, base_end) = t.span("base");
        for k in ["a", "b", "c", "d"] {
            assert!(t.span(k).0 >= base_end, "{k} started before base finished");
        }
        // Children start in topological order.
        assert_eq!(t.calls, ["base", "a", "b", "c", "d"]);
    }
}

#[tokio::test(start_paused = true)]
async fn siblings_overlap_in_time() {
    let trace = Rc::new(RefCell::new(Trace::default()));
    let jobs = vec![
        job("base", None),
        job("a", Some("base")),
        job("b", Some("base")),
    ];
    run_schedule(
        &jobs,
        ScheduleOptions::default(),
        sleeper(trace.clone(), |_| 80, &[]),
    )
    .await
    .unwrap();
    let t = trace.borrow();
    let (_, base_end) = t.span("base");
    assert_eq!(t.span("a").0, base_end, "a waited");
    assert_eq!(t.span("a"), t.span("b"), "a and b did not run side by side");
}

#[tokio::test(start_paused = true)]
async fn a_free_slot_is_filled_at_once() {
    // jobs=2: a (short) and b (long) start together; c takes a's slot when a ends,
    // long before b ends.
    let trace = Rc::new(RefCell::new(Trace::default()));
    let jobs = vec![job("a", None), job("b", None), job("c", None)];
    let ms = |k: &str| if k == "b" { 300 } else { 30 };
    run_schedule(
        &jobs,
        ScheduleOptions::default(),
        sleeper(trace.clone(), ms, &[]),
    )
    .await
    .unwrap();
    let t = trace.borrow();
    assert_eq!(
        t.span("c").0,
        t.span("a").1,
        "c did not take a's slot at once"
    );
    assert!(t.span("c").1 < t.span("b").1);
    assert_eq!(t.max_running, 2);
}

#[tokio::test(start_paused = true)]
async fn up_to_date_images_are_not_run_and_their_children_are() {
    let trace = Rc::new(RefCell::new(Trace::default()));
    let mut jobs = fan_out();
    jobs[0].rebuild = false; // base is in the registry already
    jobs[2].rebuild = false; // and so is b
    let out = run_schedule(
        &jobs,
        ScheduleOptions::default(),
        sleeper(trace.clone(), |_| 10, &[]),
    )
    .await
    .unwrap();
    assert_eq!(out[0].result, Scheduled::UpToDate);
    assert_eq!(out[2].result, Scheduled::UpToDate);
    let mut calls = trace.borrow().calls.clone();
    calls.sort();
    assert_eq!(calls, ["a", "c", "d"]);
}

/// base -> a -> a1 -> a11, base -> b, base -> c
fn two_branches() -> Vec<Job> {
    vec![
        job("base", None),
        job("a", Some("base")),
        job("a1", Some("a")),
        job("a11", Some("a1")),
        job("b", Some("base")),
        job("c", Some("base")),
    ]
}

#[tokio::test(start_paused = true)]
async fn keep_going_skips_only_the_failed_branch() {
    let trace = Rc::new(RefCell::new(Trace::default()));
    let opts = ScheduleOptions {
        jobs: 2,
        keep_going: true,
    };
    let out = run_schedule(
        &two_branches(),
        opts,
        sleeper(trace.clone(), |_| 20, &["a"]),
    )
    .await
    .unwrap();
    assert_eq!(keys(&out), ["base", "a", "a1", "a11", "b", "c"]);
    assert!(matches!(
        out[1].result,
        Scheduled::Ran { outcome: false, .. }
    ));
    assert_eq!(
        out[2].result,
        Scheduled::Skipped(Skip::AncestorFailed {
            failed: "a".into(),
            direct: true
        })
    );
    assert_eq!(
        out[3].result,
        Scheduled::Skipped(Skip::AncestorFailed {
            failed: "a".into(),
            direct: false
        })
    );
    assert!(matches!(
        out[4].result,
        Scheduled::Ran { outcome: true, .. }
    ));
    assert!(matches!(
        out[5].result,
        Scheduled::Ran { outcome: true, .. }
    ));
    let t = trace.borrow();
    assert!(!t.calls.contains(&"a1".to_string()));
    assert!(!t.calls.contains(&"a11".to_string()));
    assert_eq!(
        out[2].result.skip().unwrap().to_string(),
        "skipped: parent a failed"
    );
    assert_eq!(
        out[3].result.skip().unwrap().to_string(),
        "skipped: ancestor a failed"
    );
}

#[tokio::test(start_paused = true)]
async fn without_keep_going_started_images_finish_and_nothing_new_starts() {
    // jobs=2: a (fails fast) and b (slow) start together after base; c waits for a slot.
    let trace = Rc::new(RefCell::new(Trace::default()));
    let ms = |k: &str| match k {
        "a" => 20,
        "b" => 150,
        _ => 10,
    };
    let out = run_schedule(
        &two_branches(),
        ScheduleOptions::default(),
        sleeper(trace.clone(), ms, &["a"]),
    )
    .await
    .unwrap();
    // b was running when a failed: it finishes and counts.
    assert!(matches!(
        out[4].result,
        Scheduled::Ran { outcome: true, .. }
    ));
    let Scheduled::Ran { took, .. } = &out[4].result else {
        unreachable!()
    };
    assert!(*took >= Duration::from_millis(150));
    assert_eq!(
        out[5].result,
        Scheduled::Skipped(Skip::RunStopped { failed: "a".into() })
    );
    assert_eq!(
        out[2].result,
        Scheduled::Skipped(Skip::AncestorFailed {
            failed: "a".into(),
            direct: true
        })
    );
    assert_eq!(trace.borrow().calls, ["base", "a", "b"]);
    assert!(out.iter().filter(|s| s.result.is_failure()).count() == 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_root_skips_everything_below_it() {
    let trace = Rc::new(RefCell::new(Trace::default()));
    let jobs = vec![
        job("r1", None),
        job("x", Some("r1")),
        job("r2", None),
        job("y", Some("r2")),
    ];
    let opts = ScheduleOptions {
        jobs: 1,
        keep_going: true,
    };
    let out = run_schedule(&jobs, opts, sleeper(trace.clone(), |_| 5, &["r1"]))
        .await
        .unwrap();
    assert!(out[1].result.is_failure());
    assert!(matches!(out[1].result, Scheduled::Skipped(_)));
    assert!(matches!(
        out[3].result,
        Scheduled::Ran { outcome: true, .. }
    ));
    assert_eq!(trace.borrow().calls, ["r1", "r2", "y"]);
}

#[tokio::test(start_paused = true)]
async fn results_carry_the_work_outcome_and_timings() {
    let jobs = vec![job("base", None), job("child", Some("base"))];
    let out = run_schedule(
        &jobs,
        ScheduleOptions::default(),
        |key: String| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            if key == "child" {
                Err(format!("{key}: test failed"))
            } else {
                Ok(key.len())
            }
        },
    )
    .await
    .unwrap();
    let Scheduled::Ran {
        outcome,
        started,
        took,
    } = &out[0].result
    else {
        panic!("base did not run")
    };
    assert_eq!(outcome, &Ok(4));
    assert_eq!(*started, Duration::ZERO);
    assert_eq!(*took, Duration::from_millis(40));
    let Scheduled::Ran {
        outcome,
        started: s2,
        ..
    } = &out[1].result
    else {
        panic!("child did not run")
    };
    assert_eq!(outcome, &Err("child: test failed".to_string()));
    assert_eq!(
        *s2,
        *started + *took,
        "the child starts when its parent ends"
    );
}

#[tokio::test(start_paused = true)]
async fn parents_outside_the_run_count_as_ready() {
    // `--only child`: the parent is not among the jobs.
    let jobs = vec![job("child", Some("base"))];
    let out = run_schedule(&jobs, ScheduleOptions::default(), |_k| async { true })
        .await
        .unwrap();
    assert!(matches!(
        out[0].result,
        Scheduled::Ran { outcome: true, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_every_image_once() {
    let mut jobs = two_branches();
    jobs[5].rebuild = false;
    let seen = RefCell::new(Vec::new());
    let opts = ScheduleOptions {
        jobs: 3,
        keep_going: true,
    };
    run_schedule_observed(
        &jobs,
        opts,
        |k: String| async move { k != "a1" },
        |e: ScheduleEvent<'_, bool>| {
            seen.borrow_mut().push(match e {
                ScheduleEvent::UpToDate { key } => format!("up-to-date {key}"),
                ScheduleEvent::Started { key } => format!("start {key}"),
                ScheduleEvent::Finished { key, outcome, .. } => format!("end {key} {outcome}"),
                ScheduleEvent::Skipped { key, why } => format!("{key} {why}"),
                ScheduleEvent::Retried { key, .. } => format!("again {key}"),
            })
        },
    )
    .await
    .unwrap();
    let seen = seen.into_inner();
    assert_eq!(seen[0], "up-to-date c");
    assert!(seen.contains(&"end a1 false".to_string()));
    let pos = |s: &str| seen.iter().position(|x| x == s).unwrap();
    // The skip is told right when the parent fails.
    assert_eq!(
        pos("a11 skipped: parent a1 failed"),
        pos("end a1 false") + 1
    );
    assert!(pos("end base true") < pos("start a"));
    assert!(pos("end a true") < pos("start a1"));
    assert_eq!(seen.iter().filter(|s| s.starts_with("start")).count(), 4);
}

#[tokio::test(start_paused = true)]
async fn bad_job_lists_are_refused() {
    let dup = vec![job("a", None), job("a", None)];
    let e = run_schedule(&dup, ScheduleOptions::default(), |_k| async { true })
        .await
        .unwrap_err();
    assert_eq!(e, ScheduleError::Duplicate("a".into()));
    let order = vec![job("child", Some("base")), job("base", None)];
    let e = run_schedule(&order, ScheduleOptions::default(), |_k| async { true })
        .await
        .unwrap_err();
    assert!(e
        .to_string()
        .contains("`child` comes before its parent `base`"));
    let own = vec![job("a", Some("a"))];
    assert!(
        run_schedule(&own, ScheduleOptions::default(), |_k| async { true })
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn zero_jobs_means_one() {
    let trace = Rc::new(RefCell::new(Trace::default()));
    let opts = ScheduleOptions {
        jobs: 0,
        keep_going: false,
    };
    run_schedule(&fan_out(), opts, sleeper(trace.clone(), |_| 5, &[]))
        .await
        .unwrap();
    assert_eq!(trace.borrow().max_running, 1);
}

#[tokio::test(start_paused = true)]
async fn descendants_are_reported_skipped_as_soon_as_their_ancestor_fails() {
    // keep-going: a fails fast; b is slow. a1 and a11 are reported before b ends.
    let seen = RefCell::new(Vec::new());
    let opts = ScheduleOptions {
        jobs: 3,
        keep_going: true,
    };
    let work = |k: String| async move {
        let ms = if k == "b" { 200 } else { 10 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        k != "a"
    };
    let out = run_schedule_observed(&two_branches(), opts, work, |e: ScheduleEvent<'_, bool>| {
        let line = match e {
            ScheduleEvent::Finished { key, .. } => format!("end {key}"),
            ScheduleEvent::Skipped { key, why } => format!("{key} {why}"),
            _ => return,
        };
        seen.borrow_mut().push(line);
    })
    .await
    .unwrap();
    let seen = seen.into_inner();
    let pos = |s: &str| seen.iter().position(|x| x == s).unwrap();
    assert!(pos("a1 skipped: parent a failed") < pos("end b"));
    assert!(pos("a11 skipped: ancestor a failed") < pos("end b"));
    assert_eq!(seen.iter().filter(|l| l.starts_with("a11")).count(), 1);
    assert_eq!(
        out[3].result,
        Scheduled::Skipped(Skip::AncestorFailed {
            failed: "a".into(),
            direct: false
        })
    );
}

// ---- Several nodes (run_schedule_placed).

/// An outcome that knows the node it ran on and whether that node was lost.
#[derive(Debug, Clone, PartialEq)]
struct OnNode {
    node: usize,
    ok: bool,
    lost: bool,
}

impl ImageOutcome for OnNode {
    fn succeeded(&self) -> bool {
        self.ok
    }
    fn node_lost(&self) -> bool {
        self.lost
    }
}

fn node_of(out: &[ScheduledImage<OnNode>], key: &str) -> usize {
    out.iter()
        .find(|s| s.key == key)
        .and_then(|s| s.result.outcome())
        .unwrap_or_else(|| panic!("{key} did not run"))
        .node
}

#[tokio::test(start_paused = true)]
async fn siblings_spread_over_nodes_and_a_child_follows_its_parent() {
    // base, then a and b (siblings); a1 under a. Two nodes, one job each.
    let jobs = vec![
        job("base", None),
        job("a", Some("base")),
        job("b", Some("base")),
        job("a1", Some("a")),
    ];
    let opts = ScheduleOptions {
        jobs: 1,
        keep_going: false,
    };
    let trace = Rc::new(RefCell::new(Trace::default()));
    let t = trace.clone();
    let out = run_schedule_placed(
        &jobs,
        opts,
        2,
        |k: String, node| {
            let t = t.clone();
            async move {
                let start = Instant::now();
                // b is slow: a1 must still find a's node idle and go there.
                let ms = if k == "b" { 150 } else { 40 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                t.borrow_mut().spans.push((k, start, Instant::now()));
                OnNode {
                    node,
                    ok: true,
                    lost: false,
                }
            }
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(node_of(&out, "base"), 0);
    assert_eq!(
        node_of(&out, "a"),
        0,
        "a follows its parent to its idle node"
    );
    assert_eq!(node_of(&out, "b"), 1, "its sibling goes to the other node");
    assert_eq!(node_of(&out, "a1"), 0, "a1 follows a");
    let tr = trace.borrow();
    let (a_start, _) = tr.span("a");
    let (b_start, _) = tr.span("b");
    assert_eq!(b_start, a_start, "the siblings ran at the same time");
}

#[tokio::test(start_paused = true)]
async fn jobs_is_per_node() {
    let opts = ScheduleOptions {
        jobs: 2,
        keep_going: false,
    };
    let trace = Rc::new(RefCell::new(Trace::default()));
    let t = trace.clone();
    // Four independent images, two nodes of two: all four at once, two on each.
    let jobs: Vec<Job> = ["a", "b", "c", "d"].iter().map(|k| job(k, None)).collect();
    let mut sleep = sleeper(t, |_| 60, &[]);
    let out = run_schedule_placed(
        &jobs,
        opts,
        2,
        |k: String, node| {
            let f = sleep(k);
            async move {
                let ok = f.await;
                OnNode {
                    node,
                    ok,
                    lost: false,
                }
            }
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(trace.borrow().max_running, 4);
    let on0 = ["a", "b", "c", "d"]
        .iter()
        .filter(|k| node_of(&out, k) == 0)
        .count();
    assert_eq!(on0, 2);
}

#[tokio::test(start_paused = true)]
async fn a_lost_node_moves_its_image_once_then_no_node_is_left() {
    let opts = ScheduleOptions {
        jobs: 1,
        keep_going: true,
    };
    // Node 0 is lost during base; base runs again on node 1, and so does its child.
    let calls = RefCell::new(vec![]);
    let retried = RefCell::new(vec![]);
    let out = run_schedule_placed(
        &[job("base", None), job("a", Some("base"))],
        opts,
        2,
        |k: String, node| {
            calls.borrow_mut().push((k.clone(), node));
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let lost = node == 0;
                OnNode {
                    node,
                    ok: !lost,
                    lost,
                }
            }
        },
        |e: ScheduleEvent<'_, OnNode>| {
            if let ScheduleEvent::Retried { key, .. } = e {
                retried.borrow_mut().push(key.to_string());
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        calls.into_inner(),
        vec![("base".into(), 0), ("base".into(), 1), ("a".into(), 1)]
    );
    assert_eq!(retried.into_inner(), vec!["base".to_string()]);
    assert!(out.iter().all(|s| !s.result.is_failure()));

    // Every node is lost: the image is tried twice (once more, on the other node), then
    // it fails; the rest is skipped for want of a node, even with --keep-going.
    let calls = RefCell::new(0);
    let out = run_schedule_placed(
        &[
            job("base", None),
            job("a", Some("base")),
            job("other", None),
        ],
        ScheduleOptions {
            jobs: 1,
            keep_going: true,
        },
        2,
        |_k: String, node| {
            *calls.borrow_mut() += 1;
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                OnNode {
                    node,
                    ok: false,
                    lost: true,
                }
            }
        },
        |_| {},
    )
    .await
    .unwrap();
    // base (node 0) and other (node 1) start together and both lose their node: nothing
    // is left to run anything on.
    assert!(out.iter().all(|s| s.result.is_failure()), "{out:?}");
    assert!(*calls.borrow() <= 3, "no image runs more than twice");
    assert!(
        out.iter().any(|s| s.result.skip() == Some(&Skip::NoNode)),
        "{out:?}"
    );
}
