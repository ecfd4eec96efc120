//! Instruction data made from rows: a MedTrinity-style caption task per image (an instruction chosen
//! deterministically from the row id, the ROI boxes given normalised as LLaVA writes boxes), closed and open
//! questions from each row's facts (modality, organ, ROI location, size and count), and the grounded VQA pairs.

use super::rows::TripletRow;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One question with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Qa {
    /// Stable within a row: `modality-open`, `organ-closed`, ….
    pub kind: String,
    pub question: String,
    pub answer: String,
    pub closed: bool,
    /// "modality" | "organ" | "location" | "size" | "count".
    pub question_type: String,
    /// Index of the ROI the question is about.
    pub roi: Option<usize>,
}

const CAPTION_INSTRUCTIONS: [&str; 6] = [
    "Describe this medical image in detail.",
    "Please provide a comprehensive description of this image, covering the modality, the anatomy and any region of interest.",
    "What does this image show? Describe the modality, the organs and tissues, the region of interest and how it relates to the whole image.",
    "Write a detailed description of this image as a radiologist would.",
    "Analyse the image: give the modality, the organs and tissues seen, the region of interest, its texture and its relation to its surroundings.",
    "Give a structured description of this image: modality, organ and tissue detection, region of interest, lesion texture, local-global relationship.",
];

const MODALITIES: [&str; 8] = [
    "CT",
    "MRI",
    "X-ray",
    "ultrasound",
    "PET",
    "dermoscopy",
    "fundus photography",
    "histopathology",
];

/// A number from the row id (deterministic choice of wording).
pub fn pick(id: &str, salt: &str, n: usize) -> usize {
    let h = Sha256::digest(format!("{salt}:{id}").as_bytes());
    (u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8])) % n.max(1) as u64) as usize
}

/// A ROI's `bbox_xyxy` normalised by the image size, three decimals: `[x0, y0, x1, y1]`.
pub fn norm_box(roi: &Value, width: i64, height: i64) -> Option<String> {
    let b: Vec<f64> = roi
        .get("bbox_xyxy")?
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    if b.len() != 4 || width <= 0 || height <= 0 {
        return None;
    }
    let (w, h) = (width as f64, height as f64);
    Some(format!(
        "[{:.3}, {:.3}, {:.3}, {:.3}]",
        b[0] / w,
        b[1] / h,
        b[2] / w,
        b[3] / h
    ))
}

/// The caption instruction for a row.
pub fn caption_instruction(row: &TripletRow) -> String {
    let mut s = CAPTION_INSTRUCTIONS[pick(row.id(), "caption", CAPTION_INSTRUCTIONS.len())].to_string();
    let (w, h) = (row.int("width").unwrap_or(0), row.int("height").unwrap_or(0));
    let boxes: Vec<String> = row.rois().iter().filter_map(|r| norm_box(r, w, h)).collect();
    match boxes.len() {
        0 => {}
        1 => s.push_str(&format!(" The region of interest is at {}.", boxes[0])),
        _ => s.push_str(&format!(" The regions of interest are at {}.", boxes.join(", "))),
    }
    s
}

fn qa(kind: &str, qt: &str, question: String, answer: String, closed: bool, roi: Option<usize>) -> Qa {
    Qa {
        kind: kind.into(),
        question,
        answer,
        closed,
        question_type: qt.into(),
        roi,
    }
}

/// Closed and open questions from a row's facts.
pub fn fact_questions(row: &TripletRow) -> Vec<Qa> {
    let mut out = Vec::new();
    let id = row.id();
    if let Some(m) = row.str("modality").filter(|s| !s.is_empty()) {
        out.push(qa(
            "modality-open",
            "modality",
            "What imaging modality was used for this image?".into(),
            m.into(),
            false,
            None,
        ));
        let others: Vec<&&str> = MODALITIES.iter().filter(|x| !x.eq_ignore_ascii_case(m)).collect();
        if pick(id, "modality-closed", 2) == 0 || others.is_empty() {
            out.push(qa(
                "modality-closed",
                "modality",
                format!("Is this a {m} image?"),
                "Yes".into(),
                true,
                None,
            ));
        } else {
            let o = others[pick(id, "modality-other", others.len())];
            out.push(qa(
                "modality-closed",
                "modality",
                format!("Is this a {o} image?"),
                "No".into(),
                true,
                None,
            ));
        }
    }
    if let Some(o) = row.str("organ").filter(|s| !s.is_empty()) {
        out.push(qa(
            "organ-open",
            "organ",
            "Which organ is shown in this image?".into(),
            o.into(),
            false,
            None,
        ));
        out.push(qa(
            "organ-closed",
            "organ",
            format!("Does this image show the {o}?"),
            "Yes".into(),
            true,
            None,
        ));
    }
    let rois = row.rois();
    let n = rois.len();
    out.push(qa(
        "count",
        "count",
        "How many regions of interest are marked in this image?".into(),
        n.to_string(),
        false,
        None,
    ));
    out.push(qa(
        "any-roi",
        "count",
        "Is a region of interest marked in this image?".into(),
        if n > 0 { "Yes" } else { "No" }.into(),
        true,
        None,
    ));
    // The largest ROI.
    let largest = rois
        .iter()
        .enumerate()
        .max_by_key(|(i, r)| (r.get("area_px").and_then(Value::as_i64).unwrap_or(0), usize::MAX - i));
    if let Some((i, r)) = largest {
        let label = r.get("label").and_then(Value::as_str).unwrap_or("region of interest");
        if let Some(p) = r.get("position").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            out.push(qa(
                "location-open",
                "location",
                format!("Where is the {label} in this image?"),
                p.into(),
                false,
                Some(i),
            ));
        }
        if let Some(f) = r.get("area_fraction").and_then(Value::as_f64) {
            let pct = f * 100.0;
            out.push(qa(
                "size-open",
                "size",
                format!("How much of the image does the {label} cover?"),
                format!("{pct:.1}%"),
                false,
                Some(i),
            ));
            out.push(qa(
                "size-closed",
                "size",
                format!("Does the {label} cover more than 5% of the image?"),
                if pct > 5.0 { "Yes" } else { "No" }.into(),
                true,
                Some(i),
            ));
        }
    }
    out
}

/// Question type of a grounded VQA row, and whether its answer is closed.
pub fn grounded_closed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "no")
}
