//! The 2D half of the synthetic corpus: images of seven kinds (CT chest and abdomen slices in HU windowed to
//! 8-bit, chest X-ray, brain MRI, dermoscopy, fundus photography, breast ultrasound) with 0–3 lesions of known
//! shape, contrast, texture and margin, their label-map masks, `metadata.csv` and `ground_truth.jsonl`.

use crate::rng::Rng;
use crate::{io_err, Result};
use medgrain_imaging::encode_png;
use serde::Serialize;
use std::f64::consts::PI;
use std::io::Write;
use std::path::Path;

const SIZE: usize = 256;

/// How a lesion's intensity is set, in the kind's value domain (HU for CT, 0..1 otherwise).
#[derive(Clone, Copy)]
enum Level {
    /// Absolute value range.
    Absolute(f64, f64),
    /// Offset from the local background.
    Delta(f64, f64),
    /// RGB colour (0..1 per channel).
    Colour([f64; 3]),
}

struct DiseaseSpec {
    name: &'static str,
    lesions: (i64, i64),
    radius: (f64, f64),
    level: Level,
    contrast: &'static str,
    p_heterogeneous: f64,
    p_blurred: f64,
}

const fn disease(
    name: &'static str,
    lesions: (i64, i64),
    radius: (f64, f64),
    level: Level,
    contrast: &'static str,
    p_heterogeneous: f64,
    p_blurred: f64,
) -> DiseaseSpec {
    DiseaseSpec {
        name,
        lesions,
        radius,
        level,
        contrast,
        p_heterogeneous,
        p_blurred,
    }
}

const NORMAL: DiseaseSpec = disease(
    "normal",
    (0, 0),
    (0.0, 0.0),
    Level::Delta(0.0, 0.0),
    "similar",
    0.0,
    0.0,
);

#[derive(Clone, Copy, PartialEq)]
enum Anatomy {
    CtChest,
    CtAbdomen,
    XrayChest,
    MriBrain,
    Dermoscopy,
    Fundus,
    UltrasoundBreast,
}

struct Kind {
    slug: &'static str,
    anatomy: Anatomy,
    modality: &'static str,
    organ: &'static str,
    notes: &'static str,
    diseases: &'static [DiseaseSpec],
    /// Texture amplitude in the value domain.
    texture_amp: f64,
}

