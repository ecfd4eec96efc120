//! The 3D half of the synthetic corpus: chest CT-like volumes (int16 HU, NIfTI-1, LPS-stored with a RAS affine and
//! anisotropic spacing), one binary mask per organ named as TotalSegmentator names its classes, lesion masks,
//! a CT-RATE-style `reports.csv` whose sentences state present findings with sizes and absent findings with real
//! radiology negations, and `ground_truth.jsonl`.
//!
//! Anatomy is laid out in patient world coordinates, RAS+ millimetres (NIfTI convention): +x toward the
//! patient's right, +y anterior, +z superior. The voxel grid is stored LPS-wise (see [`affine`]), as DICOM-derived
//! NIfTI files often are, so readers must use the affine rather than assume an index direction.

use crate::rng::Rng;
use crate::{io_err, Result, SynthError};
use medgrain_imaging::{write_nifti1_gz, NiftiDatatype, NiftiVolume};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Sign of the patient-right direction on the world x axis (RAS+: right is +x).
pub const RIGHT_X_SIGN: f64 = 1.0;

pub const DIMS: [usize; 3] = [192, 192, 80];
pub const SPACING: [f64; 3] = [1.8, 1.8, 4.0];

/// The voxel grid of the volumes: the same anatomy (laid out in millimetres) sampled at another size, e.g.
/// 512×512×300 at 0.7×0.7×1.1 mm like a real chest CT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
}

impl Grid {
    /// A grid of `dims` voxels over the standard grid's field of view (345.6 × 345.6 × 320 mm).
    pub fn with_dims(dims: [usize; 3]) -> Grid {
        if dims == DIMS {
            return Grid::STANDARD; // exactly, not through a rounded division
        }
        Grid {
            dims,
            spacing: std::array::from_fn(|a| DIMS[a] as f64 * SPACING[a] / dims[a] as f64),
        }
    }

    /// The default grid: 192×192×80 at 1.8×1.8×4 mm.
    pub const STANDARD: Grid = Grid {
        dims: DIMS,
        spacing: SPACING,
    };
}

/// What the 3D half writes besides the volumes themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeOptions {
    pub grid: Grid,
    /// At least this many organ mask files per volume: beyond the drawn organs, further TotalSegmentator classes
    /// as small ellipsoids (for timing real-size inputs; 117 is TotalSegmentator's count).
    pub organ_masks: usize,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            grid: Grid::STANDARD,
            organ_masks: 0,
        }
    }
}

/// Tissue classes of the label volume; index into [`CLASSES`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Tissue {
    Air = 0,
    Fat,
    Soft,
    LungUpperRight,
    LungMiddleRight,
    LungLowerRight,
    LungUpperLeft,
    LungLowerLeft,
    Heart,
    Aorta,
    Trachea,
    Esophagus,
    Liver,
    Spleen,
    Stomach,
    /// Vertebrae: `Vertebra as u8 + level index` (T1 = 0).
    Vertebra,
}

/// TotalSegmentator class names of the mask files, by tissue code.
fn class_name(code: u8) -> Option<String> {
    let names = [
        None,
        None,
        None,
        Some("lung_upper_lobe_right"),
        Some("lung_middle_lobe_right"),
        Some("lung_lower_lobe_right"),
        Some("lung_upper_lobe_left"),
        Some("lung_lower_lobe_left"),
        Some("heart"),
        Some("aorta"),
        Some("trachea"),
        Some("esophagus"),
        Some("liver"),
        Some("spleen"),
        Some("stomach"),
    ];
    let v = Tissue::Vertebra as u8;
    if code >= v {
        return Some(format!("vertebrae_T{}", code - v + 1));
    }
    names.get(code as usize).copied().flatten().map(str::to_string)
}

/// RadGenome-style anatomy path of a lung lobe tissue.
fn lobe_path(t: Tissue) -> Option<(&'static str, &'static str)> {
    // (anatomy path, phrase used in reports)
    match t {
        Tissue::LungUpperRight => Some(("lung/right lung/right lung upper lobe", "upper lobe of the right lung")),
        Tissue::LungMiddleRight => Some((
            "lung/right lung/right lung middle lobe",
            "middle lobe of the right lung",
        )),
        Tissue::LungLowerRight => Some(("lung/right lung/right lung lower lobe", "lower lobe of the right lung")),
        Tissue::LungUpperLeft => Some(("lung/left lung/left lung upper lobe", "upper lobe of the left lung")),
        Tissue::LungLowerLeft => Some(("lung/left lung/left lung lower lobe", "lower lobe of the left lung")),
        _ => None,
    }
}

