//! The store directory: temporary `.part` files, putting a finished file in place under the
//! `on_conflict` policy, and removing the debris of earlier runs.
//!
//! A transfer is written to `.hf-<source key>-<transfer id>.part`; only a complete, synced
//! file is linked under its final name. A transfer that fails, is refused, goes stale or is
//! open when the node stops has its `.part` removed (and its descriptor closed); a `.part`
//! left by a killed node is removed at the next start once older than the transfer deadline.

pub use crate::config::OnConflict;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Most `stem.N.ext` names tried before a rename gives up.
pub const MAX_RENAMES: u32 = 10_000;
/// Most directory entries looked at when removing debris at start.
const MAX_SCAN_ENTRIES: usize = 1 << 20;

/// The temporary file of transfer `(source key, id)` in `dir`.
pub fn part_path(dir: &Path, key: (u64, u64)) -> PathBuf {
    dir.join(format!(".hf-{:016x}-{:016x}.part", key.0, key.1))
}

/// fsync the data, check the length on disk, put it in place under `name` (as the policy
/// says), fsync the directory: never a truncated file under the final name. Returns where
/// the file now is.
pub fn finish_file(
    file: &File,
    total: u64,
    tmp: &Path,
    dir: &Path,
    name: &str,
    policy: OnConflict,
) -> io::Result<PathBuf> {
    file.sync_all()?;
    let on_disk = file.metadata()?.len();
    if on_disk != total {
        return Err(io::Error::other(format!(
            "{} holds {on_disk} bytes after sync, expected {total}",
            tmp.display()
        )));
    }
    let target = place(tmp, dir, name, policy)?;
    File::open(dir)?.sync_all()?;
    Ok(target)
}

/// Moves `tmp` to `dir/name`; a taken name is replaced, refused or avoided by the policy.
/// The no-clobber moves are a hard link (atomic: it fails if the name exists) and an unlink.
fn place(tmp: &Path, dir: &Path, name: &str, policy: OnConflict) -> io::Result<PathBuf> {
    let target = dir.join(name);
    if policy == OnConflict::Overwrite {
        std::fs::rename(tmp, &target)?;
        return Ok(target);
    }
    let tries = if policy == OnConflict::Rename {
        MAX_RENAMES
    } else {
        0
    };
    for n in 0..=tries {
        let candidate = if n == 0 {
            target.clone()
        } else {
            dir.join(numbered(name, n))
        };
        match link_no_clobber(tmp, &candidate) {
            Ok(()) => {
                let _ = std::fs::remove_file(tmp);
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        match policy {
            OnConflict::Refuse => format!("a file named {name} exists (on_conflict = \"refuse\")"),
            _ => format!("{name} and {MAX_RENAMES} numbered variants exist"),
        },
    ))
}

/// `tmp` under the new name `to`, failing with `AlreadyExists` if `to` exists. Where hard
/// links are not supported, a checked rename (racy only against other writers of the store).
fn link_no_clobber(tmp: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(tmp, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if to.exists() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(tmp, to),
    }
}

/// `model.bin` -> `model.1.bin`; `notes` -> `notes.1`.
fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{n}.{ext}"),
        _ => format!("{name}.{n}"),
    }
}

/// A peer-supplied name reduced to a plain file name, or `None` if nothing safe is left.
pub fn safe_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?;
    let ok = !base.is_empty()
        && base != "."
        && base != ".."
        && !base.starts_with(".hf-")
        && !base.chars().any(|c| c.is_control());
    ok.then(|| base.to_owned())
}

/// Removes `.hf-*.part` files in `dir` last modified more than `older_than` ago (left by a
/// node that was killed: no transfer of ours is that old). Returns how many went.
pub fn remove_stale_parts(dir: &Path, older_than: Duration) -> io::Result<usize> {
    let now = SystemTime::now();
    let mut gone = 0;
    for entry in std::fs::read_dir(dir)?.take(MAX_SCAN_ENTRIES) {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".hf-") && name.ends_with(".part")) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|a| a >= older_than) && std::fs::remove_file(entry.path()).is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(dir: &Path, bytes: &[u8]) -> (PathBuf, File) {
        let tmp = part_path(dir, (1, rand::random()));
        std::fs::write(&tmp, bytes).unwrap();
        let f = File::open(&tmp).unwrap();
        (tmp, f)
    }

    #[test]
    fn each_policy_does_what_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let put = |bytes: &[u8], policy| {
            let (tmp, f) = part(d, bytes);
            let r = finish_file(&f, bytes.len() as u64, &tmp, d, "m.bin", policy);
            assert!(!tmp.exists() || r.is_err());
            r
        };
        assert_eq!(put(b"one", OnConflict::Rename).unwrap(), d.join("m.bin"));
        assert_eq!(put(b"two", OnConflict::Rename).unwrap(), d.join("m.1.bin"));
        let why = put(b"three", OnConflict::Refuse).unwrap_err().to_string();
        assert!(why.contains("on_conflict"), "{why}");
        assert_eq!(
            put(b"four", OnConflict::Overwrite).unwrap(),
            d.join("m.bin")
        );
        assert_eq!(std::fs::read(d.join("m.bin")).unwrap(), b"four");
        assert_eq!(std::fs::read(d.join("m.1.bin")).unwrap(), b"two");
        assert_eq!(numbered("notes", 2), "notes.2");
        assert_eq!(numbered(".rc", 1), ".rc.1");
    }

    #[test]
    fn only_old_part_files_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _) = part(dir.path(), b"x");
        std::fs::write(dir.path().join("keep.bin"), b"y").unwrap();
        assert_eq!(
            remove_stale_parts(dir.path(), Duration::from_secs(3600)).unwrap(),
            0
        );
        assert!(
            old.exists(),
            "a young .part may belong to a running transfer"
        );
        assert_eq!(remove_stale_parts(dir.path(), Duration::ZERO).unwrap(), 1);
        assert!(!old.exists() && dir.path().join("keep.bin").exists());
    }

    #[test]
    fn peer_names_cannot_escape_the_store() {
        assert_eq!(
            safe_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(safe_file_name("model.bin").as_deref(), Some("model.bin"));
        assert_eq!(safe_file_name("dir/"), None);
        assert_eq!(safe_file_name(".."), None);
        assert_eq!(safe_file_name("a\nb"), None);
        assert_eq!(safe_file_name(".hf-0000-0000.part"), None);
    }
}
