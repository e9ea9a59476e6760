//! The store directory's record of completed transfers, so that a receiver that crashes after
//! storing a file but before its FINAL acknowledgement reached the sender answers the
//! retransmission with that acknowledgement instead of storing the file a second time.
//!
//! `DIR/.hf-done`: 16-byte records `(source key, transfer id)`, little-endian, appended and
//! synced before the FINAL acknowledgement goes out. A torn last record (a crash mid-append)
//! is ignored. When the file holds more than twice [`super::incoming`]'s memory it is rewritten
//! with the most recent entries (temporary file, sync, rename).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub(super) type TransferKey = (u64, u64);

const RECORD_LEN: usize = 16;
pub(super) const JOURNAL_NAME: &str = ".hf-done";

pub(super) struct DoneJournal {
    path: PathBuf,
    /// Opened for appending at the first record: a store that never completed a transfer
    /// holds no journal.
    file: Option<File>,
    records: usize,
    /// Records kept when the file is compacted.
    keep: usize,
}

impl DoneJournal {
    /// Reads the journal of `dir` if there is one; returns it with the last `keep` keys it holds.
    pub(super) fn open(dir: &Path, keep: usize) -> io::Result<(DoneJournal, Vec<TransferKey>)> {
        let path = dir.join(JOURNAL_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut keys: Vec<TransferKey> = bytes
            .chunks_exact(RECORD_LEN)
            .map(|r| {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&r[i..i + 8]);
                    u64::from_le_bytes(w)
                };
                (word(0), word(8))
            })
            .collect();
        let torn = bytes.len() % RECORD_LEN != 0;
        if keys.len() > keep {
            keys.drain(..keys.len() - keep);
        }
        let mut journal = DoneJournal {
            file: None,
            path,
            records: bytes.len() / RECORD_LEN,
            keep,
        };
        if torn || journal.records > 2 * keep {
            journal.rewrite(&keys)?;
        }
        Ok((journal, keys))
    }

    /// Appends `key` and syncs; compacts to `recent` (oldest first) when the file is long.
    pub(super) fn record<'a>(
        &mut self,
        key: TransferKey,
        recent: impl Iterator<Item = &'a TransferKey>,
    ) -> io::Result<()> {
        if self.records >= 2 * self.keep {
            let keys: Vec<TransferKey> = recent.copied().collect();
            self.rewrite(&keys)?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)?;
                self.file.insert(f)
            }
        };
        file.write_all(&encode(key))?;
        file.sync_data()?;
        self.records += 1;
        Ok(())
    }

    fn rewrite(&mut self, keys: &[TransferKey]) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        let mut buf = Vec::with_capacity(keys.len() * RECORD_LEN);
        for &k in keys {
            buf.extend_from_slice(&encode(k));
        }
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.records = keys.len();
        Ok(())
    }
}

fn encode((src, id): TransferKey) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&src.to_le_bytes());
    r[8..].copy_from_slice(&id.to_le_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_reopen_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, keys) = DoneJournal::open(dir.path(), 4).unwrap();
        assert!(keys.is_empty());
        assert!(
            !dir.path().join(JOURNAL_NAME).exists(),
            "created only when needed"
        );
        j.record((1, 10), [].iter()).unwrap();
        j.record((2, 20), [].iter()).unwrap();
        drop(j);
        // A crash in the middle of the next append.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_NAME))
            .unwrap();
        f.write_all(&[7u8; 5]).unwrap();
        let (_, keys) = DoneJournal::open(dir.path(), 4).unwrap();
        assert_eq!(keys, vec![(1, 10), (2, 20)]);
        let len = std::fs::metadata(dir.path().join(JOURNAL_NAME))
            .unwrap()
            .len();
        assert_eq!(len, 32, "the torn record is gone after reopening");
    }

    #[test]
    fn the_file_is_compacted_to_the_recent_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = DoneJournal::open(dir.path(), 2).unwrap();
        let mut recent = std::collections::VecDeque::new();
        for i in 0..10u64 {
            j.record((0, i), recent.iter()).unwrap();
            recent.push_back((0, i));
            if recent.len() > 2 {
                recent.pop_front();
            }
        }
        let len = std::fs::metadata(dir.path().join(JOURNAL_NAME))
            .unwrap()
            .len();
        assert!(len <= 5 * RECORD_LEN as u64, "{len} bytes");
        let (_, keys) = DoneJournal::open(dir.path(), 2).unwrap();
        assert_eq!(keys, vec![(0, 8), (0, 9)]);
    }
}
