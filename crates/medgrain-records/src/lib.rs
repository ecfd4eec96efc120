//! The record shapes medgrain writes, shared by every stage: a triplet row (image + ROIs + description),
//! its ROI entries, the generator and QC blocks, and the per-sample error line of `errors.jsonl`.
//!
//! Field names follow `shared/SPEC.md` exactly; writers (Parquet, JSON) map these structs one to one.

use serde::{Deserialize, Serialize};

/// Which slice of a volume a 2D sample was cut from (`null` for native 2D images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceRef {
    /// "axial" | "coronal" | "sagittal" or an array axis name.
    pub axis: String,
    pub index: i32,
}

/// COCO run-length encoding, compressed string form (`pycocotools.mask.decode` reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskRle {
    /// `[height, width]`.
    pub size: [i32; 2],
    pub counts: String,
}

/// Physical measurements of an ROI, where spacing (and for CT, HU) is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Measurements {
    pub long_axis_mm: Option<f64>,
    pub short_axis_mm: Option<f64>,
    pub volume_mm3: Option<f64>,
    pub mean_hu: Option<f64>,
    pub std_hu: Option<f64>,
    pub attenuation: Option<String>,
    /// Shape (`medgrain_roi::shape`, scikit-image regionprops definitions, in the ROI's image plane):
    /// 4π·area/perimeter², area/convex area, ellipse eccentricity.
    #[serde(default)]
    pub circularity: Option<f64>,
    #[serde(default)]
    pub solidity: Option<f64>,
    #[serde(default)]
    pub eccentricity: Option<f64>,
    /// Minor / major axis length of the ROI's inertia ellipse in its plane (IBSI "elongation", 2D: 1 = round).
    #[serde(default)]
    pub elongation: Option<f64>,
    /// IBSI first-order intensity entropy (bits) and uniformity over 32 bins of the ROI's own range (HU for CT
    /// slices, display intensity otherwise).
    #[serde(default)]
    pub entropy_bits: Option<f64>,
    #[serde(default)]
    pub uniformity: Option<f64>,
}

/// Appearance of an ROI measured against a ring of surrounding pixels. Not in the SPEC row; kept as an
/// extra column so every textual claim about texture can be traced to a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appearance {
    /// Mean intensity inside the ROI, 0..1 of the display range.
    pub mean_inside: f64,
    /// Mean intensity of the surrounding ring, 0..1.
    pub mean_ring: f64,
    /// Standard deviation inside the ROI, 0..1.
    pub std_inside: f64,
    /// Edge sharpness: contrast across the one-pixel border bands over contrast between interior and ring (0..~1).
    pub edge_sharpness: f64,
    /// "brighter" | "darker" | "similar".
    pub contrast: String,
    /// "homogeneous" | "heterogeneous".
    pub texture: String,
    /// "well-defined" | "ill-defined" | "indistinct".
    pub margin: String,
}

/// One region of interest of a triplet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoiRecord {
    pub label: String,
    /// The label value in the source mask, when the ROI came from a label map.
    pub label_id: Option<i32>,
    pub bbox_xyxy: [i32; 4],
    pub mask_rle: MaskRle,
    pub area_px: i64,
    pub area_fraction: f64,
    pub centroid_xy: [f32; 2],
    pub position: String,
    pub side: Option<String>,
    pub side_frame: String,
    pub origin: String,
    pub score: Option<f64>,
    pub measurements: Option<Measurements>,
    pub appearance: Option<Appearance>,
    /// The organ (from organ masks of a volume source) that holds or surrounds the ROI in its slice.
    #[serde(default)]
    pub organ_context: Option<OrganContext>,
    /// Patient-frame position of an ROI cut from a volume, relative to the volume's centre: its side and
    /// anterior/posterior and superior/inferior where the ROI's centre is more than 5 % of the field of view away
    /// ("right, anterior, superior"); `None` for 2D images.
    #[serde(default)]
    pub patient_position: Option<String>,
}

/// Where an ROI sits among organ masks: `relation` is "inside" (≥ half of the ROI lies in `organ`), "enclosed"
/// (less, but ≥ half of a 2-pixel ring around it is `organ`: a lesion cut out of its organ's mask) or "adjacent"
/// (the organ most present in the ring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganContext {
    pub organ: String,
    pub relation: String,
    /// Fraction of the ROI's pixels inside `organ`.
    pub fraction_inside: f64,
    /// Mean and (population) standard deviation of the organ's values on the ROI's slice, the ROI's own pixels left
    /// out (HU for CT): the parenchyma the ROI is compared with. `None` below 10 pixels.
    #[serde(default)]
    pub organ_mean_hu: Option<f64>,
    #[serde(default)]
    pub organ_std_hu: Option<f64>,
    /// The ROI's mean against `organ_mean_hu`: "hypoattenuating" / "isoattenuating" / "hyperattenuating" (±10 HU).
    #[serde(default)]
    pub attenuation_vs_organ: Option<String>,
}

