//! `medgrain rois`: reads a label map or mask (NIfTI-1/2, or a single-channel PNG/TIFF) and reports its labels'
//! connected components (`medgrain_roi::report`) as one JSON object. Label names come from `--labels FILE` or a
//! sidecar `FILE.txt` / `FILE.nii.txt` (lines `value name ...`, as mricron's atlases ship them).

use medgrain_imaging::nifti_read::{read_nifti, Voxels};
use medgrain_imaging::read_label_map;
use medgrain_roi::locate::RoiLocator;
use medgrain_roi::report::{label_report, Geometry, MeasureOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a file could not be reported; `usage` errors are the caller's (exit 2), the others the file's (exit 1).
#[derive(Debug)]
pub struct RoisError {
    pub usage: bool,
    pub message: String,
}

fn file_err(path: &Path, m: impl std::fmt::Display) -> RoisError {
    RoisError {
        usage: false,
        message: format!("{}: {m}", path.display()),
    }
}

fn to_labels(v: &Voxels, path: &Path) -> Result<Vec<u32>, RoisError> {
    let ints = |it: Box<dyn Iterator<Item = f64> + '_>| -> Result<Vec<u32>, RoisError> {
        it.map(|x| {
            if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 {
                Ok(x as u32)
            } else {
                Err(file_err(path, format!("value {x} is not a label (a whole number ≥ 0)")))
            }
        })
        .collect()
    };
    match v {
        Voxels::U8(b) => Ok(b.iter().map(|&x| x as u32).collect()),
        Voxels::U16(b) => Ok(b.iter().map(|&x| x as u32).collect()),
        Voxels::Rgb8(_) => Err(file_err(path, "an RGB volume is not a label map")),
        other => ints(other.values()),
    }
}

/// Reads `value name` lines.
pub fn read_label_names(path: &Path) -> Result<HashMap<u32, String>, RoisError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut it = line
            .split(|c: char| c == '\t' || c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty());
        if let (Some(v), Some(name)) = (it.next(), it.next()) {
            if let Ok(v) = v.parse::<u32>() {
                out.insert(v, name.to_string());
            }
        }
    }
    Ok(out)
}

fn sidecar(path: &Path) -> Option<PathBuf> {
    let s = path.to_string_lossy();
    [format!("{s}.txt"), format!("{}.txt", s.trim_end_matches(".gz"))]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Reports the labels of one file; with `image` (a NIfTI volume on the same grid), 3D components also get
/// measurements (diameters, volume, mean/std intensity, attenuation).
pub fn rois_of_file(
    path: &Path,
    connectivity: Option<usize>,
    labels: Option<&Path>,
    image: Option<&Path>,
) -> Result<Value, RoisError> {
    let head = {
        use std::io::Read;
        let mut b = vec![0u8; 352];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut b))
            .map_err(|e| file_err(path, e))?;
        b.truncate(n);
        b
    };
    if medgrain_imaging::dicom::is_dicom(&head) {
        return seg_report(path, connectivity);
    }
    let nifti = head.starts_with(&[0x1f, 0x8b])
        || (head.len() >= 348 && matches!(&head[344..348], b"n+1\0" | b"ni1\0"))
        || (head.len() >= 8 && matches!(&head[4..8], b"n+2\0" | b"ni2\0"));
    let (values, shape, first_fastest, geometry) = if nifti {
        let img = read_nifti(path).map_err(|e| file_err(path, e))?;
        let shape = img.header.shape.clone();
        let values = to_labels(&img.voxels, path)?;
        let geometry = Geometry {
            spacing: Some(img.header.zooms().into_iter().take(3).collect()),
            affine: (shape.len() >= 3).then(|| img.header.best_affine()),
        };
        (values, shape, true, geometry)
    } else {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
        let m = read_label_map(&bytes, path).map_err(|e| file_err(path, e))?;
        (
            m.labels,
            vec![m.height as usize, m.width as usize],
            false,
            Geometry::default(),
        )
    };
    let rank = shape.len();
    let k = connectivity.unwrap_or(rank);
    if !(1..=rank).contains(&k) {
        return Err(RoisError {
            usage: true,
            message: format!("--connectivity {k}: must be between 1 and {rank} for this rank-{rank} array"),
        });
    }
    let names = match labels.map(Path::to_path_buf).or_else(|| sidecar(path)) {
        Some(p) => read_label_names(&p)?,
        None => HashMap::new(),
    };
    let intensities: Option<Vec<f64>> = match image {
        Some(ip) => {
            let img = read_nifti(ip).map_err(|e| file_err(ip, e))?;
            if img.header.shape != shape {
                return Err(RoisError {
                    usage: true,
                    message: format!(
                        "--image {}: shape {:?} differs from the mask's {:?}",
                        ip.display(),
                        img.header.shape,
                        shape
                    ),
                });
            }
            let scale = img.header.scaling();
            Some(
                img.voxels
                    .values()
                    .map(|v| scale.map_or(v, |(s, i)| v * s + i))
                    .collect(),
            )
        }
        None => None,
    };
    let measure = MeasureOptions {
        enabled: nifti && shape.len() == 3,
        image: intensities.as_deref(),
    };
    let name_of = |l: u32| names.get(&l).cloned();
    let report =
        label_report(&values, &shape, first_fastest, k, &geometry, &name_of, measure).map_err(|e| file_err(path, e))?;
    Ok(json!({
        "path": path.display().to_string(),
        "shape": shape,
        "connectivity": k,
        "spacing_mm": geometry.spacing,
        "labels": report,
    }))
}

