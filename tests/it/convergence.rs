//! Promotions that race or meet faults, against a real registry through the fault proxy:
//! two real `stackctl tag` processes converge on the newer source's whole set (the older
//! exits 5, superseded), a run's own late restore is not another writer, and a seeded soak
//! of 30 promotions checks every report against what the registry holds.

use crate::support;

use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::hand_made::push_created;
use support::proxy::{Proxy, Rule};
use support::{text, Registry, RegistryAuth};

const N: usize = 4;
const STABLE: &str = "2026.3-stable";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn client() -> RegistryClient {
    RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap()
}

/// A 4-image stack (`img0`, its three children) named through the proxy.
fn write_spec(dir: &Path, host: &str) {
    let mut yaml = String::from("root: img0\nimages:\n");
    for i in 0..N {
        yaml.push_str(&format!("  img{i}:\n    image_name: {host}/race/img{i}\n"));
        if i > 0 {
            yaml.push_str("    depend_on: img0\n");
        }
        let d = dir.join("images").join(format!("img{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    yaml.push_str("tag:\n  prefix: \"2026.3\"\n");
    std::fs::write(dir.join("spec.yml"), yaml).unwrap();
}

/// Push the set `name` (`:2026.3-<name>` on every image), created on `day` of 2026-01;
/// returns its digests in image order.
fn push_set(reg: &Registry, name: &str, day: u32) -> Vec<String> {
    let c = client();
    rt().block_on(async {
        let mut out = vec![];
        for i in 0..N {
            let r = ImageRef::parse(&format!("{}/race/img{i}:2026.3-{name}", reg.host())).unwrap();
            let created = format!("2026-01-{day:02}T00:00:{i:02}Z");
            out.push(
                push_created(&c, &r, &format!("{name}-{i}"), &created)
                    .await
                    .digest,
            );
        }
        out
    })
}

/// What every target holds, read from the registry directly ("absent" when missing).
fn held(reg: &Registry) -> Vec<String> {
    let c = client();
    rt().block_on(async {
        let mut out = vec![];
        for i in 0..N {
            let r = ImageRef::parse(&format!("{}/race/img{i}:{STABLE}", reg.host())).unwrap();
            out.push(match c.head_manifest(&r).await.unwrap() {
                Some(d) => d.digest,
                None => "absent".into(),
            });
        }
        out
    })
}

/// Put `digests` on the targets directly (the state before a round).
fn reset(reg: &Registry, set: &str) {
    let c = client();
    rt().block_on(async {
        for i in 0..N {
            let host = reg.host();
            let src = ImageRef::parse(&format!("{host}/race/img{i}:2026.3-{set}")).unwrap();
            let dst = ImageRef::parse(&format!("{host}/race/img{i}:{STABLE}")).unwrap();
            c.retag(&src, &dst).await.unwrap();
        }
    });
}

/// `stackctl tag 2026.3-<set>` on the spec in `dir` with `extra` options.
fn promote(dir: &Path, set: &str, extra: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    support::stackctl()
        .args(["tag", &format!("2026.3-{set}"), "--spec"])
        .arg(dir.join("spec.yml"))
        .arg("--repo")
        .arg(dir)
        .arg("--artifacts")
        .arg(artifacts.path())
        .args(extra)
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join("docker"))
        .output()
        .unwrap()
}

/// The NOW column of `stackctl tag`'s table, per target image index.
fn table_now(stdout: &str) -> BTreeMap<usize, String> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("TARGET"));
    lines.next();
    lines
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f[0].split("/img").nth(1)?.split(':').next()?.parse().ok()?;
            Some((i, f[2].to_string()))
        })
        .collect()
}

/// Two real `stackctl tag` processes promote two different sets to the same targets at
/// once, through a proxy that delays PUTs so that they interleave, several rounds, each
/// from the same old set: the end state is always the newer set, whole; the newer run
/// exits 0, the older exits 5 (superseded).
#[test]
fn concurrent_promotions_converge_on_the_newer_set() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(reg.port, vec![Rule::DelayPuts { max_ms: 400 }]);
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &proxy.host());
    push_set(&reg, "old", 1);
    let older = push_set(&reg, "x", 2);
    let newer = push_set(&reg, "y", 3);
    let opts = [
        "--timeout",
        "40s",
        "--request-timeout",
        "2s",
        "--confirm-after",
        "2s",
    ];
    for round in 0..4 {
        reset(&reg, "old");
        // Which one starts first changes from round to round.
        let (first, second) = if round % 2 == 0 {
            ("x", "y")
        } else {
            ("y", "x")
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| promote(dir.path(), first, &opts));
            std::thread::sleep(Duration::from_millis(50 * round));
            let b = s.spawn(|| promote(dir.path(), second, &opts));
            (a.join().unwrap(), b.join().unwrap())
        });
        let (ox, oy) = if first == "x" { (a, b) } else { (b, a) };
        let now = held(&reg);
        let why = format!(
            "round {round}: x exit {:?}, y exit {:?}\nx: {}{}\ny: {}{}",
            ox.status.code(),
            oy.status.code(),
            text(&ox.stdout),
            text(&ox.stderr),
            text(&oy.stdout),
            text(&oy.stderr)
        );
        eprintln!(
            "round {round}: x exit {:?}, y exit {:?}",
            ox.status.code(),
            oy.status.code()
        );
        assert_eq!(
            now, newer,
            "the end state is not the newer set, whole: {why}"
        );
        assert_ne!(now, older);
        assert_eq!(oy.status.code(), Some(0), "{why}");
        assert_eq!(ox.status.code(), Some(5), "{why}");
        assert!(text(&ox.stderr).contains("superseded"), "{why}");
    }
}