const KINDS: &[Kind] = &[
    Kind {
        slug: "ct_chest",
        anatomy: Anatomy::CtChest,
        modality: "CT",
        organ: "lung",
        notes: "synthetic; axial slice; lung window (L -600, W 1500)",
        diseases: &[
            NORMAL,
            disease(
                "pulmonary nodule",
                (1, 3),
                (4.0, 9.0),
                Level::Absolute(10.0, 60.0),
                "brighter",
                0.3,
                0.4,
            ),
            disease(
                "lung mass",
                (1, 1),
                (12.0, 19.0),
                Level::Absolute(20.0, 50.0),
                "brighter",
                0.7,
                0.5,
            ),
        ],
        texture_amp: 270.0,
    },
    Kind {
        slug: "ct_abdomen",
        anatomy: Anatomy::CtAbdomen,
        modality: "CT",
        organ: "liver",
        notes: "synthetic; axial slice; abdomen window (L 40, W 400)",
        diseases: &[
            NORMAL,
            disease(
                "hepatic cyst",
                (1, 3),
                (5.0, 12.0),
                Level::Absolute(0.0, 12.0),
                "darker",
                0.1,
                0.2,
            ),
            disease(
                "liver metastasis",
                (1, 3),
                (6.0, 13.0),
                Level::Absolute(5.0, 25.0),
                "darker",
                0.6,
                0.6,
            ),
        ],
        texture_amp: 72.0,
    },
    Kind {
        slug: "xray_chest",
        anatomy: Anatomy::XrayChest,
        modality: "X-ray",
        organ: "lung",
        notes: "synthetic; PA chest radiograph",
        diseases: &[
            NORMAL,
            disease(
                "pneumonia",
                (1, 2),
                (13.0, 22.0),
                Level::Delta(0.18, 0.3),
                "brighter",
                0.7,
                0.8,
            ),
            disease(
                "lung nodule",
                (1, 3),
                (4.5, 9.0),
                Level::Delta(0.2, 0.35),
                "brighter",
                0.2,
                0.3,
            ),
        ],
        texture_amp: 0.18,
    },
    Kind {
        slug: "mri_brain",
        anatomy: Anatomy::MriBrain,
        modality: "MRI",
        organ: "brain",
        notes: "synthetic; axial T2-weighted slice",
        diseases: &[
            NORMAL,
            disease(
                "glioma",
                (1, 1),
                (12.0, 20.0),
                Level::Delta(0.25, 0.4),
                "brighter",
                0.8,
                0.7,
            ),
            disease(
                "brain metastasis",
                (1, 3),
                (4.5, 9.0),
                Level::Delta(0.25, 0.4),
                "brighter",
                0.3,
                0.3,
            ),
        ],
        texture_amp: 0.18,
    },
    Kind {
        slug: "dermoscopy",
        anatomy: Anatomy::Dermoscopy,
        modality: "dermoscopy",
        organ: "skin",
        notes: "synthetic; dermoscopic photograph",
        diseases: &[
            disease(
                "melanoma",
                (1, 1),
                (24.0, 40.0),
                Level::Colour([0.30, 0.18, 0.12]),
                "darker",
                0.85,
                0.6,
            ),
            disease(
                "melanocytic nevus",
                (1, 1),
                (14.0, 28.0),
                Level::Colour([0.52, 0.36, 0.26]),
                "darker",
                0.15,
                0.2,
            ),
            disease(
                "seborrheic keratosis",
                (1, 1),
                (18.0, 32.0),
                Level::Colour([0.45, 0.35, 0.25]),
                "darker",
                0.6,
                0.3,
            ),
        ],
        texture_amp: 0.18,
    },
    Kind {
        slug: "fundus",
        anatomy: Anatomy::Fundus,
        modality: "fundus photography",
        organ: "retina",
        notes: "synthetic; colour fundus photograph",
        diseases: &[
            NORMAL,
            disease(
                "diabetic retinopathy",
                (1, 3),
                (4.0, 8.0),
                Level::Colour([0.35, 0.06, 0.03]),
                "darker",
                0.1,
                0.5,
            ),
            disease(
                "age-related macular degeneration",
                (1, 3),
                (4.0, 9.0),
                Level::Colour([0.95, 0.85, 0.45]),
                "brighter",
                0.1,
                0.5,
            ),
        ],
        texture_amp: 0.18,
    },
    Kind {
        slug: "us_breast",
        anatomy: Anatomy::UltrasoundBreast,
        modality: "ultrasound",
        organ: "breast",
        notes: "synthetic; B-mode breast ultrasound",
        diseases: &[
            NORMAL,
            disease(
                "breast cyst",
                (1, 1),
                (8.0, 18.0),
                Level::Absolute(0.03, 0.08),
                "darker",
                0.0,
                0.1,
            ),
            disease(
                "fibroadenoma",
                (1, 1),
                (12.0, 20.0),
                Level::Absolute(0.22, 0.32),
                "darker",
                0.2,
                0.3,
            ),
            disease(
                "breast carcinoma",
                (1, 1),
                (10.0, 18.0),
                Level::Absolute(0.12, 0.25),
                "darker",
                0.7,
                0.8,
            ),
        ],
        texture_amp: 0.18,
    },
];

/// The modalities the 2D corpus covers (distinct values of the `modality` column).
pub fn modalities() -> Vec<&'static str> {
    let mut m: Vec<&str> = KINDS.iter().map(|k| k.modality).collect();
    m.dedup();
    m
}

struct Canvas {
    channels: usize,
    /// Value domain, `channels` interleaved.
    data: Vec<f64>,
    /// Where lesions may be placed.
    allowed: Vec<bool>,
}

fn ellipse(x: f64, y: f64, cx: f64, cy: f64, ax: f64, ay: f64) -> f64 {
    ((x - cx) / ax).powi(2) + ((y - cy) / ay).powi(2)
}

