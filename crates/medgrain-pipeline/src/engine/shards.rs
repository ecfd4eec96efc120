//! Shard completion markers, shared by every recipe: a shard's parts are written first (each to a temporary name,
//! synced, renamed), then its marker, so a marker on disk means the shard is finished. A marker that does not parse
//! (truncated, corrupt) or whose recipe-specific check fails is ignored and its shard is redone, never trusted.
//! Markers live in `OUT/.medgrain/shards/{prefix}-NNNNN.json`.

use crate::engine::fsio::{io_err, write_atomic};
use crate::PipelineError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The markers of one recipe's shards in one output folder.
#[derive(Debug, Clone)]
pub struct MarkerStore {
    dir: PathBuf,
    prefix: &'static str,
}

impl MarkerStore {
    /// The store for `prefix` under `out`, creating its folder.
    pub fn open(out: &Path, prefix: &'static str) -> Result<Self, PipelineError> {
        let dir = out.join(".medgrain").join("shards");
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(MarkerStore { dir, prefix })
    }

    /// Where shard `k`'s marker lives.
    pub fn path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("{}-{k:05}.json", self.prefix))
    }

    /// Shard `k`'s marker when it parses and `valid` accepts it; `None` means the shard is to be (re)done.
    pub fn read<T: DeserializeOwned>(&self, k: usize, valid: impl FnOnce(&T) -> bool) -> Option<T> {
        let bytes = std::fs::read(self.path(k)).ok()?;
        let m: T = serde_json::from_slice(&bytes).ok()?;
        valid(&m).then_some(m)
    }

    /// Writes shard `k`'s marker (atomically, after its parts).
    pub fn write<T: Serialize>(&self, k: usize, marker: &T) -> Result<(), PipelineError> {
        let bytes = serde_json::to_vec(marker).map_err(|e| PipelineError::Internal(e.to_string()))?;
        write_atomic(&self.path(k), &bytes)
    }

    /// Removes the markers of shards `from..` left by an earlier, longer plan; returns their shard numbers so the
    /// recipe can remove their parts.
    pub fn remove_from(&self, from: usize) -> Result<Vec<usize>, PipelineError> {
        let mut removed = Vec::new();
        let mut k = from;
        while self.path(k).exists() {
            let p = self.path(k);
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            removed.push(k);
            k += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct M {
        key: String,
    }

    #[test]
    fn corrupt_or_rejected_markers_are_redone_and_stale_ones_removed() {
        let d = tempfile::tempdir().unwrap();
        let s = MarkerStore::open(d.path(), "t").unwrap();
        assert_eq!(s.read::<M>(0, |_| true), None);
        s.write(0, &M { key: "a".into() }).unwrap();
        assert_eq!(s.read::<M>(0, |m| m.key == "a"), Some(M { key: "a".into() }));
        assert_eq!(s.read::<M>(0, |m| m.key == "b"), None);
        // a truncated marker is never trusted
        std::fs::write(s.path(1), br#"{"key": "#).unwrap();
        assert_eq!(s.read::<M>(1, |_| true), None);
        s.write(2, &M { key: "c".into() }).unwrap();
        std::fs::write(s.path(1), br#"{"key": "b"}"#).unwrap();
        assert_eq!(s.remove_from(1).unwrap(), vec![1, 2]);
        assert!(!s.path(2).exists() && s.path(0).exists());
        assert!(!s.path(0).with_extension("tmp").exists());
    }
}