/// A refused PUT (an answered 400 on img2) makes the run put img0 and img1 back; the
/// restore of img0 is held by the proxy past the client's timeout and lands late, as do
/// its retries. Those are this run's own bytes: the registry is unchanged, and the run says
/// so (exit 1, img0 `restored`), never "another writer" (exit 4).
#[test]
fn a_late_restore_of_its_own_is_not_another_writer() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(
        reg.port,
        vec![
            Rule::HoldLaterPuts {
                path: format!("race/img0/manifests/{STABLE}"),
                hold: Duration::from_millis(2500),
            },
            Rule::FailPut {
                path: format!("race/img2/manifests/{STABLE}"),
                status: 400,
            },
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &proxy.host());
    let old = push_set(&reg, "old", 1);
    push_set(&reg, "x", 2);
    reset(&reg, "old");
    let out = promote(
        dir.path(),
        "x",
        &["--timeout", "20s", "--request-timeout", "1s"],
    );
    let (err, stdout) = (text(&out.stderr), text(&out.stdout));
    // The late PUTs have all landed by now (the run waited for them): read directly.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(held(&reg), old, "the registry is unchanged: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}\n{stdout}");
    assert!(!stdout.contains("other-writer"), "{stdout}");
    let now = table_now(&stdout);
    for (i, d) in old.iter().enumerate() {
        assert_eq!(now.get(&i), Some(d), "img{i}: {stdout}");
    }
}

/// A tiny seeded generator (xorshift64*): the soak's faults are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One random fault on one target's PUT: transient (a 500 once, a reset before or after
/// the PUT landed, a stall, a late write) or, for single runs only, persistent (500).
fn fault(rng: &mut Rng, persistent_ok: bool) -> Option<(String, Rule)> {
    let path = format!("race/img{}/manifests/{STABLE}", rng.below(N as u64));
    let kinds = if persistent_ok { 7 } else { 6 };
    let rule = match rng.below(kinds) {
        0 => return None,
        1 => Rule::HookThenFail {
            path,
            status: 500,
            hook: std::sync::Arc::new(|| {}),
        },
        2 => Rule::DropFirstPut {
            path,
            forward: false,
        },
        3 => Rule::DropFirstPut {
            path,
            forward: true,
        },
        4 => Rule::HoldFirstPut {
            path,
            hold: Duration::from_millis(400),
        },
        5 => Rule::HoldFirstPut {
            path,
            hold: Duration::from_millis(1300),
        },
        _ => Rule::FailPut { path, status: 500 },
    };
    let name = match &rule {
        Rule::HookThenFail { .. } => "500 once",
        Rule::DropFirstPut { forward: false, .. } => "reset before landing",
        Rule::DropFirstPut { forward: true, .. } => "reset after landing",
        Rule::HoldFirstPut { hold, .. } if *hold < Duration::from_secs(1) => "stall",
        Rule::HoldFirstPut { .. } => "late write",
        _ => "persistent 500",
    };
    Some((name.to_string(), rule))
}

/// Whether a single run's exit code and table agree with what the registry holds now
/// (`before`: what it held before the run; `own`: the run's set).
fn single_is_honest(out: &Output, before: &[String], own: &[String], now: &[String]) -> bool {
    let rows = table_now(&text(&out.stdout));
    let table_agrees = (0..N).all(|i| rows.get(&i) == Some(&now[i]));
    match out.status.code() {
        Some(0) => now == own,
        Some(1) => now == before && table_agrees,
        Some(3) => now != own && now.iter().zip(own).any(|(a, b)| a == b) && table_agrees,
        // Alone, there is no other writer to see or to be superseded by.
        _ => false,
    }
}