fn background(anatomy: Anatomy, rng: &mut Rng) -> Canvas {
    let n = SIZE * SIZE;
    let jitter = |rng: &mut Rng, s: f64| rng.range(-s, s);
    let (jx, jy, js) = (jitter(rng, 6.0), jitter(rng, 6.0), rng.range(0.92, 1.06));
    let phase = rng.range(0.0, 2.0 * PI);
    let mut allowed = vec![false; n];
    let channels = if matches!(anatomy, Anatomy::Dermoscopy | Anatomy::Fundus) {
        3
    } else {
        1
    };
    let mut data = vec![0.0; n * channels];
    for r in 0..SIZE {
        for c in 0..SIZE {
            let (x, y) = (c as f64 + 0.5, r as f64 + 0.5);
            let i = r * SIZE + c;
            let shade = (x / 37.0 + phase).sin() * (y / 53.0 - phase).cos();
            match anatomy {
                Anatomy::CtChest => {
                    let body = ellipse(x, y, 128.0 + jx, 136.0 + jy, 112.0 * js, 86.0 * js);
                    let mut v = -1000.0;
                    if body <= 1.0 {
                        v = if body > 0.82 { -100.0 } else { 40.0 };
                    }
                    for lx in [80.0, 176.0] {
                        let e = ellipse(x, y, lx + jx, 126.0 + jy, 38.0 * js, 56.0 * js);
                        if e <= 1.0 {
                            v = -850.0 + 20.0 * shade;
                            allowed[i] = e <= 0.92;
                        }
                    }
                    if ellipse(x, y, 142.0 + jx, 150.0 + jy, 30.0, 26.0) <= 1.0 {
                        v = 40.0;
                        allowed[i] = false;
                    }
                    if ellipse(x, y, 128.0 + jx, 198.0 + jy, 15.0, 14.0) <= 1.0 {
                        v = 700.0;
                    }
                    data[i] = v;
                }
                Anatomy::CtAbdomen => {
                    let body = ellipse(x, y, 128.0 + jx, 132.0 + jy, 114.0 * js, 90.0 * js);
                    let mut v = -1000.0;
                    if body <= 1.0 {
                        v = if body > 0.8 { -100.0 } else { 35.0 };
                    }
                    let liver = ellipse(x, y, 98.0 + jx, 122.0 + jy, 66.0 * js, 58.0 * js);
                    if liver <= 1.0 {
                        v = 60.0 + 4.0 * shade;
                        allowed[i] = liver <= 0.9;
                    }
                    if ellipse(x, y, 192.0 + jx, 116.0 + jy, 24.0, 34.0) <= 1.0 {
                        v = 50.0;
                    }
                    if ellipse(x, y, 140.0 + jx, 178.0 + jy, 9.0, 9.0) <= 1.0 {
                        v = 160.0;
                    }
                    if ellipse(x, y, 128.0 + jx, 202.0 + jy, 15.0, 14.0) <= 1.0 {
                        v = 700.0;
                    }
                    data[i] = v;
                }
                Anatomy::XrayChest => {
                    let mut v = 0.08;
                    if ellipse(x, y, 128.0 + jx, 140.0 + jy, 120.0 * js, 125.0) <= 1.0 {
                        v = 0.55 + 0.03 * shade;
                    }
                    for lx in [82.0, 174.0] {
                        let e = ellipse(x, y, lx + jx, 120.0 + jy, 40.0 * js, 82.0 * js);
                        if e <= 1.0 {
                            v = 0.22 + 0.04 * (y / 9.0).sin().powi(8) + 0.02 * shade;
                            allowed[i] = e <= 0.9;
                        }
                    }
                    if ellipse(x, y, 140.0 + jx, 160.0 + jy, 36.0, 32.0) <= 1.0 {
                        v = 0.7;
                        allowed[i] = false;
                    }
                    if (x - 128.0 - jx).abs() < 10.0 {
                        v = v.max(0.72);
                        allowed[i] = false;
                    }
                    data[i] = v;
                }
                Anatomy::MriBrain => {
                    let head = ellipse(x, y, 128.0 + jx, 128.0 + jy, 100.0 * js, 118.0 * js);
                    let mut v = 0.02;
                    if head <= 1.0 {
                        v = if head > 0.86 {
                            0.5
                        } else if head > 0.78 {
                            0.06
                        } else {
                            0.42 + 0.03 * shade
                        };
                        allowed[i] = head <= 0.62;
                    }
                    if ellipse(x, y, 128.0 + jx, 128.0 + jy, 62.0 * js, 78.0 * js) <= 1.0 {
                        v = 0.34 + 0.02 * shade;
                    }
                    for vx in [116.0, 140.0] {
                        if ellipse(x, y, vx + jx, 122.0 + jy, 7.0, 24.0) <= 1.0 {
                            v = 0.85;
                            allowed[i] = false;
                        }
                    }
                    data[i] = v;
                }
                Anatomy::Dermoscopy => {
                    let field = ellipse(x, y, 128.0, 128.0, 124.0, 124.0);
                    let rgb = if field <= 1.0 {
                        allowed[i] = field <= 0.55;
                        let s = 0.03 * shade;
                        [0.86 + s, 0.68 + s, 0.58 + s]
                    } else {
                        [0.03, 0.03, 0.03]
                    };
                    data[i * 3..i * 3 + 3].copy_from_slice(&rgb);
                }
                Anatomy::Fundus => {
                    let field = ellipse(x, y, 128.0, 128.0, 118.0, 118.0);
                    let disc = ellipse(x, y, 176.0 + jx, 124.0 + jy, 16.0, 17.0);
                    let rgb = if disc <= 1.0 {
                        [0.95, 0.85, 0.6]
                    } else if field <= 1.0 {
                        allowed[i] = field <= 0.7 && disc > 4.0;
                        let fall = 1.0 - 0.25 * field;
                        let vessel = ((y - 124.0 - jy) / 18.0 - (x / 40.0).sin()).abs() < 0.06;
                        if vessel {
                            allowed[i] = false;
                            [0.55 * fall, 0.16 * fall, 0.08 * fall]
                        } else {
                            [0.78 * fall, 0.36 * fall, 0.16 * fall]
                        }
                    } else {
                        [0.0, 0.0, 0.0]
                    };
                    data[i * 3..i * 3 + 3].copy_from_slice(&rgb);
                }
                Anatomy::UltrasoundBreast => {
                    let v = if y < 8.0 {
                        0.05
                    } else if y < 14.0 {
                        0.8
                    } else if y < 60.0 + 6.0 * shade {
                        0.3
                    } else if y < 215.0 {
                        allowed[i] = (80.0..205.0).contains(&y) && (12.0..244.0).contains(&x);
                        0.55 + 0.05 * shade
                    } else {
                        0.2
                    };
                    data[i] = v;
                }
            }
        }
    }
    Canvas {
        channels,
        data,
        allowed,
    }
}