/// `rois` for a DICOM Segmentation: every segment reported as its own label (segments may overlap), named by its
/// SegmentLabel, on the (column, row, slice) grid of its frames.
fn seg_report(path: &Path, connectivity: Option<usize>) -> Result<Value, RoisError> {
    if !medgrain_imaging::dicom_seg::is_seg(path) {
        return Err(file_err(
            path,
            "a DICOM file that is not a Segmentation (SEG) is not a label map",
        ));
    }
    let seg = medgrain_imaging::dicom_seg::read_seg(path).map_err(|e| RoisError {
        usage: false,
        message: e.to_string(),
    })?;
    let k = connectivity.unwrap_or(3);
    if !(1..=3).contains(&k) {
        return Err(RoisError {
            usage: true,
            message: format!("--connectivity {k}: must be between 1 and 3 for a segmentation volume"),
        });
    }
    let geometry = Geometry {
        spacing: Some(seg.spacing.to_vec()),
        affine: Some(seg.affine),
    };
    let mut labels = Vec::new();
    for s in &seg.segments {
        let values: Vec<u32> = s.mask.iter().map(|&b| if b { s.number } else { 0 }).collect();
        let name = s.label.clone();
        let report = label_report(
            &values,
            &seg.shape,
            true,
            k,
            &geometry,
            &|_| Some(name.clone()),
            MeasureOptions::default(),
        )
        .map_err(|e| file_err(path, e))?;
        labels.extend(report);
    }
    Ok(json!({
        "path": path.display().to_string(),
        "format": "dicom-seg",
        "shape": seg.shape,
        "connectivity": k,
        "spacing_mm": seg.spacing,
        "affine": seg.affine,
        "labels": labels,
    }))
}

/// HU values (first axis fastest), shape, RAS affine.
pub type CtVolume = (Vec<f64>, [usize; 3], [[f64; 4]; 4]);

