//! `medgrain render`: one DICOM frame as the display image.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use std::process::ExitCode;

pub(crate) fn run(args: RenderArgs) -> Result<ExitCode, CliError> {
    let RenderArgs {
        file,
        out,
        frame,
        window,
    } = args;
    let window = match window.as_deref() {
        None => None,
        Some(w) => Some(parse_window(w).ok_or_else(|| {
            CliError::Usage(format!(
                "--window {w:?}: give CENTRE,WIDTH (e.g. 40,400) or lung, mediastinum, bone, brain, abdomen"
            ))
        })?),
    };
    let img = medgrain_imaging::dicom::read_dicom(&file).map_err(|e| CliError::Input(e.to_string()))?;
    let r = img
        .render_frame(frame, window)
        .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    let medgrain_imaging::PixelData::U8(px) = &r.data else {
        return Err(CliError::Internal("render gave non-8-bit pixels".into()));
    };
    let png = medgrain_imaging::encode_png(r.width, r.height, r.channels, px)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    std::fs::write(&out, png).map_err(|e| CliError::Input(format!("{}: {e}", out.display())))?;
    Ok(ExitCode::SUCCESS)
}
