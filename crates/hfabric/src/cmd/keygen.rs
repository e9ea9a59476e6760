//! `hfabric keygen`: writes a fabric secret (`[fabric] secret_file`): 32 random bytes from
//! the OS, in a new file only its owner may read (mode 0600).

use crate::common::{CliError, CliResult};
use std::io::Write;
use std::path::PathBuf;

/// Bytes of a generated key (HMAC-SHA256's output size, the minimum the fabric accepts).
const KEY_BYTES: usize = 32;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the key (refused if the file exists).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
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

/// Writes a fresh key to `path` (a new file, mode 0600).
pub fn write_key(path: &std::path::Path) -> CliResult {
    let mut key = [0u8; KEY_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(path)
        .map_err(|e| CliError::io(path.display(), &e))?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

pub fn run(a: Args) -> CliResult {
    write_key(&a.out)?;
    let report = Report {
        path: a.out.display().to_string(),
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
