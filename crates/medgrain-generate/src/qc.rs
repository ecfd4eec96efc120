//! Quality checks on generated text against the record it describes. Flags are recorded in `qc.flags`; records
//! are never dropped for them. Flags starting with `note:` are informational and do not fail `qc.passed`.

use crate::vocab::{self, mentions, MODALITIES, ORGAN_REGIONS};
use crate::{is_normal, SampleFacts};
use medgrain_records::{Qc, Sections};

/// Phrases a description must not contain (the MedTrinity prompt's rules: no boxes, captions, annotations).
pub const FORBIDDEN: &[&str] = &[
    "bounding box",
    "green box",
    "red box",
    "the box",
    "caption",
    "annotation",
    "annotated",
    "provided knowledge",
    "metadata",
];

/// Finding words checked against the record: naming one of these as present needs a recorded disease or ROI
/// label that contains it.
pub const FINDINGS: &[&str] = &[
    "tumor",
    "tumour",
    "carcinoma",
    "metastasis",
    "metastases",
    "malignan",
    "nodule",
    "mass",
    "effusion",
    "pneumonia",
    "pneumothorax",
    "fracture",
    "hemorrhage",
    "haemorrhage",
    "infarct",
    "cyst",
    "abscess",
    "melanoma",
    "glioma",
    "edema",
    "oedema",
    "consolidation",
    "aneurysm",
    "stenosis",
];

/// `word` (a stem: "malignan" matches "malignancy") starts a word of `text` outside a negation, with negation
/// scoped per sentence and clause by the report-grounding rules (`medgrain_reports::text::is_negated`).
fn mentions_affirmed(sentences: &[String], word: &str) -> bool {
    sentences.iter().any(|lower| {
        let bytes = lower.as_bytes();
        let mut from = 0;
        while let Some(pos) = lower[from..].find(word) {
            let start = from + pos;
            let end = start + word.len();
            let word_start = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            if word_start && !medgrain_reports::text::is_negated(lower, start, end) {
                return true;
            }
            from = end;
        }
        false
    })
}

/// The sentences of `text`, lower-cased, for [`mentions_affirmed`] (split once for every word looked up).
fn lower_sentences(text: &str) -> Vec<String> {
    medgrain_reports::split_sentences(text)
        .iter()
        .map(|s| s.to_lowercase())
        .collect()
}

/// Checks `description` and `sections` against `facts`.
pub fn check(facts: &SampleFacts<'_>, description: &str, sections: &Sections) -> Qc {
    let mut flags = Vec::new();
    let text = description.to_ascii_lowercase();
    if text.trim().is_empty() {
        flags.push("empty_text".to_string());
    }
    for (name, body) in sections.named() {
        if body.trim().is_empty() {
            flags.push(format!("empty_section:{name}"));
        }
    }
    for p in FORBIDDEN {
        if text.contains(p) {
            flags.push(format!("forbidden_phrase:{p}"));
        }
    }
    if let Some(m) = facts.modality.and_then(vocab::modality) {
        let own = m.keywords.iter().any(|k| mentions(&text, k));
        for other in MODALITIES.iter().filter(|o| o.canonical != m.canonical) {
            if !own && other.keywords.iter().any(|k| mentions(&text, k)) {
                flags.push(format!("contradicts_modality:{}", other.canonical));
            }
        }
    }
    flags.extend(organ_contradictions(facts, &text));
    // A single lateralised ROI: the text must not put it on the other side.
    if let [roi] = facts.rois {
        if let Some(side) = roi.side.as_deref() {
            let other = if side == "left" { "right" } else { "left" };
            if mentions(&text, other) && !mentions(&text, side) {
                flags.push(format!("wrong_side:{other}"));
            }
        }
    }
    let abnormal = facts.diseases.iter().any(|d| !is_normal(d));
    if abnormal && facts.rois.is_empty() {
        flags.push("note:disease_without_roi".to_string());
    }
    flags.extend(unsupported_findings(facts, &text));
    let passed = flags.iter().all(|f| f.starts_with("note:"));
    Qc { passed, flags }
}

