//! The shell commands shown in README.md's code blocks, as a newcomer would type them.

use std::collections::BTreeSet;
use std::path::Path;

/// One command line of a ```sh block: its text (comment removed) and its words.
#[derive(Debug, Clone)]
pub struct ReadmeCommand {
    pub line: String,
    pub words: Vec<String>,
}

/// Every non-empty, non-comment line of every ```sh block of the file, in order.
pub fn commands(readme: &Path) -> Vec<ReadmeCommand> {
    let text = std::fs::read_to_string(readme).expect("read README.md");
    let mut out = Vec::new();
    let mut in_sh = false;
    for raw in text.lines() {
        let t = raw.trim();
        if let Some(lang) = t.strip_prefix("```") {
            in_sh = !in_sh && matches!(lang.trim(), "sh" | "bash" | "shell" | "console");
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = strip_comment(t).trim().to_owned();
        if line.is_empty() {
            continue;
        }
        out.push(ReadmeCommand {
            words: words(&line),
            line,
        });
    }
    out
}

/// The line without a trailing `# comment` (a `#` outside quotes that starts a word).
pub fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Shell-like words: split on spaces, quotes group and are removed.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The value after `flag` in `words`, if any.
pub fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    let i = words.iter().position(|w| w == name)?;
    words.get(i + 1).map(String::as_str)
}

/// Every value of a repeatable `flag`.
pub fn flags<'a>(words: &'a [String], name: &str) -> Vec<&'a str> {
    (words.windows(2))
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

/// The shape of a JSON document: one line per key path (`a.b`, `a[].c`), sorted. Arrays
/// contribute the union of their elements' paths and, when not empty, a path `a[]`; a key
/// whose value is null gets a path `a.b=null` too. Values are left out.
pub fn key_paths(v: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

fn walk(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(path.clone());
                if v.is_null() {
                    out.insert(format!("{path}=null"));
                }
                walk(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            if !items.is_empty() {
                out.insert(format!("{at}[]"));
            }
            for item in items {
                walk(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

/// Whether `path` lies under a part that `other` saw empty or null: an array without
/// elements or a key with a null value (its inner keys cannot be compared then).
pub fn hidden_in(path: &str, other: &BTreeSet<String>) -> bool {
    let mut prefixes = Vec::new();
    for (i, _) in path.match_indices("[]") {
        prefixes.push((&path[..i + 2], false));
    }
    for (i, _) in path.match_indices('.') {
        prefixes.push((&path[..i], true));
    }
    prefixes.iter().any(|(p, is_key)| {
        if *is_key {
            other.contains(&format!("{p}=null")) || p.ends_with("[]") && !other.contains(*p)
        } else {
            !other.contains(*p)
        }
    })
}
