//! `medgrain locate`: ROI locators on an unannotated volume or image.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: LocateArgs) -> Result<ExitCode, CliError> {
    let LocateArgs {
        file,
        locator,
        onnx,
        out,
    } = args;
    let expert = locator == medgrain_roi::locate::LocatorName::ExpertOnnx;
    let onnx = match (onnx, expert) {
        (Some(p), true) => {
            Some(medgrain_expert::OnnxConfig::from_file(&p).map_err(|e| CliError::Usage(e.to_string()))?)
        }
        (Some(_), false) => return Err(CliError::Usage("--onnx goes with --locator expert:onnx".into())),
        (None, true) => return Err(CliError::Usage("--locator expert:onnx needs --onnx MODEL.toml".into())),
        (None, false) => None,
    };
    // the name is known: what fails now is loading (the library, the model, its signature)
    let loc = medgrain_pipeline::rois::build_locator(locator, onnx.as_ref()).map_err(CliError::Input)?;
    let written =
        medgrain_pipeline::rois::locate_file(&file, loc.as_ref(), &out).map_err(|e| CliError::Input(e.message))?;
    for f in written {
        match f.score {
            Some(p) => outln!(
                "{}: {} voxels, mean confidence {p:.4} → {}",
                f.name,
                f.voxels,
                f.path.display()
            ),
            None => outln!("{}: {} voxels → {}", f.name, f.voxels, f.path.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
