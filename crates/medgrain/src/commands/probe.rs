//! `medgrain probe`: facts about image and volume files.

use crate::cli::*;
use crate::error::CliError;
use std::path::PathBuf;
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
        for r in medgrain_imaging::probe::probe_path(f) {
            let line = match r {
                Ok(mut v) => {
                    if let (Some(d), Some("dicom")) = (&npy_dir, v["format"].as_str()) {
                        let p = PathBuf::from(v["path"].as_str().unwrap_or_default());
                        let img =
                            medgrain_imaging::dicom::read_dicom(&p).map_err(|e| CliError::Input(e.to_string()))?;
                        let out = d.join(format!("{n}.npy"));
                        let bytes = medgrain_imaging::probe::npy_f64(&img.values, &img.shape());
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
            println!("{line}");
            n += 1;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
