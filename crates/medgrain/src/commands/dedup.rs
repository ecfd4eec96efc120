//! `medgrain dedup` and `medgrain phash` (all work in `medgrain_pipeline::dedup` and `medgrain_imaging::phash`).

use crate::cli::{DedupArgs, PhashArgs};
use crate::error::CliError;
use medgrain_pipeline::dedup::{dedup, DedupOptions};
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) fn run(a: DedupArgs) -> Result<ExitCode, CliError> {
    let mut against = Vec::new();
    for s in &a.against {
        let Some((name, folder)) = s.split_once('=') else {
            return Err(CliError::Usage(format!("--against {s}: expected NAME=FOLDER")));
        };
        against.push((name.to_string(), PathBuf::from(folder)));
    }
    for (flag, v) in [
        ("--max-distance", a.max_distance),
        ("--within-distance", a.within_distance),
    ] {
        if v > 31 {
            return Err(CliError::Usage(format!(
                "{flag} {v}: at most 31 of 64 bits (beyond that unrelated images match)"
            )));
        }
    }
    let s = dedup(
        &a.dir,
        &DedupOptions {
            against,
            max_distance: a.max_distance,
            within_distance: a.within_distance,
        },
    )?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string(&s).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        outln!(
            "medgrain dedup {}: {} rows hashed, {} reference images; {} rows near-duplicate a reference image ({} pairs), {} near-duplicate pairs within the dataset; {} unreadable; {} parts' QC flags updated",
            a.dir.display(),
            s.rows,
            s.reference_images,
            s.leaked_rows,
            s.near_duplicates,
            s.duplicates_within,
            s.unreadable,
            s.parts_rewritten
        );
        outln!("  details: {}", a.dir.join("dedup.jsonl").display());
    }
    Ok(if s.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn phash(a: PhashArgs) -> Result<ExitCode, CliError> {
    let mut failed = false;
    for f in &a.files {
        let r = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| medgrain_imaging::phash::phash_bytes(&b, f).map_err(|e| e.to_string()));
        match r {
            Ok(h) => outln!("{}  {}", medgrain_imaging::phash::hex(h), f.display()),
            Err(e) => {
                eprintln!("medgrain: {}: {e}", f.display());
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