/// `contradicts_organ:REGION` for every other body region `text` names (the record's organ is known).
pub(crate) fn organ_contradictions(facts: &SampleFacts<'_>, text: &str) -> Vec<String> {
    let Some(region) = facts.organ.and_then(vocab::organ_region) else {
        return Vec::new();
    };
    ORGAN_REGIONS
        .iter()
        .filter(|(r, _)| *r != region)
        .filter(|(_, words)| words.iter().any(|w| mentions(text, w)))
        .map(|(other, _)| format!("contradicts_organ:{other}"))
        .collect()
}

/// `finding_not_in_metadata:F` for findings `text` names as present that the record does not support (neither a
/// recorded disease nor an ROI label contains them).
pub(crate) fn unsupported_findings(facts: &SampleFacts<'_>, text: &str) -> Vec<String> {
    let known: String = facts
        .diseases
        .iter()
        .map(String::as_str)
        .chain(facts.rois.iter().map(|r| r.label.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let sentences = lower_sentences(text);
    FINDINGS
        .iter()
        .filter(|finding| !known.contains(&finding[..finding.len().min(7)]))
        .filter(|finding| mentions_affirmed(&sentences, finding))
        .map(|finding| format!("finding_not_in_metadata:{finding}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(modality: &'a str, organ: &'a str, diseases: &'a [String]) -> SampleFacts<'a> {
        SampleFacts {
            id: "x",
            modality: Some(modality),
            organ: Some(organ),
            diseases,
            width: 10,
            height: 10,
            colour: false,
            foreground_fraction: None,
            rois: &[],
            knowledge: &[],
            coarse_caption: "",
            image: None,
        }
    }

    fn full(text: &str) -> Sections {
        Sections {
            modality: text.into(),
            organ_detection: text.into(),
            roi_analysis: text.into(),
            lesion_texture: text.into(),
            local_global: text.into(),
        }
    }

    #[test]
    fn breast_mri_called_brain_mri_is_flagged() {
        let d = vec!["breast carcinoma".to_string()];
        let f = facts("MRI", "breast", &d);
        let t = "This MRI of the brain shows a mass.";
        let qc = check(&f, t, &full(t));
        assert!(!qc.passed);
        assert!(
            qc.flags.contains(&"contradicts_organ:head".to_string()),
            "{:?}",
            qc.flags
        );
    }

    #[test]
    fn ct_called_mri_and_forbidden_phrases_are_flagged() {
        let d = vec!["pulmonary nodule".to_string()];
        let f = facts("CT", "lung", &d);
        let t = "An MRI of the lung; the green box marks a nodule.";
        let qc = check(&f, t, &full(t));
        assert!(
            qc.flags.contains(&"contradicts_modality:MRI".to_string()),
            "{:?}",
            qc.flags
        );
        assert!(qc.flags.contains(&"forbidden_phrase:green box".to_string()));
    }

    #[test]
    fn unsupported_findings_are_flagged_unless_negated() {
        let d = vec!["normal".to_string()];
        let f = facts("CT", "lung", &d);
        let t = "A CT of the lung showing a large mass in the upper lobe.";
        assert!(check(&f, t, &full(t))
            .flags
            .contains(&"finding_not_in_metadata:mass".to_string()));
        let t = "A CT of the lung. There is no mass and no effusion.";
        assert!(check(&f, t, &full(t)).passed, "{:?}", check(&f, t, &full(t)).flags);
        let d = vec!["lung mass".to_string()];
        let f = facts("CT", "lung", &d);
        let t = "A CT of the lung showing a large mass.";
        assert!(check(&f, t, &full(t)).passed);
    }

    #[test]
    fn a_consistent_text_passes() {
        let d = vec!["pulmonary nodule".to_string()];
        let f = facts("CT", "lung", &d);
        let t = "A CT image of the lung with a region of interest in the upper lobe.";
        let qc = check(&f, t, &full(t));
        assert!(qc.passed, "{:?}", qc.flags);
        // …but not with an empty section.
        let mut s = full(t);
        s.lesion_texture.clear();
        assert!(!check(&f, t, &s).passed);
    }
}
