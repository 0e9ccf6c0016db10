//! The JUnit XML report pytest writes (`--junitxml`): counts and failing tests.
//!
//! Read with quick-xml's event reader: only `<testcase>` and its `<failure>`,
//! `<error>` and `<skipped>` children matter, so a streaming walk is simpler than
//! mapping pytest's (and other runners') slightly different schemas onto serde types.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// What a JUnit report says.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JunitReport {
    /// Test cases that ran without failure, error or skip.
    pub passed: u32,
    /// Test cases with a `<failure>`.
    pub failed: u32,
    /// Test cases with an `<error>` (pytest: errors in fixtures or collection).
    pub errors: u32,
    /// Test cases with `<skipped>`.
    pub skipped: u32,
    /// Failing and erroring test cases, in report order.
    pub failures: Vec<TestFailure>,
}

impl JunitReport {
    /// Failed and erroring test cases together (a suite fails on either).
    pub fn failed_or_errored(&self) -> u32 {
        self.failed + self.errors
    }

    /// `12 passed, 1 failed, 2 skipped` (errors counted with failed).
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failed_or_errored(),
            self.skipped
        )
    }
}

/// One failing test case; the build's artifacts record the same ([`crate::report::TestCounts`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestFailure {
    /// `classname::name` (pytest: `test.test_x::test_y`).
    pub name: String,
    /// The failure's `message` attribute, else the first line of its text.
    pub message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Fail,
    Error,
    Skip,
}

struct Case {
    name: String,
    verdict: Verdict,
    message: String,
    /// Collecting the text of the `<failure>`/`<error>` element (for a missing message).
    in_detail: bool,
}

fn attr(e: &BytesStart, name: &str) -> String {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

/// The JUnit XML with its (first) `<testsuite name="...">` renamed to `name`.
pub fn rename_suite(xml: &str, name: &str) -> String {
    static SUITE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(<testsuite\b[^>]*?\sname=")[^"]*(")"#).unwrap()
    });
    let escaped = name
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    SUITE
        .replace(xml, |c: &regex::Captures| {
            format!("{}{escaped}{}", &c[1], &c[2])
        })
        .into_owned()
}

/// Parse a JUnit XML document.
pub fn parse(xml: &str) -> anyhow::Result<JunitReport> {
    let mut reader = Reader::from_str(xml);
    let mut report = JunitReport::default();
    let mut case: Option<Case> = None;

    fn open_case(e: &BytesStart) -> Case {
        let classname = attr(e, "classname");
        let name = attr(e, "name");
        Case {
            name: if classname.is_empty() {
                name
            } else {
                format!("{classname}::{name}")
            },
            verdict: Verdict::Pass,
            message: String::new(),
            in_detail: false,
        }
    }
    fn mark(case: &mut Case, e: &BytesStart) {
        let v = match e.local_name().as_ref() {
            b"failure" => Verdict::Fail,
            b"error" => Verdict::Error,
            b"skipped" => Verdict::Skip,
            _ => return,
        };
        // A failure or error outranks a skip (pytest may report both for one case).
        if case.verdict == Verdict::Pass || case.verdict == Verdict::Skip {
            case.verdict = v;
            case.message = attr(e, "message");
        }
        case.in_detail = matches!(v, Verdict::Fail | Verdict::Error);
    }
    fn close_case(report: &mut JunitReport, c: Case) {
        match c.verdict {
            Verdict::Pass => report.passed += 1,
            Verdict::Skip => report.skipped += 1,
            Verdict::Fail | Verdict::Error => {
                if c.verdict == Verdict::Fail {
                    report.failed += 1;
                } else {
                    report.errors += 1;
                }
                report.failures.push(TestFailure {
                    name: c.name,
                    message: c.message.trim().to_string(),
                });
            }
        }
    }

    loop {
        match reader.read_event()? {
            Event::Start(e) if e.local_name().as_ref() == b"testcase" => case = Some(open_case(&e)),
            Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                close_case(&mut report, open_case(&e))
            }
            Event::Start(e) | Event::Empty(e) => {
                if let Some(c) = case.as_mut() {
                    mark(c, &e);
                }
            }
            Event::Text(t) => {
                if let Some(c) = case
                    .as_mut()
                    .filter(|c| c.in_detail && c.message.is_empty())
                {
                    let raw = t.decode()?;
                    let text = quick_xml::escape::unescape(&raw)?;
                    if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
                        c.message = line.trim().to_string();
                    }
                }
            }
            Event::CData(t) => {
                if let Some(c) = case
                    .as_mut()
                    .filter(|c| c.in_detail && c.message.is_empty())
                {
                    let text = String::from_utf8_lossy(&t);
                    if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
                        c.message = line.trim().to_string();
                    }
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"testcase" => {
                    if let Some(c) = case.take() {
                        close_case(&mut report, c);
                    }
                }
                b"failure" | b"error" => {
                    if let Some(c) = case.as_mut() {
                        c.in_detail = false;
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_suite_names_the_first_testsuite() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="0"><testcase name="a"/></testsuite></testsuites>"#;
        let named = rename_suite(xml, "basic linux/arm64");
        assert!(
            named.contains(r#"<testsuite name="basic linux/arm64" errors="0">"#),
            "{named}"
        );
    }

    #[test]
    fn pytest_report() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="test.test_a" name="test_ok" time="0.001" />
<testcase classname="test.test_a" name="test_bad" time="0.001"><failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2</failure></testcase>
<testcase classname="test.test_a" name="test_skip" time="0.0"><skipped type="pytest.skip" message="not here">skip</skipped></testcase>
<testcase classname="test.test_b" name="test_fixture" time="0.0"><error message="failed on setup with &quot;boom&quot;">trace</error></testcase>
<testcase classname="test.test_c" name="test_nomsg" time="0.0"><failure>
first line
second</failure></testcase>
</testsuite></testsuites>"#;
        let r = parse(xml).unwrap();
        assert_eq!((r.passed, r.failed, r.errors, r.skipped), (1, 2, 1, 1));
        assert_eq!(r.failures[0].name, "test.test_a::test_bad");
        assert_eq!(r.failures[0].message, "assert 1 == 2");
        assert_eq!(r.failures[1].message, "failed on setup with \"boom\"");
        assert_eq!(r.failures[2].name, "test.test_c::test_nomsg");
        assert_eq!(r.failures[2].message, "first line");
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(parse("<testsuite><testcase></testsuite>").is_err());
    }
}