const LOBES: [Tissue; 5] = [
    Tissue::LungUpperRight,
    Tissue::LungMiddleRight,
    Tissue::LungLowerRight,
    Tissue::LungUpperLeft,
    Tissue::LungLowerLeft,
];

/// The affine of the synthetic volumes: voxel index i grows toward patient left (x decreasing), j toward
/// posterior (y decreasing), k toward superior; the volume centre is at the world origin. Orientation "LPS".
pub fn affine() -> [[f64; 4]; 4] {
    affine_of(&Grid::STANDARD)
}

/// [`affine`] for any grid.
pub fn affine_of(g: &Grid) -> [[f64; 4]; 4] {
    let c: [f64; 3] = std::array::from_fn(|a| (g.dims[a] as f64 - 1.0) / 2.0 * g.spacing[a]);
    [
        [-g.spacing[0], 0.0, 0.0, c[0]],
        [0.0, -g.spacing[1], 0.0, c[1]],
        [0.0, 0.0, g.spacing[2], -c[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn world(g: &Grid, i: usize, j: usize, k: usize) -> [f64; 3] {
    let a = affine_of(g);
    let v = [i as f64, j as f64, k as f64];
    std::array::from_fn(|r| a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3])
}

fn voxel_of(g: &Grid, p: [f64; 3]) -> [f64; 3] {
    let a = affine_of(g);
    std::array::from_fn(|r| (p[r] - a[r][3]) / a[r][r])
}

/// Per-volume anatomical variation.
struct Body {
    scale: f64,
    shift: [f64; 2],
}

fn tissue_at(b: &Body, p: [f64; 3]) -> Tissue {
    let (x, y, z) = ((p[0] - b.shift[0]) / b.scale, (p[1] - b.shift[1]) / b.scale, p[2]);
    let e2 = |dx: f64, dy: f64, ax: f64, ay: f64| (dx / ax).powi(2) + (dy / ay).powi(2);
    let e3 = |dx: f64, dy: f64, dz: f64, a: [f64; 3]| (dx / a[0]).powi(2) + (dy / a[1]).powi(2) + (dz / a[2]).powi(2);
    let body = e2(x, y, 150.0, 105.0);
    if body > 1.0 {
        return Tissue::Air;
    }
    let mut t = if body > 0.82 { Tissue::Fat } else { Tissue::Soft };
    // Lungs: domes that narrow toward the apex, floor at the diaphragm.
    for (cx, floor, right) in [(75.0 * RIGHT_X_SIGN, -50.0, true), (-75.0 * RIGHT_X_SIGN, -60.0, false)] {
        if z > floor && z < 150.0 {
            let f = (1.0 - ((z - 20.0) / 135.0).powi(2)).max(0.0).sqrt();
            if f > 0.05 && e2(x - cx, y - 5.0, 52.0 * f, 76.0 * f) <= 1.0 {
                let lower = z < 20.0 - 0.7 * y + if right { 0.0 } else { 10.0 };
                t = match (right, lower) {
                    (true, true) => Tissue::LungLowerRight,
                    (true, false) if z > 50.0 - 0.2 * y => Tissue::LungUpperRight,
                    (true, false) => Tissue::LungMiddleRight,
                    (false, true) => Tissue::LungLowerLeft,
                    (false, false) => Tissue::LungUpperLeft,
                };
            }
        }
    }
    if z < -50.0 && e3(x - 65.0 * RIGHT_X_SIGN, y - 10.0, z + 100.0, [85.0, 80.0, 70.0]) <= 1.0 {
        t = Tissue::Liver;
    }
    if z < -60.0 && e3(x + 85.0 * RIGHT_X_SIGN, y + 35.0, z + 95.0, [35.0, 45.0, 45.0]) <= 1.0 {
        t = Tissue::Spleen;
    }
    if z < -60.0 && e3(x + 45.0 * RIGHT_X_SIGN, y - 35.0, z + 95.0, [40.0, 30.0, 35.0]) <= 1.0 {
        t = Tissue::Stomach;
    }
    if e3(x + 15.0 * RIGHT_X_SIGN, y - 25.0, z + 10.0, [55.0, 45.0, 50.0]) <= 1.0 {
        t = Tissue::Heart;
    }
    let in_disc = |cx: f64, cy: f64, r: f64| e2(x - cx, y - cy, r, r) <= 1.0;
    if (z < 80.0 && in_disc(-25.0 * RIGHT_X_SIGN, -45.0, 12.0))
        || ((30.0..90.0).contains(&z) && in_disc(5.0 * RIGHT_X_SIGN, 30.0, 14.0))
    {
        t = Tissue::Aorta;
    }
    if z > 90.0 && in_disc(0.0, 15.0, 9.0) {
        t = Tissue::Trachea;
    }
    if z > -40.0 && in_disc(-5.0 * RIGHT_X_SIGN, -25.0, 7.0) {
        t = Tissue::Esophagus;
    }
    if in_disc(0.0, -72.0, 20.0) {
        // Vertebral bodies 24 mm high with 4 mm discs, T1 topmost at z = 150.
        let from_top = 150.0 - z;
        if from_top >= 0.0 {
            let level = (from_top / 28.0).floor();
            if from_top - level * 28.0 < 24.0 && level < 12.0 {
                return Tissue::Vertebra;
            }
        }
        t = Tissue::Soft;
    }
    t
}

fn code_at(b: &Body, p: [f64; 3]) -> u8 {
    let t = tissue_at(b, p);
    if t == Tissue::Vertebra {
        let level = ((150.0 - p[2]) / 28.0).floor().clamp(0.0, 11.0) as u8;
        Tissue::Vertebra as u8 + level
    } else {
        t as u8
    }
}

fn base_hu(code: u8) -> f64 {
    match code {
        0 => -1000.0,
        1 => -100.0,
        2 => 40.0,
        3..=7 => -850.0,
        8 => 40.0,
        9 => 45.0,
        10 => -1000.0,
        11 => 35.0,
        12 => 60.0,
        13 => 50.0,
        14 => 30.0,
        _ => 700.0,
    }
}

/// One finding of a volume's ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct FindingTruth {
    pub finding: String,
    pub present: bool,
    pub anatomy: String,
    pub size_mm: Option<f64>,
    pub center_ras: Option<[f64; 3]>,
    /// Side of the patient ("left"/"right") where the finding is lateralised.
    pub side: Option<String>,
    /// Lesion mask relative to `DIR/3d`, when the finding has one.
    pub mask: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct GroundTruth3d {
    volume: String,
    findings: Vec<FindingTruth>,
}

/// A spherical lesion placed in the volume.
struct Sphere {
    centre: [f64; 3],
    radius: f64,
    hu: f64,
}

fn fmt_size(mm: f64) -> String {
    if mm >= 30.0 {
        format!("{:.1} cm", mm / 10.0)
    } else {
        format!("{} mm", mm.round() as i64)
    }
}

/// TotalSegmentator classes the anatomy does not draw, written as small ellipsoids when `organ_masks` asks for
/// more files than the drawn organs give.
const EXTRA_CLASSES: &[&str] = &[
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
    "thyroid_gland",
    "small_bowel",
    "duodenum",
    "colon",
    "urinary_bladder",
    "prostate",
    "kidney_cyst_left",
    "kidney_cyst_right",
    "sacrum",
    "vertebrae_S1",
    "vertebrae_L5",
    "vertebrae_L4",
    "vertebrae_L3",
    "vertebrae_L2",
    "vertebrae_L1",
    "vertebrae_C7",
    "vertebrae_C6",
    "vertebrae_C5",
    "vertebrae_C4",
    "vertebrae_C3",
    "vertebrae_C2",
    "vertebrae_C1",
    "pulmonary_vein",
    "brachiocephalic_trunk",
    "subclavian_artery_right",
    "subclavian_artery_left",
    "common_carotid_artery_right",
    "common_carotid_artery_left",
    "brachiocephalic_vein_left",
    "brachiocephalic_vein_right",
    "atrial_appendage_left",
    "superior_vena_cava",
    "inferior_vena_cava",
    "portal_vein_and_splenic_vein",
    "iliac_artery_left",
    "iliac_artery_right",
    "iliac_vena_left",
    "iliac_vena_right",
    "humerus_left",
    "humerus_right",
    "scapula_left",
    "scapula_right",
    "clavicula_left",
    "clavicula_right",
    "femur_left",
    "femur_right",
    "hip_left",
    "hip_right",
    "spinal_cord",
    "gluteus_maximus_left",
    "gluteus_maximus_right",
    "gluteus_medius_left",
    "gluteus_medius_right",
    "gluteus_minimus_left",
    "gluteus_minimus_right",
    "autochthon_left",
    "autochthon_right",
    "iliopsoas_left",
    "iliopsoas_right",
    "brain",
    "skull",
    "rib_left_1",
    "rib_left_2",
    "rib_left_3",
    "rib_left_4",
    "rib_left_5",
    "rib_left_6",
    "rib_left_7",
    "rib_left_8",
    "rib_left_9",
    "rib_left_10",
    "rib_left_11",
    "rib_left_12",
    "rib_right_1",
    "rib_right_2",
    "rib_right_3",
    "rib_right_4",
    "rib_right_5",
    "rib_right_6",
    "rib_right_7",
    "rib_right_8",
    "rib_right_9",
    "rib_right_10",
    "rib_right_11",
    "rib_right_12",
    "sternum",
    "costal_cartilages",
    "vertebrae_T1",
    "vertebrae_T2",
    "vertebrae_T3",
    "vertebrae_T4",
    "vertebrae_T5",
    "vertebrae_T6",
    "vertebrae_T7",
    "vertebrae_T8",
    "vertebrae_T9",
    "vertebrae_T10",
    "vertebrae_T11",
    "vertebrae_T12",
];

fn present_codes(codes: &[u8]) -> Vec<u8> {
    let mut seen = [false; 256];
    for &c in codes {
        seen[c as usize] = true;
    }
    (0..=255u8).filter(|&c| seen[c as usize]).collect()
}

/// Writes `n` volumes with masks and reports under `dir` (= `DIR/3d`).
pub fn write(dir: &Path, seed: u64, n: usize, opts: &VolumeOptions) -> Result<usize> {
    for sub in ["volumes", "masks", "lesions"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
    }
    let rpath = dir.join("reports.csv");
    let mut reports = csv::Writer::from_path(&rpath).map_err(|e| io_err(&rpath, e.into()))?;
    reports
        .write_record(["VolumeName", "Findings_EN", "Impressions_EN"])
        .map_err(|e| io_err(&rpath, e.into()))?;
    let gpath = dir.join("ground_truth.jsonl");
    let mut gt = std::io::BufWriter::new(std::fs::File::create(&gpath).map_err(|e| io_err(&gpath, e))?);
    for v in 0..n {
        let name = format!("synth_ct_{v:03}.nii.gz");
        let mut rng = Rng::derive(seed, &format!("3d/{name}"));
        let (truth, findings_text, impressions_text) = write_volume(dir, &name, &mut rng, opts)?;
        reports
            .write_record([name.as_str(), findings_text.as_str(), impressions_text.as_str()])
            .map_err(|e| io_err(&rpath, e.into()))?;
        let line = serde_json::to_string(&truth).map_err(|e| io_err(&gpath, e.into()))?;
        writeln!(gt, "{line}").map_err(|e| io_err(&gpath, e))?;
    }
    reports.flush().map_err(|e| io_err(&rpath, e))?;
    gt.flush().map_err(|e| io_err(&gpath, e))?;
    Ok(n)
}

fn write_volume(
    dir: &Path,
    name: &str,
    rng: &mut Rng,
    opts: &VolumeOptions,
) -> Result<(GroundTruth3d, String, String)> {
    let g = &opts.grid;
    let stem = name.trim_end_matches(".nii.gz");
    let body = Body {
        scale: rng.range(0.93, 1.05),
        shift: [rng.range(-6.0, 6.0), rng.range(-6.0, 6.0)],
    };
    let [nx, ny, nz] = g.dims;
    let n = nx * ny * nz;
    let idx = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    let mut codes = vec![0u8; n];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                codes[idx(i, j, k)] = code_at(&body, world(g, i, j, k));
            }
        }
    }
    // Lesions: nodules and masses inside a lobe, a liver lesion; effusions replace dependent lung voxels.
    let mut findings: Vec<FindingTruth> = Vec::new();
    let mut spheres: Vec<(Sphere, usize)> = Vec::new();
    let mut lesion_sentences: Vec<String> = Vec::new();
    let mut impressions: Vec<String> = Vec::new();
    let inside_all = |codes: &[u8], c: [f64; 3], r: f64, want: u8| -> bool {
        let dirs = 26;
        (0..=dirs).all(|d| {
            let p = if d == dirs {
                c
            } else {
                let th = d as f64 / dirs as f64 * std::f64::consts::PI * 2.0;
                let ph = (d % 5) as f64 / 4.0 * std::f64::consts::PI - std::f64::consts::FRAC_PI_2;
                [
                    c[0] + r * ph.cos() * th.cos(),
                    c[1] + r * ph.cos() * th.sin(),
                    c[2] + r * ph.sin(),
                ]
            };
            let v = voxel_of(g, p);
            let (i, j, k) = (v[0].round(), v[1].round(), v[2].round());
            if i < 0.0 || j < 0.0 || k < 0.0 || i >= nx as f64 || j >= ny as f64 || k >= nz as f64 {
                return false;
            }
            codes[idx(i as usize, j as usize, k as usize)] == want
        })
    };
    let place = |rng: &mut Rng, codes: &[u8], want: u8, r: f64, others: &[(Sphere, usize)]| -> Option<[f64; 3]> {
        for _ in 0..2000 {
            let (i, j, k) = (
                rng.int(0, nx as i64 - 1),
                rng.int(0, ny as i64 - 1),
                rng.int(0, nz as i64 - 1),
            );
            if codes[idx(i as usize, j as usize, k as usize)] != want {
                continue;
            }
            let c = world(g, i as usize, j as usize, k as usize);
            let apart = others.iter().all(|(s, _)| {
                let d =
                    ((s.centre[0] - c[0]).powi(2) + (s.centre[1] - c[1]).powi(2) + (s.centre[2] - c[2]).powi(2)).sqrt();
                d > s.radius + r + 10.0
            });
            if apart && inside_all(codes, c, r + 3.0, want) {
                return Some(c);
            }
        }
        None
    };
    let n_nodules = rng.int(0, 2);
    for _ in 0..n_nodules {
        let lobe = *rng.pick(&LOBES);
        let diameter = rng.range(6.0, 18.0).round();
        if let Some(c) = place(rng, &codes, lobe as u8, diameter / 2.0, &spheres) {
            spheres.push((
                Sphere {
                    centre: c,
                    radius: diameter / 2.0,
                    hu: rng.range(20.0, 50.0),
                },
                findings.len(),
            ));
            let (truth, phrase) = lobe_finding("nodule", lobe, diameter, c);
            findings.push(truth);
            let s = fmt_size(diameter);
            let templates = [
                format!("{} {s} nodule is observed in the {phrase}.", article(&s, true)),
                format!("There is {} {s} nodule in the {phrase}.", article(&s, false)),
                format!("A solid nodule measuring {s} was detected in the {phrase}."),
            ];
            lesion_sentences.push(rng.pick(&templates).clone());
            impressions.push(format!("Pulmonary nodule of {s} in the {phrase}."));
        }
    }
    if rng.chance(0.3) {
        let lobe = *rng.pick(&[
            Tissue::LungUpperRight,
            Tissue::LungLowerRight,
            Tissue::LungUpperLeft,
            Tissue::LungLowerLeft,
        ]);
        let diameter = rng.range(30.0, 42.0).round();
        if let Some(c) = place(rng, &codes, lobe as u8, diameter / 2.0, &spheres) {
            spheres.push((
                Sphere {
                    centre: c,
                    radius: diameter / 2.0,
                    hu: rng.range(30.0, 50.0),
                },
                findings.len(),
            ));
            let (truth, phrase) = lobe_finding("mass", lobe, diameter, c);
            findings.push(truth);
            let s = fmt_size(diameter);
            lesion_sentences.push(format!("A mass lesion measuring {s} is seen in the {phrase}."));
            impressions.push(format!("Mass of {s} in the {phrase}; malignancy should be excluded."));
        }
    }
    let liver_lesion = rng.chance(0.35);
    if liver_lesion {
        let diameter = rng.range(10.0, 28.0).round();
        if let Some(c) = place(rng, &codes, Tissue::Liver as u8, diameter / 2.0, &spheres) {
            spheres.push((
                Sphere {
                    centre: c,
                    radius: diameter / 2.0,
                    hu: rng.range(0.0, 15.0),
                },
                findings.len(),
            ));
            findings.push(FindingTruth {
                finding: "hypodense lesion".into(),
                present: true,
                anatomy: "abdomen/liver".into(),
                size_mm: Some(diameter),
                center_ras: Some(c),
                side: None,
                mask: None,
            });
            let s = fmt_size(diameter);
            lesion_sentences.push(format!("A hypodense lesion measuring {s} is observed in the liver."));
            impressions.push(format!("Hypodense liver lesion of {s}."));
        }
    }
    // Effusions.
    let effusion_side = if rng.chance(0.35) {
        Some(if rng.chance(0.5) { "right" } else { "left" })
    } else {
        None
    };
    let mut effusion_voxels: Vec<usize> = Vec::new();
    if let Some(side) = effusion_side {
        let lobes: &[Tissue] = if side == "right" {
            &[Tissue::LungLowerRight, Tissue::LungMiddleRight, Tissue::LungUpperRight]
        } else {
            &[Tissue::LungLowerLeft, Tissue::LungUpperLeft]
        };
        let depth = rng.range(25.0, 45.0);
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let p = world(g, i, j, k);
                    let c = codes[idx(i, j, k)];
                    if lobes.iter().any(|&l| l as u8 == c) && p[1] < -75.0 + depth && p[2] < 10.0 {
                        effusion_voxels.push(idx(i, j, k));
                    }
                }
            }
        }
    }
    let pericardial = rng.chance(0.2);
    let mut pericardial_voxels = Vec::new();
    if pericardial {
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let p = world(g, i, j, k);
                    let (x, y, z) = (
                        (p[0] - body.shift[0]) / body.scale,
                        (p[1] - body.shift[1]) / body.scale,
                        p[2],
                    );
                    let e = ((x + 15.0 * RIGHT_X_SIGN) / 63.0).powi(2)
                        + ((y - 25.0) / 53.0).powi(2)
                        + ((z + 10.0) / 58.0).powi(2);
                    let c = codes[idx(i, j, k)];
                    if e <= 1.0 && c != Tissue::Heart as u8 && c != Tissue::Aorta as u8 && !(15..).contains(&c) {
                        pericardial_voxels.push(idx(i, j, k));
                    }
                }
            }
        }
    }
    // Intensities.
    let mut hu: Vec<i16> = Vec::with_capacity(n);
    for &c in &codes {
        let noise = 12.0 * rng.normal();
        hu.push((base_hu(c) + noise).round().clamp(-1024.0, 3071.0) as i16);
    }
    for &v in &effusion_voxels {
        hu[v] = (12.0 + 8.0 * rng.normal()).round() as i16;
        codes[v] = Tissue::Soft as u8;
    }
    for &v in &pericardial_voxels {
        hu[v] = (15.0 + 8.0 * rng.normal()).round() as i16;
        codes[v] = Tissue::Soft as u8;
    }
    let mut lesion_masks: Vec<Vec<u8>> = vec![vec![0u8; n]; spheres.len()];
    for (s_idx, (s, _)) in spheres.iter().enumerate() {
        let v0 = voxel_of(g, s.centre);
        let rv: [f64; 3] = std::array::from_fn(|a| s.radius / g.spacing[a] + 1.0);
        let lo: [usize; 3] = std::array::from_fn(|a| (v0[a] - rv[a]).floor().max(0.0) as usize);
        let hi: [usize; 3] = std::array::from_fn(|a| ((v0[a] + rv[a]).ceil() as usize + 1).min(g.dims[a]));
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                for i in lo[0]..hi[0] {
                    let p = world(g, i, j, k);
                    let d2 = (p[0] - s.centre[0]).powi(2) + (p[1] - s.centre[1]).powi(2) + (p[2] - s.centre[2]).powi(2);
                    if d2 <= s.radius * s.radius {
                        hu[idx(i, j, k)] = (s.hu + 10.0 * rng.normal()).round() as i16;
                        lesion_masks[s_idx][idx(i, j, k)] = 1;
                    }
                }
            }
        }
    }
    // Files.
    let vol_path = dir.join("volumes").join(name);
    let bytes: Vec<u8> = hu.iter().flat_map(|v| v.to_le_bytes()).collect();
    let write = |path: &Path, data: &[u8], dt: NiftiDatatype, desc: &str| -> Result<()> {
        write_nifti1_gz(
            path,
            &NiftiVolume {
                dims: g.dims,
                affine: affine_of(g),
                datatype: dt,
                data,
                description: desc,
            },
        )
        .map_err(|e| SynthError::Imaging(e.to_string()))
    };
    write(
        &vol_path,
        &bytes,
        NiftiDatatype::Int16,
        "medgrain synthetic chest CT (HU)",
    )?;
    let mask_dir = dir.join("masks").join(stem);
    std::fs::create_dir_all(&mask_dir).map_err(|e| io_err(&mask_dir, e))?;
    let mut present: Vec<u8> = codes.clone();
    present.sort_unstable();
    present.dedup();
    for code in present {
        if let Some(cls) = class_name(code) {
            let m: Vec<u8> = codes.iter().map(|&c| (c == code) as u8).collect();
            write(&mask_dir.join(format!("{cls}.nii.gz")), &m, NiftiDatatype::Uint8, &cls)?;
        }
    }
    // Further TotalSegmentator classes as small ellipsoids, up to `organ_masks` files (real-size timing inputs).
    let drawn: Vec<String> = present_codes(&codes).into_iter().filter_map(class_name).collect();
    let mut written = drawn.len();
    let [nx_, ny_, nz_] = g.dims;
    for cls in EXTRA_CLASSES {
        if written >= opts.organ_masks {
            break;
        }
        if drawn.iter().any(|d| d == cls) {
            continue;
        }
        let centre = [
            rng.range(-110.0, 110.0),
            rng.range(-70.0, 70.0),
            rng.range(-130.0, 130.0),
        ];
        let radii = [rng.range(6.0, 22.0), rng.range(6.0, 22.0), rng.range(6.0, 30.0)];
        let v0 = voxel_of(g, centre);
        let lo: [usize; 3] = std::array::from_fn(|a| (v0[a] - radii[a] / g.spacing[a] - 1.0).floor().max(0.0) as usize);
        let hi: [usize; 3] =
            std::array::from_fn(|a| ((v0[a] + radii[a] / g.spacing[a] + 2.0).ceil().max(0.0) as usize).min(g.dims[a]));
        let mut m = vec![0u8; nx_ * ny_ * nz_];
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                for i in lo[0]..hi[0] {
                    let p = world(g, i, j, k);
                    let e: f64 = (0..3).map(|a| ((p[a] - centre[a]) / radii[a]).powi(2)).sum();
                    if e <= 1.0 {
                        m[i + nx_ * (j + ny_ * k)] = 1;
                    }
                }
            }
        }
        write(&mask_dir.join(format!("{cls}.nii.gz")), &m, NiftiDatatype::Uint8, cls)?;
        written += 1;
    }
    let lesion_dir = dir.join("lesions").join(stem);
    if !spheres.is_empty() {
        std::fs::create_dir_all(&lesion_dir).map_err(|e| io_err(&lesion_dir, e))?;
    }
    for (s_idx, (_, f_idx)) in spheres.iter().enumerate() {
        let slug = findings[*f_idx].finding.replace(' ', "_");
        let fname = format!("{:02}_{slug}.nii.gz", s_idx + 1);
        write(
            &lesion_dir.join(&fname),
            &lesion_masks[s_idx],
            NiftiDatatype::Uint8,
            &slug,
        )?;
        findings[*f_idx].mask = Some(format!("lesions/{stem}/{fname}"));
    }
    // Effusion truth: centroid of the fluid voxels.
    let centroid = |vox: &[usize]| -> [f64; 3] {
        let mut s = [0.0; 3];
        for &v in vox {
            let (i, j, k) = (v % nx, (v / nx) % ny, v / (nx * ny));
            let p = world(g, i, j, k);
            for a in 0..3 {
                s[a] += p[a];
            }
        }
        s.map(|c| c / vox.len().max(1) as f64)
    };
    // Report, in CT-RATE's style: normal structures, then lesions, then negated findings.
    let mut sentences: Vec<String> = vec!["Trachea and both main bronchi are open.".into()];
    if pericardial && !pericardial_voxels.is_empty() {
        sentences.push("Heart contour and size are normal.".into());
        sentences.push("Pericardial effusion with a thickness of 8 mm is observed.".into());
        impressions.push("Pericardial effusion.".into());
        findings.push(FindingTruth {
            finding: "pericardial effusion".into(),
            present: true,
            anatomy: "heart".into(),
            size_mm: Some(8.0),
            center_ras: Some(centroid(&pericardial_voxels)),
            side: None,
            mask: None,
        });
    } else {
        sentences.push("Mediastinal main vascular structures, heart contour and size are normal.".into());
        sentences.push("Pericardial effusion-thickening was not observed.".into());
        findings.push(absent("pericardial effusion", "heart"));
    }
    sentences.push("No lymph node in pathological size and appearance was observed in the mediastinum.".into());
    findings.push(absent("lymphadenopathy", "mediastinum"));
    sentences.extend(lesion_sentences);
    if n_nodules == 0 || !findings.iter().any(|f| f.finding == "nodule") {
        sentences.push("No nodule was detected in either lung.".into());
        findings.push(absent("nodule", "lung"));
    }
    match effusion_side {
        Some(side) if !effusion_voxels.is_empty() => {
            sentences.push(format!("Pleural effusion is observed on the {side}."));
            impressions.push(format!(
                "{} pleural effusion.",
                if side == "right" { "Right" } else { "Left" }
            ));
            findings.push(FindingTruth {
                finding: "pleural effusion".into(),
                present: true,
                anatomy: "pleura".into(),
                size_mm: None,
                center_ras: Some(centroid(&effusion_voxels)),
                side: Some(side.into()),
                mask: None,
            });
        }
        _ => {
            sentences.push("No pleural effusion was observed.".into());
            findings.push(absent("pleural effusion", "pleura"));
        }
    }
    sentences.push("No pneumothorax is seen.".into());
    findings.push(absent("pneumothorax", "pleura"));
    sentences.push("No consolidation was detected in either lung.".into());
    findings.push(absent("consolidation", "lung"));
    if !findings.iter().any(|f| f.finding == "hypodense lesion") {
        sentences.push("The liver is normal in size and density.".into());
    }
    sentences.push("Bone structures in the study area are natural.".into());
    if impressions.is_empty() {
        impressions.push("No acute pathology was detected.".into());
    }
    Ok((
        GroundTruth3d {
            volume: name.into(),
            findings,
        },
        sentences.join(" "),
        impressions.join(" "),
    ))
}

