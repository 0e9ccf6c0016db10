//! The build context as BuildKit's file sync sees it: a walk of a folder in fsutil's order,
//! filtered by `.dockerignore`-style patterns, each entry described by an fsutil `Stat`.
//!
//! Patterns follow Docker's rules (moby/patternmatcher): `*`, `?`, `[...]`, `**` across folders,
//! `!` re-includes, the last matching pattern wins, and a pattern that matches a folder matches
//! everything under it. No crate implements exactly these rules (globset has no "parent matches"
//! nor last-match-wins with negation), so they are compiled to regexes here.
//!
//! Symlinks are sent as symlinks (their target as `linkname`) and never followed, so nothing
//! outside the context is ever read.

use anyhow::{bail, Context as _};
use bollard_buildkit_proto::fsutil::types::Stat;
use regex::Regex;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Go's `os.FileMode` bits, which fsutil puts on the wire.
pub mod gomode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    /// Every type bit: a mode without them is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | (1 << 19);
}

/// One pattern of a `.dockerignore`-style list.
#[derive(Debug, Clone)]
struct Pattern {
    re: Regex,
    negated: bool,
}

/// An ordered list of patterns; the last one matching a path decides.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    list: Vec<Pattern>,
}

impl Patterns {
    /// Compile patterns (empty lines and `#` comments must already be removed).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> anyhow::Result<Patterns> {
        let mut list = Vec::new();
        for p in patterns {
            let mut p = p.as_ref().trim();
            let negated = p.starts_with('!');
            if negated {
                p = p[1..].trim();
            }
            let cleaned = clean(p);
            if cleaned.is_empty() || cleaned == "." {
                continue;
            }
            let re = Regex::new(&glob_to_regex(&cleaned))
                .with_context(|| format!("bad pattern {p:?}"))?;
            list.push(Pattern { re, negated });
        }
        Ok(Patterns { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether any pattern is a `!` exception (then an excluded folder must still be walked).
    pub fn has_negations(&self) -> bool {
        self.list.iter().any(|p| p.negated)
    }

    /// Whether `path` (relative, `/`-separated) matches: the last matching pattern decides.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.list {
            let mut hit = p.re.is_match(path);
            if !hit && parts.len() > 1 {
                // A pattern that matches a parent folder matches everything below it.
                hit = (1..parts.len()).any(|n| p.re.is_match(&parts[..n].join("/")));
            }
            if hit {
                matched = !p.negated;
            }
        }
        matched
    }

    /// Read `.dockerignore` in `dir` (missing file: no patterns).
    pub fn from_dockerignore(dir: &Path) -> anyhow::Result<Patterns> {
        let lines = dockerignore_lines(dir)?;
        Patterns::new(&lines).with_context(|| format!("in {}", dir.join(".dockerignore").display()))
    }
}

