//! Every command of README.md's ```sh blocks, run as written (in a temp directory holding
//! `examples/`, with `/tmp/` moved into it): `serve` lines start servers that stay up, other
//! commands get the nodes of their fabric file served first when the README did not. A
//! command fails the test on a non-zero exit code, and a `--json` command on a change of its
//! output's shape (key paths, recorded in tests/fixtures/readme/; `HF_README_FIXTURES=write`
//! records them anew). New README commands are picked up; only [`SKIP`] is left out.

#[path = "support/readme.rs"]
mod readme;
mod support;

use readme::{commands, flag, flags, key_paths, ReadmeCommand};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::BIN;

/// Commands that cannot run here, by a word they contain, with the reason.
const SKIP: &[(&str, &str)] = &[
    ("cargo test", "the test suite itself (it runs this test)"),
    (
        "scripts/test-all.sh",
        "the test suite itself (it runs this test)",
    ),
    (
        "pip install ./python",
        "installs into the user's Python; scripts/test-python.sh installs it into its venv",
    ),
    (
        "python -c \"import hyperfabric\"",
        "python/tests import the package installed by scripts/test-python.sh",
    ),
    (
        "python -m hyperfabric.benchmark",
        "python/tests/test_examples.py runs it (test_benchmark_module_prints_json)",
    ),
    ("...", "a placeholder for the reader's own arguments"),
    (
        "monitor --config examples/lab.toml",
        "the live dashboard needs a terminal and runs until q (its --once form is run)",
    ),
];

/// Copies the files of `from` (and its folders') into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("examples copy");
    for e in std::fs::read_dir(from).expect("examples folder") {
        let e = e.expect("examples entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else if !e.file_name().to_string_lossy().ends_with(".key") {
            std::fs::copy(e.path(), &target).expect("copy an example");
        }
    }
}

/// The README's fixed loopback ports (examples' `127.0.0.1:7101`, `--metrics 127.0.0.1:9100`)
/// mapped to ports free now, so this walk does not collide with another run on the machine.
struct Ports(BTreeMap<String, String>);

const LOOPBACK: &str = "127.0.0.1:";

impl Ports {
    /// Every fixed port in the `.toml` files under `dir` and in `lines`, each given a free one.
    fn free_for(dir: &Path, lines: &[String]) -> Ports {
        let mut texts: Vec<String> = lines.to_vec();
        for e in std::fs::read_dir(dir).expect("examples copy") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                texts.push(std::fs::read_to_string(&path).expect("example file"));
            }
        }
        let fixed: BTreeSet<String> = texts.iter().flat_map(|t| loopback_ports(t)).collect();
        // Hold every listener until all are picked, so no two fixed ports get one free port.
        let held: Vec<(String, std::net::TcpListener)> = fixed
            .into_iter()
            .filter(|p| p != "0")
            .map(|p| {
                (
                    p,
                    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"),
                )
            })
            .collect();
        let map = held
            .iter()
            .map(|(p, l)| (p.clone(), l.local_addr().expect("addr").port().to_string()))
            .collect();
        Ports(map)
    }

    fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(LOOPBACK) {
            let (head, tail) = rest.split_at(at + LOOPBACK.len());
            out.push_str(head);
            let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let port = &tail[..digits];
            out.push_str(self.0.get(port).map_or(port, String::as_str));
            rest = &tail[digits..];
        }
        out.push_str(rest);
        out
    }

    fn rewrite_files(&self, dir: &Path) {
        for e in std::fs::read_dir(dir).expect("examples copy") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path).expect("example file");
                std::fs::write(&path, self.rewrite(&text)).expect("rewrite an example");
            }
        }
    }
}