/// A CT volume for the locators: HU values (first axis fastest), shape and RAS affine, from a NIfTI file or a
/// folder holding one DICOM series.
pub fn read_ct_volume(path: &Path) -> Result<CtVolume, RoisError> {
    if path.is_dir() {
        let (series, _) = medgrain_imaging::dicom_series::read_series_dir(path).map_err(|e| file_err(path, e))?;
        let mut ok: Vec<_> = series.into_iter().filter_map(|s| s.ok()).collect();
        if ok.len() != 1 {
            return Err(file_err(
                path,
                format!("{} readable DICOM series; give a folder with exactly one", ok.len()),
            ));
        }
        let s = ok.remove(0);
        return Ok((s.values, s.shape, s.affine));
    }
    let img = read_nifti(path).map_err(|e| file_err(path, e))?;
    let shape = volume_shape(&img.header.shape)
        .ok_or_else(|| file_err(path, format!("shape {:?} is not a 3D volume", img.header.shape)))?;
    Ok((
        scaled_values(&img.header, &img.voxels, shape),
        shape,
        img.header.best_affine(),
    ))
}

/// The 3D shape of a NIfTI volume: `[x, y, z]`, or `[x, y, z, 1, …]` (a single time point).
pub(crate) fn volume_shape(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [x, y, z] | [x, y, z, 1, ..] => Some([*x, *y, *z]),
        _ => None,
    }
}

/// The first volume's voxel values after the header's slope/intercept (first axis fastest).
pub(crate) fn scaled_values(
    header: &medgrain_imaging::nifti_read::NiftiHeader,
    voxels: &Voxels,
    shape: [usize; 3],
) -> Vec<f64> {
    let scale = header.scaling();
    voxels
        .values()
        .take(shape.iter().product())
        .map(|x| scale.map_or(x, |(s, i)| x * s + i))
        .collect()
}

/// The locator a config names: a classical one, or `expert:onnx` with its model config (paths already resolved).
/// Loading the model happens here, once per source.
pub fn build_locator(
    name: medgrain_roi::locate::LocatorName,
    onnx: Option<&medgrain_expert::OnnxConfig>,
) -> Result<std::sync::Arc<dyn RoiLocator>, String> {
    if let Some(c) = name.classical() {
        return Ok(std::sync::Arc::new(c));
    }
    match onnx {
        Some(cfg) => medgrain_expert::OnnxLocator::new(cfg.clone())
            .map(|l| std::sync::Arc::new(l) as std::sync::Arc<dyn RoiLocator>)
            .map_err(|e| e.to_string()),
        None => Err(format!("{name} needs an onnx config (model, classes, …)")),
    }
}

/// One mask a locator wrote: name, voxel count, mean model confidence (experts only), file.
#[derive(Debug, Clone)]
pub struct LocatedFile {
    pub name: String,
    pub voxels: usize,
    pub score: Option<f64>,
    pub path: PathBuf,
}

/// Runs a locator on a volume (NIfTI or a DICOM series folder) and writes `OUT/<name>.nii.gz` (uint8, the
/// volume's affine) per mask found. A 2D image (PNG, JPEG, TIFF, DICOM file) is a volume of depth 1 (see
/// [`LocatorImage`]) and its masks are written as PNG (`OUT/<name>.png`, 0/255).
pub fn locate_file(path: &Path, locator: &dyn RoiLocator, out: &Path) -> Result<Vec<LocatedFile>, RoisError> {
    let raster = !path.is_dir() && is_raster_image(path);
    let (found, shape, affine) = if raster {
        let image = read_locator_image(path)?;
        let found = locate_2d(locator, &image).map_err(|e| file_err(path, e))?;
        (found, [image.width, image.height, 1], image.affine)
    } else {
        let (values, shape, affine) = read_ct_volume(path)?;
        let grid = medgrain_roi::measure::Grid { shape, affine: &affine };
        (
            locator.locate(&values, grid).map_err(|e| file_err(path, e))?,
            shape,
            affine,
        )
    };
    std::fs::create_dir_all(out).map_err(|e| file_err(out, e))?;
    let mut written = Vec::new();
    for medgrain_roi::locate::LocatedMask { name, mask, score } in found {
        let voxels = mask.iter().filter(|&&b| b).count();
        let stem = name.replace([' ', '/'], "_");
        let file = if raster {
            let px: Vec<u8> = mask.iter().map(|&b| if b { 255 } else { 0 }).collect();
            let file = out.join(format!("{stem}.png"));
            let png = medgrain_imaging::encode_png(shape[0] as u32, shape[1] as u32, 1, &px)
                .map_err(|e| file_err(&file, e))?;
            std::fs::write(&file, png).map_err(|e| file_err(&file, e))?;
            file
        } else {
            let bytes: Vec<u8> = mask.iter().map(|&b| b as u8).collect();
            let file = out.join(format!("{stem}.nii.gz"));
            medgrain_imaging::write_nifti1_gz(
                &file,
                &medgrain_imaging::NiftiVolume {
                    dims: shape,
                    affine,
                    datatype: medgrain_imaging::NiftiDatatype::Uint8,
                    data: &bytes,
                    description: locator.name(),
                },
            )
            .map_err(|e| file_err(&file, e))?;
            file
        };
        written.push(LocatedFile {
            name,
            voxels,
            score,
            path: file,
        });
    }
    Ok(written)
}