/// The pattern lines of `.dockerignore` in `dir` (no file: none). A `.dockerignore` that is
/// a link resolving outside `dir` is refused without being read.
pub fn dockerignore_lines(dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(path) = inside_context(dir, ".dockerignore")? else {
        return Ok(vec![]);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// `dir/name` when it exists and, links followed, stays inside `dir`; `None` when it does not
/// exist. A link that resolves outside `dir` (or cannot be resolved) is an error naming it:
/// stackctl reads such files on the host (`.dockerignore`), and must not read, say,
/// /etc/shadow through a link planted in a context.
pub fn inside_context(dir: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        Ok(md) if !md.file_type().is_symlink() => return Ok(Some(path)),
        Ok(_) => {}
    }
    let root =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    match std::fs::canonicalize(&path) {
        Ok(target) if target.starts_with(&root) => Ok(Some(target)),
        Ok(_) => bail!(
            "{} is a link to a file outside the build context {}; refused (copy the file into the context instead)",
            path.display(),
            root.display()
        ),
        Err(e) => bail!(
            "{} is a link that does not resolve ({e}); refused",
            path.display()
        ),
    }
}

/// Go's `filepath.Clean` for a relative pattern, with the leading `/` dropped.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Docker's pattern syntax as an anchored regex.
fn glob_to_regex(p: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    // `**/` : zero or more folders
                    i += 1;
                    re.push_str("(.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                // A character class, copied with `!` as negation.
                let mut j = i + 1;
                let mut class = String::from("[");
                if chars.get(j) == Some(&'!') || chars.get(j) == Some(&'^') {
                    class.push('^');
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        class.push_str(&regex::escape(&chars[j + 1].to_string()));
                        j += 2;
                        continue;
                    }
                    if chars[j] == '[' || chars[j] == '&' || chars[j] == '~' {
                        class.push('\\');
                    }
                    class.push(chars[j]);
                    j += 1;
                }
                if j < chars.len() {
                    class.push(']');
                    re.push_str(&class);
                    i = j;
                } else {
                    re.push_str(&regex::escape("["));
                }
            }
            '\\' if i + 1 < chars.len() => {
                i += 1;
                re.push_str(&regex::escape(&chars[i].to_string()));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    re
}

/// What to send of a folder.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these (and their parents) when non-empty.
    pub include: Option<Patterns>,
    /// Leave these out.
    pub exclude: Patterns,
    /// Literal include prefixes, to avoid walking folders that cannot hold an included path.
    include_literals: Option<Vec<Vec<String>>>,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> anyhow::Result<Filter> {
        let (inc, lits) = if include.is_empty() {
            (None, None)
        } else {
            let lits = include
                .iter()
                .map(|p| {
                    clean(p)
                        .split('/')
                        .take_while(|c| !c.contains(['*', '?', '[', '\\']))
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
            (Some(Patterns::new(include)?), Some(lits))
        };
        Ok(Filter {
            include: inc,
            exclude: Patterns::new(exclude)?,
            include_literals: lits,
        })
    }

    /// Whether a folder may hold an included path (so it must be walked).
    fn may_contain_included(&self, rel: &str) -> bool {
        let Some(lits) = &self.include_literals else {
            return true;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        lits.iter().any(|lit| {
            // The pattern's literal head must agree with the folder's path as far as both go
            // (a head shorter than the folder ends at a wildcard, which may match anything).
            lit.iter().zip(parts.iter()).all(|(a, b)| a == b)
        })
    }
}

/// One entry of the walk: its `Stat` (path relative, `/`-separated) and where it is on disk.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stat: Stat,
    pub abs: PathBuf,
}

impl Entry {
    /// A regular file: the receiver may ask for its bytes.
    pub fn is_regular(&self) -> bool {
        self.stat.mode & gomode::TYPE == 0
    }
}

/// The fsutil `Stat` of one file, not following symlinks.
pub fn stat_of(abs: &Path, rel: &str, md: &std::fs::Metadata) -> anyhow::Result<Stat> {
    let ft = md.file_type();
    let unix = md.mode();
    let mut mode = unix & 0o777;
    if unix & 0o4000 != 0 {
        mode |= gomode::SETUID;
    }
    if unix & 0o2000 != 0 {
        mode |= gomode::SETGID;
    }
    if unix & 0o1000 != 0 {
        mode |= gomode::STICKY;
    }
    let mut linkname = String::new();
    let (mut devmajor, mut devminor) = (0, 0);
    if ft.is_dir() {
        mode |= gomode::DIR;
    } else if ft.is_symlink() {
        mode |= gomode::SYMLINK;
        linkname = std::fs::read_link(abs)
            .with_context(|| format!("cannot read symlink {}", abs.display()))?
            .to_string_lossy()
            .into_owned();
    } else if ft.is_block_device() || ft.is_char_device() {
        mode |= gomode::DEVICE;
        if ft.is_char_device() {
            mode |= gomode::CHAR_DEVICE;
        }
        let rdev = md.rdev();
        devmajor = ((rdev >> 8) & 0xfff) as i64 | ((rdev >> 32) & !0xfff) as i64;
        devminor = (rdev & 0xff) as i64 | ((rdev >> 12) & !0xff) as i64;
    } else if ft.is_fifo() {
        mode |= gomode::NAMED_PIPE;
    } else if ft.is_socket() {
        mode |= gomode::SOCKET;
    }
    Ok(Stat {
        path: rel.to_string(),
        mode,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_dir() { 0 } else { md.size() as i64 },
        mod_time: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        linkname,
        devmajor,
        devminor,
        xattrs: HashMap::new(),
    })
}

/// Walk `root` in fsutil's order (each folder's names sorted bytewise, a folder right before its
/// contents), keeping what `filter` lets through. A folder left out by the exclude patterns is not
/// entered unless a `!` pattern may bring something inside it back; folders are sent only when
/// they are themselves kept or hold something kept.
pub fn walk(root: &Path, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
    let md = std::fs::metadata(root)
        .with_context(|| format!("build context {} cannot be read", root.display()))?;
    if !md.is_dir() {
        bail!("build context {} is not a folder", root.display());
    }
    let mut out = Vec::new();
    walk_dir(root, "", filter, &mut out)?;
    Ok(out)
}

fn walk_dir(dir: &Path, rel: &str, filter: &Filter, out: &mut Vec<Entry>) -> anyhow::Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let Some(name_s) = name.to_str() else {
            bail!("file name {:?} in {} is not UTF-8", name, dir.display());
        };
        let crel = if rel.is_empty() {
            name_s.to_string()
        } else {
            format!("{rel}/{name_s}")
        };
        let abs = dir.join(&name);
        let md = std::fs::symlink_metadata(&abs)
            .with_context(|| format!("cannot stat {}", abs.display()))?;
        let excluded = filter.exclude.matches(&crel);
        let included = match &filter.include {
            None => true,
            Some(inc) => inc.matches(&crel),
        };
        if md.is_dir() {
            let keep_self = !excluded && included;
            if keep_self {
                out.push(Entry {
                    stat: stat_of(&abs, &crel, &md)?,
                    abs: abs.clone(),
                });
                walk_dir(&abs, &crel, filter, out)?;
                continue;
            }
            // Not kept itself: look inside only if something there may be kept.
            let may_exception = excluded && filter.exclude.has_negations();
            let may_include = !excluded && !included && filter.may_contain_included(&crel);
            if may_exception || may_include {
                let mark = out.len();
                out.push(Entry {
                    stat: stat_of(&abs, &crel, &md)?,
                    abs: abs.clone(),
                });
                walk_dir(&abs, &crel, filter, out)?;
                if out.len() == mark + 1 {
                    out.pop();
                }
            }
        } else if !excluded && included {
            out.push(Entry {
                stat: stat_of(&abs, &crel, &md)?,
                abs,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Patterns {
        Patterns::new(p).unwrap()
    }

    #[test]
    fn dockerignore_rules() {
        let p = pats(&["ignored", "*.log", "!keep.log", "**/tmp", "/abs/x"]);
        assert!(p.matches("ignored"));
        assert!(p.matches("ignored/deep/file"));
        assert!(p.matches("a.log"));
        assert!(!p.matches("keep.log"));
        assert!(!p.matches("sub/a.log"));
        assert!(p.matches("tmp"));
        assert!(p.matches("a/b/tmp"));
        assert!(p.matches("a/b/tmp/f"));
        assert!(p.matches("abs/x"));
        assert!(!p.matches("src/main.rs"));
        assert!(pats(&["[a-c]?.txt"]).matches("bz.txt"));
        assert!(!pats(&["[!a-c]?.txt"]).matches("bz.txt"));
    }

    #[test]
    fn dockerignore_linked_outside_the_context_is_refused_unread() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "top-secret-line\n").unwrap();
        let ctx = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, ctx.path().join(".dockerignore")).unwrap();
        let e = format!("{:#}", Patterns::from_dockerignore(ctx.path()).unwrap_err());
        assert!(e.contains("outside the build context"), "{e}");
        assert!(!e.contains("top-secret-line"), "{e}");
        // A link inside the context is followed.
        let inner = tempfile::tempdir().unwrap();
        std::fs::write(inner.path().join("ignore.txt"), "*.log\n").unwrap();
        std::os::unix::fs::symlink("ignore.txt", inner.path().join(".dockerignore")).unwrap();
        assert_eq!(dockerignore_lines(inner.path()).unwrap(), ["*.log"]);
        // A dangling link is refused too; no file at all means no patterns.
        let dangling = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", dangling.path().join(".dockerignore"))
            .unwrap();
        assert!(dockerignore_lines(dangling.path()).is_err());
        assert!(dockerignore_lines(outside.path()).unwrap().is_empty());
    }

    #[test]
    fn walk_order_filters_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), "x").unwrap();
        std::fs::write(r.join("a.txt"), "y").unwrap();
        std::fs::create_dir_all(r.join("ignored/sub")).unwrap();
        std::fs::write(r.join("ignored/sub/keep"), "k").unwrap();
        std::fs::write(r.join("ignored/drop"), "d").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();
        let f = Filter::new(&[], &["ignored".into(), "!ignored/sub/keep".into()]).unwrap();
        let paths: Vec<String> = walk(r, &f)
            .unwrap()
            .into_iter()
            .map(|e| e.stat.path)
            .collect();
        assert_eq!(
            paths,
            [
                "a",
                "a/b",
                "a/b/f",
                "a.txt",
                "ignored",
                "ignored/sub",
                "ignored/sub/keep",
                "link"
            ]
        );
        let e = walk(r, &Filter::default()).unwrap();
        let link = e.iter().find(|e| e.stat.path == "link").unwrap();
        assert_eq!(link.stat.linkname, "/etc/passwd");
        assert!(link.stat.mode & gomode::SYMLINK != 0);
        let inc = Filter::new(&["a/b/f".into()], &[]).unwrap();
        let paths: Vec<String> = walk(r, &inc)
            .unwrap()
            .into_iter()
            .map(|e| e.stat.path)
            .collect();
        assert_eq!(paths, ["a", "a/b", "a/b/f"]);
    }
}