fn loopback_ports(text: &str) -> Vec<String> {
    text.match_indices(LOOPBACK)
        .map(|(at, _)| {
            let tail = &text[at + LOOPBACK.len()..];
            tail.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Longest a README command may take (bench with its defaults takes about 25 s).
const COMMAND_LIMIT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why `c` is not run, if it is not.
fn skipped(c: &ReadmeCommand) -> Option<&'static str> {
    if c.line.contains("monitor --config examples/lab.toml") && c.line.contains("--once") {
        return None;
    }
    SKIP.iter()
        .find(|(word, _)| c.line.contains(word))
        .map(|(_, why)| *why)
}

/// The program and arguments: `hfabric …` and `cargo run --release -- …` run the built binary;
/// `[--opt]` brackets (optional parts) are dropped and their options used.
fn argv(c: &ReadmeCommand, tmp: &Path) -> Option<Vec<String>> {
    let w = &c.words;
    let rest = match w.first().map(String::as_str) {
        Some("hfabric") => &w[1..],
        Some("cargo") if w.get(1).map(String::as_str) == Some("run") => {
            let dd = w.iter().position(|x| x == "--")?;
            &w[dd + 1..]
        }
        _ => return None,
    };
    let tmp = format!("{}/", tmp.display());
    Some(
        rest.iter()
            .map(|a| a.trim_start_matches('[').trim_end_matches(']'))
            .map(|a| a.replace("/tmp/", &tmp))
            .collect(),
    )
}

/// A `serve` the test started; killed (SIGTERM, then SIGKILL) on drop.
struct Served {
    child: Child,
}

impl Served {
    fn start(tmp: &Path, args: &[String]) -> Served {
        let log = tmp.join(format!("serve-{}.log", args.join("_").replace('/', "_")));
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn hfabric serve");
        // The first stdout line says it listens (or the process ended: then the test fails).
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        assert!(
            matches!(read, Ok(n) if n > 0) && line.contains("listening"),
            "`hfabric {}` did not start: {line:?}",
            args.join(" ")
        );
        Served { child }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        support::stop(&mut self.child);
    }
}

/// The node ids of a fabric file, in file order.
fn node_ids(tmp: &Path, config: &str) -> Vec<String> {
    let cfg =
        hyperfabric::config::FabricConfig::from_file(&tmp.join(config)).expect("example file");
    cfg.nodes.iter().map(|n| n.id().to_owned()).collect()
}

/// The servers of this walk, by (fabric file, node).
#[derive(Default)]
struct Servers(BTreeMap<(String, String), Served>);

impl Servers {
    fn serve(&mut self, tmp: &Path, args: &[String]) {
        let config = flag(args, "--config").expect("serve --config").to_owned();
        let node = flag(args, "--node").expect("serve --node").to_owned();
        // A second `serve` of one node replaces the first (same port).
        self.0.remove(&(config.clone(), node.clone()));
        let served = Served::start(tmp, args);
        self.0.insert((config, node), served);
    }

    /// Serves every node of the command's fabric file but its own (`--from`, or the monitor's
    /// stand-in, the first node) that is not served yet.
    fn needed_by(&mut self, tmp: &Path, args: &[String]) {
        let Some(config) = flag(args, "--config") else {
            return;
        };
        if args.first().map(String::as_str) == Some("nodes") {
            return;
        }
        let ids = node_ids(tmp, config);
        let me = flag(args, "--from")
            .map(str::to_owned)
            .or_else(|| ids.first().cloned())
            .unwrap_or_default();
        let wanted: BTreeSet<String> = match args.first().map(String::as_str) {
            // Offline commands read the file only.
            Some("route" | "topo") => return,
            Some("monitor" | "diagnose") => ids.iter().filter(|i| **i != me).cloned().collect(),
            _ => {
                let mut w: BTreeSet<String> =
                    flag(args, "--to").into_iter().map(str::to_owned).collect();
                w.extend(
                    flags(args, "--via")
                        .iter()
                        .map(|v| v.split('=').next().unwrap_or(v).to_owned()),
                );
                if args.first().map(String::as_str) == Some("ping") {
                    w.extend(
                        args.iter()
                            .skip(1)
                            .filter(|a| ids.contains(a) && **a != me)
                            .cloned(),
                    );
                }
                w
            }
        };
        for node in wanted {
            if !self.0.contains_key(&(config.to_owned(), node.clone())) {
                let args: Vec<String> = ["serve", "--config", config, "--node", &node]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                self.serve(tmp, &args);
            }
        }
    }
}

/// Runs `args` with a time limit; returns (exit code, stdout, stderr).
fn run(tmp: &Path, args: &[String]) -> (Option<i32>, String, String) {
    let out_path = tmp.join("last.stdout");
    let err_path = tmp.join("last.stderr");
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(tmp)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn hfabric");
    let until = Instant::now() + COMMAND_LIMIT;
    let code = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status.code(),
            None if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out_path), read(&err_path))
}

/// Files the README's commands read (`--file X`): made here when missing.
fn inputs(tmp: &Path, args: &[String]) {
    for f in flags(args, "--file") {
        let path = tmp.join(f);
        if !path.exists() {
            support::random_file(&path, 3 << 20, 19);
        }
    }
}

/// A file-system-safe name of a command for its fixture.
fn slug(args: &[String]) -> String {
    let s: String = args
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.replace("examples_", "").replace("__", "_")
}