/// A retrieved knowledge passage attached to a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeRef {
    pub id: String,
    pub source: String,
    pub score: f64,
    pub text: String,
}

/// The five MedTrinity sections of a multigranular description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sections {
    pub modality: String,
    pub organ_detection: String,
    pub roi_analysis: String,
    pub lesion_texture: String,
    pub local_global: String,
}

impl Sections {
    /// The sections in SPEC order, with their field names.
    pub fn named(&self) -> [(&'static str, &str); 5] {
        [
            ("modality", &self.modality),
            ("organ_detection", &self.organ_detection),
            ("roi_analysis", &self.roi_analysis),
            ("lesion_texture", &self.lesion_texture),
            ("local_global", &self.local_global),
        ]
    }
}

/// Who wrote the description, with which prompt, at what cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    /// "template" | "openai".
    pub kind: String,
    pub model: Option<String>,
    pub prompt_version: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub finish_reason: Option<String>,
}

/// Quality checks on a record; flags are kept, never used to drop a record silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Qc {
    pub passed: bool,
    pub flags: Vec<String>,
}

/// The stored image: PNG bytes plus the source-relative path (the Hugging Face `datasets` Image layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCell {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub path: String,
}

/// One triplet row: one image (or one slice of a volume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripletRecord {
    pub id: String,
    pub source: String,
    pub source_path: String,
    pub slice: Option<SliceRef>,
    pub license: Option<String>,
    pub image: ImageCell,
    pub width: i32,
    pub height: i32,
    pub modality: Option<String>,
    pub organ: Option<String>,
    pub diseases: Vec<String>,
    pub coarse_caption: String,
    pub rois: Vec<RoiRecord>,
    pub knowledge: Vec<KnowledgeRef>,
    pub description: String,
    pub sections: Sections,
    pub generator: GeneratorInfo,
    pub qc: Qc,
    /// "train" | "validation" | "test" with a `[splits]` table, else `None`.
    #[serde(default)]
    pub split: Option<String>,
}

/// One line of `errors.jsonl`: a sample that could not be turned into a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub source: String,
    pub source_path: String,
    /// The stage that failed: "enumerate" | "metadata" | "image" | "mask" | "rois" | "generate" | "write".
    pub stage: String,
    pub error: String,
}

/// One grounded-report row: a report sentence linked to an anatomy node (and, via further rows, its ancestors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundedRow {
    pub volume_id: String,
    /// "/"-joined path from the top region.
    pub anatomy: String,
    /// The top-level region.
    pub region: String,
    pub sentence: String,
    pub abnormal: bool,
    pub negated: bool,
    /// Mask file relative to the input root, if one exists for the node (or its region).
    pub mask_ref: Option<String>,
    /// The volume's split with a `[splits]` table (key: the volume's file name), else `None`.
    #[serde(default)]
    pub split: Option<String>,
}

/// One grounded VQA pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqaRow {
    pub id: String,
    pub volume_id: String,
    pub anatomy: Option<String>,
    /// "abnormality" | "presence" | "location" | "size" | "disorders".
    pub question_type: String,
    pub question: String,
    pub answer: String,
    pub template_id: String,
    pub mask_ref: Option<String>,
    /// For size questions with a lesion mask: the long axis measured on the mask (mm).
    pub measured_mm: Option<f64>,
    /// Checks of the answer against the masks, e.g. "size_disagrees_with_mask" (> 20 % apart).
    pub qc_flags: Vec<String>,
    /// The volume's split with a `[splits]` table (key: the volume's file name), else `None`.
    #[serde(default)]
    pub split: Option<String>,
}

/// RadGPT-style facts measured on the masks of one CT volume (`OUT/structured_findings/*.jsonl`, one per volume):
/// a block per organ mask with its lesions, the report's context columns, and the contradictions found between the
/// report and the masks in `qc.flags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeFindings {
    pub volume_id: String,
    pub clinical_information: Option<String>,
    pub technique: Option<String>,
    pub organs: Vec<OrganFindings>,
    /// The block as text, one line per organ ("liver: 1,520 ml, mean 58 HU; 1 lesion: ...").
    pub summary: String,
    pub qc: Qc,
}

/// One organ mask of a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganFindings {
    /// The mask's class name (TotalSegmentator), e.g. "liver".
    pub class: String,
    /// The anatomy node the class attaches to, when the ontology knows it.
    pub anatomy: Option<String>,
    pub volume_ml: f64,
    /// Mean and standard deviation of the CT under the mask (HU); null without a readable CT of the same grid.
    pub mean_hu: Option<f64>,
    pub std_hu: Option<f64>,
    pub lesions: Vec<LesionFindings>,
}

/// One lesion mask, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionFindings {
    pub finding: String,
    /// The anatomy node of the organ that holds most of the lesion.
    pub anatomy: String,
    pub measurements: Measurements,
    pub mask_ref: String,
    /// What the report says of it: "present" | "negated" | "not mentioned".
    pub reported: String,
    /// The report's size for it (mm), when it gives one.
    pub reported_size_mm: Option<f64>,
}
