//! `medgrain probe`: facts about image and volume files.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: ProbeArgs) -> Result<ExitCode, CliError> {
    let ProbeArgs {
        files,
        json: _,
        npy_dir,
    } = args;
    let mut failed = false;
    let mut n = 0usize;
    if let Some(d) = &npy_dir {
        std::fs::create_dir_all(d).map_err(|e| CliError::Io {
            path: d.clone(),
            source: e,
        })?;
    }
    for f in &files {
        // with --npy-dir, a DICOM file's values are kept from the one decode
        let results: Vec<_> = match &npy_dir {
            Some(_) if !f.is_dir() => vec![medgrain_imaging::probe::probe_keeping_values(f)],
            _ => medgrain_imaging::probe::probe_path(f)
                .into_iter()
                .map(|r| r.map(|v| (v, None)))
                .collect(),
        };
        for r in results {
            let line = match r {
                Ok((mut v, npy)) => {
                    if let (Some(d), Some(bytes)) = (&npy_dir, npy) {
                        let out = d.join(format!("{n}.npy"));
                        std::fs::write(&out, bytes).map_err(|e| CliError::Io {
                            path: out.clone(),
                            source: e,
                        })?;
                        v["values_npy"] = serde_json::json!(out.display().to_string());
                    }
                    v
                }
                Err(e) => {
                    failed = true;
                    serde_json::json!({"path": f.display().to_string(), "error": e.to_string()})
                }
            };
            outln!("{line}");
            n += 1;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