/// "A"/"An" (or lower case) before a spoken number such as "8 mm" or "11 mm".
fn article(spoken: &str, capital: bool) -> &'static str {
    let an = spoken.starts_with('8')
        || spoken.starts_with("11 ")
        || spoken.starts_with("18 ")
        || spoken.starts_with("11.")
        || spoken.starts_with("18.");
    match (an, capital) {
        (true, true) => "An",
        (true, false) => "an",
        (false, true) => "A",
        (false, false) => "a",
    }
}

/// A present finding in a lung lobe, with the lobe's phrase for the report.
fn lobe_finding(finding: &str, lobe: Tissue, diameter: f64, centre: [f64; 3]) -> (FindingTruth, &'static str) {
    let (path, phrase) = lobe_path(lobe).unwrap_or(("lung", "lung"));
    let side = if path.contains("right") { "right" } else { "left" };
    let truth = FindingTruth {
        finding: finding.into(),
        present: true,
        anatomy: path.into(),
        size_mm: Some(diameter),
        center_ras: Some(centre),
        side: Some(side.into()),
        mask: None,
    };
    (truth, phrase)
}

fn absent(finding: &str, anatomy: &str) -> FindingTruth {
    FindingTruth {
        finding: finding.into(),
        present: false,
        anatomy: anatomy.into(),
        size_mm: None,
        center_ras: None,
        side: None,
        mask: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_centres_the_volume_and_is_lps_stored() {
        let c = world(&Grid::STANDARD, 0, 0, 0);
        let far = world(&Grid::STANDARD, DIMS[0] - 1, DIMS[1] - 1, DIMS[2] - 1);
        for a in 0..3 {
            assert!((c[a] + far[a]).abs() < 1e-9, "axis {a}");
        }
        // i grows toward patient left: x decreases.
        assert!(world(&Grid::STANDARD, 1, 0, 0)[0] < world(&Grid::STANDARD, 0, 0, 0)[0]);
        let v = voxel_of(&Grid::STANDARD, world(&Grid::STANDARD, 10, 20, 30));
        assert!((v[0] - 10.0).abs() < 1e-9 && (v[1] - 20.0).abs() < 1e-9 && (v[2] - 30.0).abs() < 1e-9);
    }

    #[test]
    fn anatomy_is_on_the_right_side() {
        let b = Body {
            scale: 1.0,
            shift: [0.0, 0.0],
        };
        // Liver on the patient's right (+x in RAS), spleen on the left, heart left of midline.
        assert_eq!(tissue_at(&b, [65.0, 10.0, -100.0]), Tissue::Liver);
        assert_eq!(tissue_at(&b, [-85.0, -35.0, -95.0]), Tissue::Spleen);
        assert_eq!(tissue_at(&b, [75.0, 5.0, 100.0]), Tissue::LungUpperRight);
        assert_eq!(tissue_at(&b, [-75.0, -40.0, -40.0]), Tissue::LungLowerLeft);
        assert_eq!(
            class_name(code_at(&b, [0.0, -72.0, 140.0])).as_deref(),
            Some("vertebrae_T1")
        );
        assert_ne!(tissue_at(&b, [0.0, 0.0, 0.0]), Tissue::Air);
        assert_eq!(tissue_at(&b, [200.0, 0.0, 0.0]), Tissue::Air);
    }
}