/// 30 promotions of a 4-image stack through the fault proxy, faults drawn from a fixed
/// seed, 10 of them as 5 pairs of concurrent runs. After each, the registry is read
/// directly and the exit code and report must agree with it; a mixed end state is
/// repaired by running the same promotion again without faults. Prints the figures.
#[test]
fn soak_promotions_under_faults_report_what_the_registry_holds() {
    let started = Instant::now();
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(reg.port, vec![]);
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &proxy.host());
    let sets: Vec<Vec<String>> = (0..5)
        .map(|k| push_set(&reg, &format!("s{k}"), k + 1))
        .collect();
    reset(&reg, "s0");
    let opts = [
        "--timeout",
        "6s",
        "--request-timeout",
        "800ms",
        "--confirm-after",
        "2500ms",
    ];
    let mut rng = Rng(0x5eed_2026_0324);
    let (mut runs, mut honest, mut mixed, mut unrepaired) = (0, 0, 0, 0);
    let mut lies = vec![];
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let injected_before = proxy.injected.load(std::sync::atomic::Ordering::SeqCst);
    let mut step = 0;
    while runs < 30 {
        step += 1;
        let before = held(&reg);
        let current = sets.iter().position(|s| *s == before);
        let pair = step % 3 == 0 && runs <= 28;
        let mut rules = vec![];
        for _ in 0..1 + rng.below(2) {
            if let Some((name, rule)) = fault(&mut rng, !pair) {
                *faults.entry(name).or_default() += 1;
                rules.push(rule);
            }
        }
        // Two sets other than what the targets hold (a pair needs both to have work).
        let mut pick = || loop {
            let k = rng.below(sets.len() as u64) as usize;
            if Some(k) != current {
                break k;
            }
        };
        let a = pick();
        let b = if pair {
            loop {
                let k = pick();
                if k != a {
                    break k;
                }
            }
        } else {
            a
        };
        if pair {
            rules.push(Rule::DelayPuts { max_ms: 300 });
        }
        proxy.set_rules(rules);
        let name = |k: usize| format!("s{k}");
        if pair {
            let (oa, ob) = std::thread::scope(|s| {
                let ta = s.spawn(|| promote(dir.path(), &name(a), &opts));
                let tb = s.spawn(|| promote(dir.path(), &name(b), &opts));
                (ta.join().unwrap(), tb.join().unwrap())
            });
            runs += 2;
            let now = held(&reg);
            let (newer, older, on, oo) = if a > b {
                (a, b, &oa, &ob)
            } else {
                (b, a, &ob, &oa)
            };
            let (cn, co) = (on.status.code(), oo.status.code());
            eprintln!("step {step}: pair s{newer} (exit {cn:?}) vs s{older} (exit {co:?})");
            if now == sets[newer] && cn == Some(0) && co == Some(5) {
                honest += 2;
            } else {
                lies.push(format!(
                    "step {step}: newer s{newer} exit {cn:?}, older s{older} exit {co:?}, \
                     end {:?}\n{}{}\n{}{}",
                    sets.iter().position(|s| *s == now),
                    text(&on.stdout),
                    text(&on.stderr),
                    text(&oo.stdout),
                    text(&oo.stderr)
                ));
                // Count each run on its own: the newer's 0 is honest if it holds.
                honest += usize::from(now == sets[newer] && cn == Some(0));
            }
        } else {
            let out = promote(dir.path(), &name(a), &opts);
            runs += 1;
            let now = held(&reg);
            eprintln!("step {step}: single s{a} exit {:?}", out.status.code());
            if single_is_honest(&out, &before, &sets[a], &now) {
                honest += 1;
            } else {
                lies.push(format!(
                    "step {step}: s{a} exit {:?}\n{}{}",
                    out.status.code(),
                    text(&out.stdout),
                    text(&out.stderr)
                ));
            }
        }
        // A mixed end state: one run again, no faults, must make it whole.
        let now = held(&reg);
        if !sets.contains(&now) {
            mixed += 1;
            proxy.set_rules(vec![]);
            let target = if pair { a.max(b) } else { a };
            let out = promote(dir.path(), &name(target), &opts);
            if held(&reg) != sets[target] || out.status.code() != Some(0) {
                unrepaired += 1;
            }
        }
    }
    let injected = proxy.injected.load(std::sync::atomic::Ordering::SeqCst) - injected_before;
    let took = started.elapsed();
    eprintln!(
        "SOAK: runs {runs}, faults drawn {} ({faults:?}), faults injected by the proxy \
         {injected}, honest reports {honest}/{runs}, mixed end states {mixed} (left \
         unrepaired: {unrepaired}), {:.0}s",
        faults.values().sum::<usize>(),
        took.as_secs_f64()
    );
    assert!(
        lies.is_empty(),
        "{} dishonest:\n{}",
        lies.len(),
        lies.join("\n---\n")
    );
    assert_eq!(honest, runs);
    assert_eq!(unrepaired, 0);
}
