//! `scripts/import-graph.sh` keeps the library free of import circles and `config` a leaf:
//! it passes on this tree and fails on trees that break either rule (so it can fail).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/import-graph.sh")
}

fn run(src: &Path, allow: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg(src);
    if let Some(a) = allow {
        cmd.env("HF_IMPORT_ALLOW", a);
    }
    cmd.output().expect("bash runs the script")
}

/// A source tree of `files` (path, contents) in a temporary directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn this_library_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let out = run(&src, None);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_circle_between_modules_fails() {
    let t = tree(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\n"),
        ("b/mod.rs", "// use crate::c::C; (a comment is no import)\n"),
        ("b/deep.rs", "pub fn f() { crate::a::g() }\n"),
        ("c.rs", "use crate::a::A;\n"),
    ]);
    let none = t.path().join("none.allow");
    let out = run(t.path(), Some(&none));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("crate: import circle"),
        "{}",
        stderr(&out)
    );
    // Allowing the edge that closes it lets it pass; an allowance that matches nothing fails.
    std::fs::write(&none, "crate b -> a  # test\n").unwrap();
    let out = run(t.path(), Some(&none));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&none, "crate b -> a\ncrate c -> b  # gone\n").unwrap();
    let out = run(t.path(), Some(&none));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no longer exist"), "{}", stderr(&out));
}

#[test]
fn a_circle_inside_runtime_fails() {
    let t = tree(&[
        ("runtime/mod.rs", "mod x;\nmod y;\nuse x::X;\n"),
        ("runtime/x.rs", "use super::{y, NodeInner};\n"),
        ("runtime/y/mod.rs", "mod z;\n"),
        ("runtime/y/z.rs", "use super::super::x::X;\n"),
    ]);
    let out = run(t.path(), Some(&t.path().join("none.allow")));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("runtime: import circle"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_importing_the_runtime_fails() {
    let t = tree(&[
        ("config/mod.rs", "use crate::runtime::Tuning;\n"),
        ("runtime/mod.rs", "use crate::error::Error;\n"),
        ("error.rs", ""),
    ]);
    let out = run(t.path(), Some(&t.path().join("none.allow")));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("config is not a leaf"),
        "{}",
        stderr(&out)
    );
}

/// The node core is sans-IO (issue #16): no clock read, thread, or socket in `src/core`,
/// comments included (the grep the issue names, kept as a test so it stays true).
#[test]
fn the_core_reads_no_clock_spawns_no_thread_and_opens_no_socket() {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
        &mut files,
    );
    assert!(files.len() > 5, "the core's files are found: {files:?}");
    let banned = ["Instant::now", "SystemTime", "thread::spawn", "std::net"];
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let hits: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| banned.iter().any(|b| l.contains(b)))
                .map(|(i, l)| format!("{}:{}: {l}", f.display(), i + 1))
                .collect();
            hits
        })
        .collect();
    assert!(
        found.is_empty(),
        "the core must stay sans-IO:\n{}",
        found.join("\n")
    );
}
