//! File helpers every recipe shares: I/O errors with their path, atomic writes (temporary name, then rename), and
//! the content hashes that ids, plans and markers are made of.

use crate::PipelineError;
use sha2::{Digest, Sha256};
use std::path::Path;

/// An I/O error with the path it happened on.
pub fn io_err(path: &Path, source: std::io::Error) -> PipelineError {
    PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` via a temporary file, synced, then renamed, so readers never see a partial file and a
/// crash never leaves a renamed file whose bytes are not on disk.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    use std::io::Write;
    let tmp = medgrain_export::temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// SHA-256 (hex) of the parts, each followed by a NUL so that ("ab", "c") and ("a", "bc") differ.
pub fn sha256_hex(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_ref());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the temporary files (`*.tmp`) a killed process left in `dir`. Only for a single process that owns the
/// folder (a plain build, `merge`): a running worker's temporary file is not this one's to remove.
pub fn remove_temporaries(dir: &Path) -> Result<(), PipelineError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tmp") && p.is_file() {
            std::fs::remove_file(&p).map_err(|err| io_err(&p, err))?;
        }
    }
    Ok(())
}

/// One output file as `manifest.json` lists it (`files`): its path relative to the output folder, its size and its
/// SHA-256, so that `medgrain verify` can prove a copy is the data that was built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The [`FileEntry`] of `out/rel`, hashed as a stream.
pub fn file_entry(out: &Path, rel: &str) -> Result<FileEntry, PipelineError> {
    let p = out.join(rel);
    let (bytes, sha256) = hash_file(&p)?;
    Ok(FileEntry {
        path: rel.to_string(),
        bytes,
        sha256,
    })
}

/// Size and SHA-256 (hex) of a file, read in blocks.
pub fn hash_file(p: &Path) -> Result<(u64, String), PipelineError> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| io_err(p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| io_err(p, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// Whether `out/entry.path` still has the size the entry records (a cheap check before trusting a marker).
pub fn same_size(out: &Path, entry: &FileEntry) -> bool {
    std::fs::metadata(out.join(&entry.path)).is_ok_and(|m| m.len() == entry.bytes)
}