/// One drawn lesion, with what the generator knows about it.
#[derive(Debug, Clone, Serialize)]
pub struct LesionTruth {
    pub label: u32,
    /// Box of the pixels drawn into the mask (half-open).
    pub bbox_xyxy: [i64; 4],
    /// Box of the analytic ellipse over pixel centres (may exceed the drawn pixels by one at thin tips).
    pub ellipse_bbox_xyxy: [i64; 4],
    pub center_xy: [f64; 2],
    pub radii: [f64; 2],
    pub angle_deg: f64,
    pub contrast: String,
    pub texture: String,
    pub margin: String,
}

#[derive(Debug, Clone, Serialize)]
struct GroundTruth2d {
    image: String,
    modality: String,
    organ: String,
    disease: String,
    lesions: Vec<LesionTruth>,
}

fn display_u8(anatomy: Anatomy, v: f64) -> u8 {
    let t = match anatomy {
        Anatomy::CtChest => (v - (-600.0 - 750.0)) / 1500.0,
        Anatomy::CtAbdomen => (v - (40.0 - 200.0)) / 400.0,
        _ => v,
    };
    (t.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn place(canvas: &Canvas, rng: &mut Rng, radius: f64, taken: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    let reach = radius * 1.6 + 4.0;
    for _ in 0..300 {
        let cx = rng.range(reach, SIZE as f64 - reach);
        let cy = rng.range(reach, SIZE as f64 - reach);
        let inside = (0..24).all(|k| {
            let t = k as f64 / 24.0 * 2.0 * PI;
            let (px, py) = (cx + reach * t.cos(), cy + reach * t.sin());
            let (c, r) = (px as usize, py as usize);
            r < SIZE && c < SIZE && canvas.allowed[r * SIZE + c]
        }) && canvas.allowed[cy as usize * SIZE + cx as usize];
        let apart = taken
            .iter()
            .all(|&(tx, ty, tr)| ((tx - cx).powi(2) + (ty - cy).powi(2)).sqrt() > tr * 1.6 + reach + 6.0);
        if inside && apart {
            return Some((cx, cy));
        }
    }
    None
}

/// Writes the 2D corpus (`n_per_kind` images of each kind) under `dir` (= `DIR/2d`).
pub fn write(dir: &Path, seed: u64, n_per_kind: usize) -> Result<usize> {
    let images = dir.join("images");
    let masks = dir.join("masks");
    std::fs::create_dir_all(&images).map_err(|e| io_err(&images, e))?;
    std::fs::create_dir_all(&masks).map_err(|e| io_err(&masks, e))?;
    let meta_path = dir.join("metadata.csv");
    let mut meta = csv::Writer::from_path(&meta_path).map_err(|e| io_err(&meta_path, e.into()))?;
    meta.write_record(["file", "modality", "organ", "disease", "notes"])
        .map_err(|e| io_err(&meta_path, e.into()))?;
    let gt_path = dir.join("ground_truth.jsonl");
    let mut gt = std::io::BufWriter::new(std::fs::File::create(&gt_path).map_err(|e| io_err(&gt_path, e))?);
    let mut count = 0;
    for kind in KINDS {
        for k in 0..n_per_kind {
            let name = format!("{}_{k:04}.png", kind.slug);
            let mut rng = Rng::derive(seed, &format!("2d/{name}"));
            let truth = write_one(kind, &name, &images, &masks, &mut rng)?;
            meta.write_record([
                truth.image.as_str(),
                kind.modality,
                kind.organ,
                truth.disease.as_str(),
                kind.notes,
            ])
            .map_err(|e| io_err(&meta_path, e.into()))?;
            let line = serde_json::to_string(&truth).map_err(|e| io_err(&gt_path, e.into()))?;
            writeln!(gt, "{line}").map_err(|e| io_err(&gt_path, e))?;
            count += 1;
        }
    }
    meta.flush().map_err(|e| io_err(&meta_path, e))?;
    gt.flush().map_err(|e| io_err(&gt_path, e))?;
    Ok(count)
}

fn write_one(kind: &Kind, name: &str, images: &Path, masks: &Path, rng: &mut Rng) -> Result<GroundTruth2d> {
    let mut canvas = background(kind.anatomy, rng);
    let ch = canvas.channels;
    let spec = rng.pick(kind.diseases);
    let wanted = rng.int(spec.lesions.0, spec.lesions.1);
    let mut labels = vec![0u8; SIZE * SIZE];
    let mut lesions = Vec::new();
    let mut taken: Vec<(f64, f64, f64)> = Vec::new();
    for _ in 0..wanted {
        let r_major = rng.range(spec.radius.0, spec.radius.1);
        let r_minor = r_major * rng.range(0.65, 1.0);
        let Some((cx, cy)) = place(&canvas, rng, r_major, &taken) else {
            continue;
        };
        taken.push((cx, cy, r_major));
        let theta = rng.range(0.0, PI);
        let heterogeneous = rng.chance(spec.p_heterogeneous);
        let blurred = rng.chance(spec.p_blurred);
        let label = lesions.len() as u32 + 1;
        // Local background level at the centre, for Delta levels.
        let centre = cy as usize * SIZE + cx as usize;
        let target: Vec<f64> = match spec.level {
            Level::Absolute(lo, hi) => vec![rng.range(lo, hi)],
            Level::Delta(lo, hi) => vec![canvas.data[centre] + rng.range(lo, hi)],
            Level::Colour(c) => {
                let j = rng.range(-0.04, 0.04);
                c.iter().map(|v| (v + j).clamp(0.0, 1.0)).collect()
            }
        };
        let freqs = [rng.range(0.6, 1.2), rng.range(0.6, 1.2), rng.range(0.4, 0.9)];
        let phases = [
            rng.range(0.0, 2.0 * PI),
            rng.range(0.0, 2.0 * PI),
            rng.range(0.0, 2.0 * PI),
        ];
        let blur_px = if blurred { (0.22 * r_major).max(2.5) } else { 0.0 };
        let (ct, st) = (theta.cos(), theta.sin());
        let hw = (r_major.powi(2) * ct.powi(2) + r_minor.powi(2) * st.powi(2)).sqrt();
        let hh = (r_major.powi(2) * st.powi(2) + r_minor.powi(2) * ct.powi(2)).sqrt();
        let reach = hw.max(hh) + 4.0 * blur_px + 2.0;
        let (r0, r1) = (
            (cy - reach).floor().max(0.0) as usize,
            ((cy + reach).ceil() as usize).min(SIZE),
        );
        let (c0, c1) = (
            (cx - reach).floor().max(0.0) as usize,
            ((cx + reach).ceil() as usize).min(SIZE),
        );
        let mut drawn = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
        for r in r0..r1 {
            for c in c0..c1 {
                let (dx, dy) = (c as f64 + 0.5 - cx, r as f64 + 0.5 - cy);
                let (u, v) = (dx * ct + dy * st, -dx * st + dy * ct);
                let rho = ((u / r_major).powi(2) + (v / r_minor).powi(2)).sqrt();
                let i = r * SIZE + c;
                if rho <= 1.0 {
                    labels[i] = label as u8;
                    drawn = [
                        drawn[0].min(c as i64),
                        drawn[1].min(r as i64),
                        drawn[2].max(c as i64 + 1),
                        drawn[3].max(r as i64 + 1),
                    ];
                }
                let w = if blurred {
                    1.0 / (1.0 + ((rho - 1.0) * r_major / (blur_px * 0.5)).exp())
                } else if rho <= 1.0 {
                    1.0
                } else {
                    0.0
                };
                if w <= 1e-4 {
                    continue;
                }
                let tex = if heterogeneous {
                    let s = 2.0 * PI / (r_major * 0.7).max(3.0);
                    kind.texture_amp
                        * ((freqs[0] * s * u + phases[0]).sin() * (freqs[1] * s * v + phases[1]).sin()
                            + 0.5 * (freqs[2] * s * (u + v) + phases[2]).sin())
                } else {
                    0.0
                };
                for k in 0..ch {
                    let lesion_value = target[k.min(target.len() - 1)] + tex;
                    let cur = canvas.data[i * ch + k];
                    canvas.data[i * ch + k] = cur * (1.0 - w) + lesion_value * w;
                }
            }
        }
        let x0 = (cx - hw - 0.5).ceil() as i64;
        let y0 = (cy - hh - 0.5).ceil() as i64;
        let x1 = (cx + hw - 0.5).floor() as i64 + 1;
        let y1 = (cy + hh - 0.5).floor() as i64 + 1;
        lesions.push(LesionTruth {
            label,
            bbox_xyxy: drawn,
            ellipse_bbox_xyxy: [x0, y0, x1, y1],
            center_xy: [cx, cy],
            radii: [r_major, r_minor],
            angle_deg: theta.to_degrees(),
            contrast: spec.contrast.into(),
            texture: if heterogeneous { "heterogeneous" } else { "homogeneous" }.into(),
            margin: if blurred { "ill-defined" } else { "well-defined" }.into(),
        });
    }
    // Acquisition noise, then conversion to 8-bit display values.
    let mut pixels = vec![0u8; SIZE * SIZE * ch];
    for (i, px) in pixels.iter_mut().enumerate() {
        let v = canvas.data[i];
        let noisy = match kind.anatomy {
            Anatomy::CtChest | Anatomy::CtAbdomen => v + 10.0 * rng.normal(),
            Anatomy::UltrasoundBreast => v * (1.0 + 0.15 * rng.normal()),
            _ => v + 0.012 * rng.normal(),
        };
        *px = display_u8(kind.anatomy, noisy);
    }
    let err = |e: medgrain_imaging::ImagingError| crate::SynthError::Imaging(e.to_string());
    let png = encode_png(SIZE as u32, SIZE as u32, ch as u8, &pixels).map_err(err)?;
    let path = images.join(name);
    std::fs::write(&path, png).map_err(|e| io_err(&path, e))?;
    let mask_png = encode_png(SIZE as u32, SIZE as u32, 1, &labels).map_err(err)?;
    let mpath = masks.join(name);
    std::fs::write(&mpath, mask_png).map_err(|e| io_err(&mpath, e))?;
    Ok(GroundTruth2d {
        image: format!("images/{name}"),
        modality: kind.modality.into(),
        organ: kind.organ.into(),
        disease: if lesions.is_empty() {
            "normal".into()
        } else {
            spec.name.into()
        },
        lesions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_five_modalities_and_sensible_kinds() {
        assert!(modalities().len() >= 5);
        for k in KINDS {
            assert!(!k.diseases.is_empty());
            for d in k.diseases {
                assert!(d.lesions.0 <= d.lesions.1 && d.lesions.1 <= 3, "{}", d.name);
            }
        }
    }

    #[test]
    fn display_windows_map_tissues_as_expected() {
        // Lung window (-600/1500): air -1000 -> (−1000+1350)/1500*255 = 59.5 -> 60; bone 700 -> clipped 255.
        assert_eq!(display_u8(Anatomy::CtChest, -1000.0), 60);
        assert_eq!(display_u8(Anatomy::CtChest, 700.0), 255);
        // Abdomen window (40/400): 40 HU is the centre -> 127.5 -> 128.
        assert_eq!(display_u8(Anatomy::CtAbdomen, 40.0), 128);
    }
}
