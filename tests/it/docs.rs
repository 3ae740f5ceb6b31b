//! The documentation a user finds by name: every relative link of README.md, of each *.md under docs/ and of
//! bench/README.md names a file that exists and, with `#anchor`, one of that file's headings (GitHub's anchors);
//! README.md stays short. scripts/check-docs-links.py makes the same check without a build.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::common::repo;

const README_MAX_BYTES: usize = 20_000;
const README_MAX_LINE_CHARS: usize = 400;

/// README.md, every *.md under docs/, and bench/README.md.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    markdown_under(&repo().join("docs"), &mut files);
    files.push(repo().join("bench").join("README.md"));
    files
}

fn markdown_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            markdown_under(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            out.push(path);
        }
    }
}

/// The lines outside fenced code blocks, with their 1-based numbers (a fence line itself is left out).
fn lines_outside_code(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The line with the text of its inline code spans removed (the backticks stay; an unclosed one opens nothing).
fn without_code_spans(line: &str) -> String {
    let parts: Vec<&str> = line.split('`').collect();
    let last = parts.len() - 1;
    let kept: Vec<&str> =
        parts.iter().enumerate().map(|(i, part)| if i % 2 == 1 && i < last { "" } else { *part }).collect();
    kept.join("`")
}

/// GitHub's anchor of a heading: lowercase; characters other than letters, digits, spaces, hyphens and
/// underscores removed; spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(*c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a file's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in lines_outside_code(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(line[hashes..].trim());
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 { base } else { format!("{base}-{n}") });
            *n += 1;
        }
    }
    out
}

/// Every link target `[text](target)` outside code, with its line number; a title after the target is dropped.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (number, line) in lines_outside_code(text) {
        let prose = without_code_spans(line);
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push((number, target.to_string()));
        }
    }
    out
}

/// `a/b/../c` as `a/c`, without asking the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn shown(path: &Path) -> String {
    let root = repo();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

#[test]
fn every_relative_link_of_the_docs_names_a_file_and_heading_that_exist() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (number, target) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file_part, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let dest = if file_part.is_empty() {
                path.clone()
            } else {
                normalize(&path.parent().expect("a file has a folder").join(file_part))
            };
            let at = format!("{}:{number}: ({target})", shown(&path));
            if file_part.is_empty() && anchor.is_empty() {
                broken.push(format!("{at}: empty link"));
            } else if !dest.exists() {
                broken.push(format!("{at}: {} does not exist", shown(&dest)));
            } else if !anchor.is_empty() {
                let found = dest.is_file()
                    && std::fs::read_to_string(&dest).map(|t| anchors(&t).contains(anchor)).unwrap_or(false);
                if !found {
                    broken.push(format!("{at}: no heading #{anchor} in {}", shown(&dest)));
                }
            }
        }
    }
    // Printed past the test harness's capture, so that CI's log shows the count.
    let _ = writeln!(std::io::stderr(), "docs links: {checked} relative links checked");
    assert!(checked > 0, "no relative link found in the docs: the link parser is broken");
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn the_readme_is_at_most_20000_bytes_with_no_line_over_400_characters() {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        text.len() <= README_MAX_BYTES,
        "README.md is {} bytes, more than {README_MAX_BYTES}: move the detail to a page under docs/",
        text.len()
    );
    let long: Vec<String> = text
        .split('\n')
        .enumerate()
        .filter(|(_, line)| line.chars().count() > README_MAX_LINE_CHARS)
        .map(|(i, line)| format!("README.md:{}: {} characters", i + 1, line.chars().count()))
        .collect();
    assert!(long.is_empty(), "lines over {README_MAX_LINE_CHARS} characters:\n{}", long.join("\n"));
}
