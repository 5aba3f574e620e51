//! The static HTML report (docs/conformance.md, "Reports"): `index.html` with the totals, the
//! coverage matrix and one line per case, and `cases/{ID}.html` per case with the expectation,
//! what was observed, the notes, the replay command and the platform's wire log (message types,
//! IDs and body summaries — never a field value). Plain files, no script, no external resource.

use std::fmt::Write as _;
use std::path::Path;

use crate::case::Verdict;
use crate::report::{CaseReport, RunReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NonStrict => "non-strict",
        Verdict::NotApplicable => "not-applicable",
        Verdict::ExpectedFailure => "expected-failure",
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:80em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}\
.pass{background:#dfd}.fail{background:#fdd}.non-strict,.expected-failure{background:#ffd}\
.not-applicable{background:#eee}pre{white-space:pre-wrap}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// A file name for case `id` (IDs are `A-Z0-9-`).
fn file_of(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("cases/{safe}.html")
}

/// The index page.
pub fn index(r: &RunReport) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>SGW conformance report — {}</h1>\n<p>Suite {} · target {} · seed {} · strict {} · \
         capabilities {}</p>",
        if r.passed { "PASSED" } else { "FAILED" },
        esc(&r.suite_version),
        esc(&r.target),
        r.seed,
        r.strict,
        esc(&serde_json::to_string(&r.capabilities).unwrap_or_default())
    );
    let _ = writeln!(b, "<p>Totals: {}</p>", esc(&format!("{:?}", r.totals)));
    b.push_str("<h2>Cases</h2>\n<table><tr><th>case</th><th>verdict</th><th>level</th><th>requirements</th><th>seconds</th><th>observed</th></tr>\n");
    for c in &r.cases {
        let v = verdict(c.verdict);
        let _ = writeln!(
            b,
            "<tr class=\"{v}\"><td><a href=\"{}\">{}</a></td><td>{v}</td><td>{:?}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            file_of(&c.id),
            esc(&c.id),
            c.level,
            esc(&c.requirements.join(", ")),
            c.seconds,
            esc(c.observed.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</table>\n<h2>Coverage</h2>\n<table><tr><th>requirement or rule</th><th>level</th><th>cases</th><th>outcomes</th></tr>\n");
    for (id, cov) in &r.coverage {
        let class = match (cov.cases.is_empty(), &cov.why) {
            (true, None) => " class=\"fail\"",
            (true, Some(_)) => " class=\"non-strict\"",
            _ => "",
        };
        let _ = writeln!(
            b,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(&cov.level),
            if cov.cases.is_empty() {
                match &cov.why {
                    Some(why) => format!("no case: {}", esc(why)),
                    None => "uncovered".to_owned(),
                }
            } else {
                esc(&cov.cases.join(", "))
            },
            esc(&cov
                .outcomes
                .iter()
                .map(|v| verdict(*v))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    b.push_str("</table>\n");
    page("SGW conformance report", &b)
}

/// One case's page.
pub fn case_page(c: &CaseReport) -> String {
    let v = verdict(c.verdict);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<p><a href=\"../index.html\">index</a></p><h1 class=\"{v}\">{} — {v}</h1>\n\
         <p><b>Requirements</b> {} · <b>rules</b> {} · <b>level</b> {:?} · {}</p>\n\
         <p><b>Does</b> {}</p>\n<p><b>Expected</b> {}</p>\n<p><b>Observed</b> {}</p>\n\
         <p><b>Replay</b> <code>{}</code> (case seed {})</p>",
        esc(&c.id),
        esc(&c.requirements.join(", ")),
        esc(&c.rules.join(", ")),
        c.level,
        if c.negative { "negative" } else { "positive" },
        esc(&c.description),
        esc(&c.expectation),
        esc(c.observed.as_deref().unwrap_or("as expected")),
        esc(&c.replay),
        c.seed
    );
    if !c.notes.is_empty() {
        b.push_str("<h2>Notes</h2><ul>");
        for n in &c.notes {
            let _ = write!(b, "<li>{}</li>", esc(n));
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<h2>Wire log (as the platform saw it)</h2>\n<table><tr><th>at</th><th>dir</th><th>type</th><th>messageId</th><th>inReplyTo</th><th>code</th><th>fault</th><th>body</th></tr>\n");
    for w in &c.wire {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(&w.at),
            w.direction,
            esc(&w.message_type),
            esc(&w.message_id),
            esc(w.in_reply_to.as_deref().unwrap_or("")),
            esc(w.code.as_deref().unwrap_or("")),
            esc(w.fault.as_deref().unwrap_or("")),
            esc(&w.summary)
        );
    }
    b.push_str("</table>\n");
    page(&c.id, &b)
}

/// Writes `index.html` and `cases/*.html` under `dir`.
pub fn write(r: &RunReport, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("cases"))?;
    std::fs::write(dir.join("index.html"), index(r))?;
    for c in &r.cases {
        std::fs::write(dir.join(file_of(&c.id)), case_page(c))?;
    }
    Ok(())
}
