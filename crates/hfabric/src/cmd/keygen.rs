//! `hfabric keygen`: writes a fabric secret (`[fabric] secret_file`): 32 random bytes from
//! the OS, in a new file only its owner may read (mode 0600); or, with `--node`, per-node
//! Ed25519 key pairs for `[fabric] node_keys` (`<id>.key` mode 0600, `<id>.pub` hex).

use crate::common::{CliError, CliResult};
use std::io::Write;
use std::path::PathBuf;

/// Bytes of a generated key (HMAC-SHA256's output size, the minimum the fabric accepts).
const KEY_BYTES: usize = 32;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write a shared fabric secret (refused if the file exists).
    #[arg(long, short = 'o', value_name = "FILE", required_unless_present = "node", conflicts_with_all = ["node", "dir"])]
    pub out: Option<PathBuf>,
    /// Make a per-node key pair for this node id (repeat for several): `<DIR>/<ID>.key`
    /// (private, mode 0600; keep it on that node's host only) and `<DIR>/<ID>.pub` (copy it
    /// to every host). Name DIR in `[fabric] node_keys`. Existing files are never replaced.
    #[arg(long, value_name = "ID", requires = "dir")]
    pub node: Vec<String>,
    /// The key directory for --node (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    path: String,
    bytes: usize,
    mode: String,
}

#[derive(serde::Serialize)]
struct NodeKeyReport {
    node: String,
    private_key: String,
    public_key_file: String,
    public_key: String,
}

/// Writes a fresh key to `path` (a new file, mode 0600).
pub fn write_key(path: &std::path::Path) -> CliResult {
    let mut key = [0u8; KEY_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    write_new(path, &key, 0o600)
}

/// Writes `bytes` to a new file `path` with `mode` (never replaces one).
fn write_new(path: &std::path::Path, bytes: &[u8], mode: u32) -> CliResult {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    let mut file = opts
        .open(path)
        .map_err(|e| CliError::io(path.display(), &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

/// Writes `<dir>/<id>.key` and `<dir>/<id>.pub` for each id; refuses before writing anything
/// if one of them exists.
fn write_node_keys(dir: &std::path::Path, ids: &[String], json: bool) -> CliResult {
    use hyperfabric::auth::identity;
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir.display(), &e))?;
    let mut paths = Vec::with_capacity(ids.len());
    for id in ids {
        hyperfabric::node::check_node_id(id).map_err(CliError::usage)?;
        let key = identity::key_path(dir, id, "key").map_err(CliError::usage)?;
        let public = identity::key_path(dir, id, "pub").map_err(CliError::usage)?;
        for p in [&key, &public] {
            if p.exists() {
                return Err(CliError::usage(format!(
                    "{} exists: a key is never replaced (remove it first if you mean to)",
                    p.display()
                )));
            }
        }
        paths.push((id, key, public));
    }
    let mut reports = Vec::with_capacity(ids.len());
    for (id, key, public) in paths {
        let (seed, pk) = identity::generate().map_err(CliError::failed)?;
        let hex = identity::encode_public(&pk);
        write_new(&key, &seed, 0o600)?;
        write_new(&public, format!("{hex}\n").as_bytes(), 0o644)?;
        if !json {
            println!(
                "node {id}: private key {} (mode 0600, keep it on {id}'s host), public key {} ({hex})",
                key.display(),
                public.display()
            );
        }
        reports.push(NodeKeyReport {
            node: id.clone(),
            private_key: key.display().to_string(),
            public_key_file: public.display().to_string(),
            public_key: hex,
        });
    }
    if json {
        return crate::context::print_report(
            &serde_json::json!({ "dir": dir.display().to_string(), "keys": reports }),
            None,
        );
    }
    println!("name {} in [fabric] node_keys", dir.display());
    Ok(())
}

pub fn run(a: Args) -> CliResult {
    let Some(out) = a.out else {
        let dir = a
            .dir
            .ok_or_else(|| CliError::usage("--node needs --dir (where to write the keys)"))?;
        return write_node_keys(&dir, &a.node, a.json);
    };
    write_key(&out)?;
    let report = Report {
        path: out.display().to_string(),
        bytes: KEY_BYTES,
        mode: "0600".into(),
    };
    if a.json {
        crate::context::print_report(&report, None)
    } else {
        println!(
            "wrote a {KEY_BYTES}-byte fabric secret to {} (mode 0600); name it in [fabric] secret_file",
            report.path
        );
        Ok(())
    }
}
