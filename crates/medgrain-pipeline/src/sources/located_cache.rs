//! The masks a locator found in a volume, kept on disk for the rest of the build (`OUT/.medgrain/located/`):
//! listing a volume source needs them to choose slices and loading its slices needs them again, after the
//! volume has left the in-memory cache — without this, every volume's locator (an ONNX model, say) ran twice, and
//! a resumed build ran it for every volume again just to list them. One gzip file per volume: a JSON line
//! (`voxels`, masks' `name` and `score`), then each mask as bits (first voxel in the lowest bit). The key hashes the
//! volume's path, size and modification time with the locator's name; `--force` clears the folder with the rest of
//! `.medgrain`. A file that cannot be read is ignored and the locator runs again.

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use medgrain_roi::locate::LocatedMask;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Header {
    voxels: usize,
    masks: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    score: Option<f64>,
}

/// The cache file for a volume (`volume_path`: the file or DICOM folder it was read from), or `None` when the
/// volume's size and time cannot be read.
pub fn cache_file(dir: &Path, volume_key: &str, volume_path: &Path, locator: &str) -> Option<PathBuf> {
    let meta = std::fs::metadata(volume_path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let key = crate::engine::fsio::sha256_hex([volume_key, &meta.len().to_string(), &modified.to_string(), locator]);
    Some(dir.join(format!("{}.located.gz", &key[..32])))
}

/// The masks stored in `file` for a volume of `voxels` voxels, if the file is there and whole.
pub fn read(file: &Path, voxels: usize) -> Option<Vec<LocatedMask>> {
    let mut r = BufReader::new(GzDecoder::new(std::fs::File::open(file).ok()?));
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let header: Header = serde_json::from_str(&line).ok()?;
    if header.voxels != voxels {
        return None;
    }
    let mut bits = vec![0u8; voxels.div_ceil(8)];
    let mut out = Vec::with_capacity(header.masks.len());
    for e in header.masks {
        r.read_exact(&mut bits).ok()?;
        let mask = (0..voxels).map(|i| bits[i / 8] >> (i % 8) & 1 == 1).collect();
        out.push(LocatedMask {
            name: e.name,
            mask,
            score: e.score,
        });
    }
    Some(out)
}

/// Stores `masks` (each of `voxels` flags) in `file`, written whole or not at all (temporary file, then rename).
pub fn write(file: &Path, voxels: usize, masks: &[LocatedMask]) -> std::io::Result<()> {
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = medgrain_export::temp_path(file); // unique per process: workers may locate one volume at once
    let mut w = GzEncoder::new(std::fs::File::create(&tmp)?, flate2::Compression::fast());
    let header = Header {
        voxels,
        masks: masks
            .iter()
            .map(|m| Entry {
                name: m.name.clone(),
                score: m.score,
            })
            .collect(),
    };
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    for m in masks {
        if m.mask.len() != voxels {
            return Err(std::io::Error::other("mask size differs from the volume's"));
        }
        let mut bits = vec![0u8; voxels.div_ceil(8)];
        for (i, _) in m.mask.iter().enumerate().filter(|(_, &b)| b) {
            bits[i / 8] |= 1 << (i % 8);
        }
        w.write_all(&bits)?;
    }
    w.finish()?.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_come_back_as_written() {
        let d = tempfile::tempdir().expect("tempdir");
        let vol = d.path().join("v.nii.gz");
        std::fs::write(&vol, b"volume").expect("write");
        let file = cache_file(d.path(), "v.nii.gz", &vol, "expert:onnx").expect("key");
        let masks = vec![
            LocatedMask {
                name: "right lung".into(),
                mask: (0..13).map(|i| i % 3 == 0).collect(),
                score: None,
            },
            LocatedMask {
                name: "nodule".into(),
                mask: (0..13).map(|i| i == 12).collect(),
                score: Some(0.875),
            },
        ];
        assert!(read(&file, 13).is_none(), "nothing stored yet");
        write(&file, 13, &masks).expect("store");
        assert_eq!(read(&file, 13), Some(masks));
        assert!(read(&file, 14).is_none(), "another grid is not this volume's");
        // another locator, or the volume rewritten, is another key
        assert_ne!(
            cache_file(d.path(), "v.nii.gz", &vol, "classical:ct-lung"),
            Some(file.clone())
        );
        std::fs::write(&file, b"truncated").expect("corrupt");
        assert!(read(&file, 13).is_none(), "a damaged file is ignored");
    }
}