fn check_shape(args: &[String], stdout: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| format!("--json output is not JSON ({e}): {stdout}"))?;
    let got: Vec<String> = key_paths(&v).into_iter().collect();
    let fixture = repo()
        .join("crates/hfabric/tests/fixtures/readme")
        .join(format!("{}.keys", slug(args)));
    if std::env::var("HF_README_FIXTURES").as_deref() == Ok("write") {
        std::fs::create_dir_all(fixture.parent().expect("dir")).expect("fixtures dir");
        std::fs::write(&fixture, got.join("\n") + "\n").expect("write fixture");
        return Ok(());
    }
    let want = std::fs::read_to_string(&fixture).map_err(|e| {
        format!(
            "no fixture {} ({e}); record it with HF_README_FIXTURES=write",
            fixture.display()
        )
    })?;
    let want: BTreeSet<String> = want.lines().map(str::to_owned).collect();
    let got: BTreeSet<String> = got.into_iter().collect();
    // Keys under an array that one run saw empty, or an object one run saw null, cannot be
    // compared (anomalies come and go); every other key must match.
    let shape = |p: &&String| !p.ends_with("=null") && !p.ends_with("[]");
    let missing: Vec<_> = (want.difference(&got))
        .filter(shape)
        .filter(|p| !readme::hidden_in(p, &got))
        .collect();
    let added: Vec<_> = (got.difference(&want))
        .filter(shape)
        .filter(|p| !readme::hidden_in(p, &want))
        .collect();
    if missing.is_empty() && added.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the --json shape changed ({}): missing {missing:?}, new {added:?}; if intended, \
             record it with HF_README_FIXTURES=write",
            fixture.display()
        ))
    }
}

#[test]
fn every_readme_command_runs_as_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A copy, not a link: README commands write there (`keygen --out examples/local.key`).
    copy_dir(&repo().join("examples"), &dir.join("examples"));
    let all = commands(&repo().join("README.md"));
    assert!(all.len() >= 15, "README.md lost its commands? {all:?}");
    let lines: Vec<String> = all.iter().map(|c| c.line.clone()).collect();
    let ports = Ports::free_for(&dir.join("examples"), &lines);
    ports.rewrite_files(&dir.join("examples"));
    let mut servers = Servers::default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for c in &all {
        if let Some(why) = skipped(c) {
            eprintln!("skip: {}  ({why})", c.line);
            continue;
        }
        let Some(args) = argv(c, dir) else {
            failures.push(format!(
                "`{}`: not an hfabric command and not in SKIP",
                c.line
            ));
            continue;
        };
        let args: Vec<String> = args.iter().map(|a| ports.rewrite(a)).collect();
        if args.first().map(String::as_str) == Some("serve") {
            servers.serve(dir, &args);
            continue;
        }
        servers.needed_by(dir, &args);
        inputs(dir, &args);
        eprintln!("run: hfabric {}", args.join(" "));
        let (code, stdout, stderr) = run(dir, &args);
        ran += 1;
        if code != Some(0) {
            failures.push(format!("`{}` exited with {code:?}: {stderr}", c.line));
        } else if args.iter().any(|a| a == "--json") {
            if let Err(e) = check_shape(&args, &stdout) {
                failures.push(format!("`{}`: {e}", c.line));
            }
        }
    }
    drop(servers);
    assert!(ran >= 10, "only {ran} README commands ran");
    assert!(
        failures.is_empty(),
        "README commands failed:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn fixed_ports_are_rewritten_consistently() {
    let ports = Ports(BTreeMap::from([("7101".to_owned(), "40001".to_owned())]));
    assert_eq!(
        ports.rewrite("a = \"127.0.0.1:7101\" b = 127.0.0.1:7102 127.0.0.1:7101"),
        "a = \"127.0.0.1:40001\" b = 127.0.0.1:7102 127.0.0.1:40001"
    );
    assert_eq!(
        loopback_ports("x 127.0.0.1:7101, 127.0.0.1:0 127.0.0.1:"),
        ["7101", "0"]
    );
}

#[test]
fn words_and_comments_read_like_a_shell() {
    assert_eq!(
        readme::words(r#"HF_FAULTS="a=1;b" hfabric serve"#),
        ["HF_FAULTS=a=1;b", "hfabric", "serve"]
    );
    assert_eq!(
        readme::strip_comment("hfabric nodes  # the table"),
        "hfabric nodes  "
    );
    assert_eq!(readme::strip_comment("echo 'a # b'"), "echo 'a # b'");
    let v = serde_json::json!({"a": {"b": 1}, "l": [{"x": 1}, {"y": 2}]});
    let paths: Vec<String> = key_paths(&v).into_iter().collect();
    assert_eq!(paths, ["a", "a.b", "l", "l[]", "l[].x", "l[].y"]);
    // An empty array or a null hides what is under it; a present one does not.
    let quiet = key_paths(&serde_json::json!({"a": null, "l": []}));
    assert!(readme::hidden_in("l[].x", &quiet) && readme::hidden_in("a.b", &quiet));
    assert!(!readme::hidden_in("l[].x", &key_paths(&v)));
}