/// What a locator sees of a 2D image, as a volume of depth 1 (`width × height × 1`, row-major): for a grey DICOM
/// frame its modality-LUT output (HU for CT) and the file's affine, so CT rules and windowed models work on HU; for
/// other images (and colour DICOM) the luminance 0–1 (BT.601 for colour) with an identity affine.
#[derive(Debug, Clone)]
pub struct LocatorImage {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f64>,
    pub affine: [[f64; 4]; 4],
}

impl LocatorImage {
    /// The luminance of a decoded image.
    pub fn from_raster(r: &medgrain_imaging::Raster) -> LocatorImage {
        LocatorImage {
            width: r.width as usize,
            height: r.height as usize,
            values: r.luminance().into_iter().map(f64::from).collect(),
            affine: identity_affine(),
        }
    }

    /// A DICOM file's first frame: modality-LUT values when grey, else the luminance of its rendering.
    pub fn from_dicom(img: &medgrain_imaging::dicom::DicomImage, rendered: &medgrain_imaging::Raster) -> LocatorImage {
        match (img.samples_per_pixel, img.scaled_frame(0)) {
            (1, Some(values)) if values.len() == img.rows * img.columns => LocatorImage {
                width: img.columns,
                height: img.rows,
                values,
                affine: img.affine().unwrap_or_else(identity_affine),
            },
            _ => LocatorImage::from_raster(rendered),
        }
    }
}

/// Runs a locator on a 2D image; masks are row-major `height × width`.
pub fn locate_2d(
    locator: &dyn RoiLocator,
    image: &LocatorImage,
) -> Result<Vec<medgrain_roi::locate::LocatedMask>, medgrain_roi::locate::LocateError> {
    let grid = medgrain_roi::measure::Grid {
        shape: [image.width, image.height, 1],
        affine: &image.affine,
    };
    locator.locate(&image.values, grid)
}

fn identity_affine() -> [[f64; 4]; 4] {
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// PNG, JPEG, TIFF, or a single DICOM file (not a folder, not NIfTI).
fn is_raster_image(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return false;
    }
    [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// A 2D image for the locators: a raster file's luminance, or a DICOM file's first frame (see [`LocatorImage`]).
fn read_locator_image(path: &Path) -> Result<LocatorImage, RoisError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    if medgrain_imaging::dicom::is_dicom(&bytes) {
        let img = medgrain_imaging::dicom::read_dicom(path).map_err(|e| file_err(path, e))?;
        let rendered = img.render_frame(0, None).map_err(|e| file_err(path, e))?;
        return Ok(LocatorImage::from_dicom(&img, &rendered));
    }
    let r = medgrain_imaging::decode_raster(&bytes, path).map_err(|e| file_err(path, e))?;
    Ok(LocatorImage::from_raster(&r))
}
