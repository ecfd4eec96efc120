//! Words for modalities and organs: how to name them in text, which keywords identify them, and which body
//! region an organ belongs to (used by QC to catch a "breast MRI" described as a "brain MRI").

/// A modality's spoken name and the keywords that identify it in free text (lower case).
pub struct ModalityWords {
    pub canonical: &'static str,
    /// Noun phrase for "a … of the lung".
    pub phrase: &'static str,
    pub keywords: &'static [&'static str],
}

pub const MODALITIES: &[ModalityWords] = &[
    ModalityWords {
        canonical: "CT",
        phrase: "computed tomography (CT) image",
        keywords: &["ct", "computed tomography"],
    },
    ModalityWords {
        canonical: "MRI",
        phrase: "magnetic resonance (MR) image",
        keywords: &[
            "mri",
            "magnetic resonance",
            "mr image",
            "t1-weighted",
            "t2-weighted",
            "flair",
        ],
    },
    ModalityWords {
        canonical: "X-ray",
        phrase: "radiograph (X-ray)",
        keywords: &["x-ray", "radiograph", "xray"],
    },
    ModalityWords {
        canonical: "ultrasound",
        phrase: "ultrasound image",
        keywords: &["ultrasound", "sonograph", "b-mode", "echograph"],
    },
    ModalityWords {
        canonical: "dermoscopy",
        phrase: "dermoscopic image",
        keywords: &["dermoscop", "dermatoscop"],
    },
    ModalityWords {
        canonical: "fundus photography",
        phrase: "colour fundus photograph",
        keywords: &["fundus"],
    },
    ModalityWords {
        canonical: "PET",
        phrase: "positron emission tomography (PET) image",
        keywords: &["pet", "positron emission"],
    },
    ModalityWords {
        canonical: "histopathology",
        phrase: "histopathology image",
        keywords: &["histopatholog", "h&e", "whole-slide"],
    },
    ModalityWords {
        canonical: "endoscopy",
        phrase: "endoscopic image",
        keywords: &["endoscop", "colonoscop"],
    },
    ModalityWords {
        canonical: "OCT",
        phrase: "optical coherence tomography (OCT) image",
        keywords: &["optical coherence", "oct"],
    },
];

/// Finds the modality entry a metadata value names (case-insensitive, by canonical name or keyword).
pub fn modality(name: &str) -> Option<&'static ModalityWords> {
    let n = name.trim().to_ascii_lowercase();
    MODALITIES.iter().find(|m| {
        m.canonical.to_ascii_lowercase() == n || m.keywords.iter().any(|k| n == *k || (k.len() > 3 && n.contains(k)))
    })
}

/// Body regions; organs of different regions contradict each other.
pub const ORGAN_REGIONS: &[(&str, &[&str])] = &[
    (
        "head",
        &[
            "brain",
            "skull",
            "cerebral",
            "cerebellum",
            "retina",
            "retinal",
            "eye",
            "optic disc",
            "orbit",
        ],
    ),
    (
        "chest",
        &[
            "lung",
            "pulmonary",
            "heart",
            "cardiac",
            "mediastin",
            "pleura",
            "trachea",
            "thorax",
            "chest",
        ],
    ),
    ("breast", &["breast", "mammary"]),
    (
        "abdomen",
        &[
            "liver",
            "hepatic",
            "spleen",
            "splenic",
            "kidney",
            "renal",
            "pancrea",
            "gallbladder",
            "bowel",
            "colon",
            "stomach",
            "abdomen",
        ],
    ),
    ("skin", &["skin", "cutaneous", "dermal", "epiderm"]),
    ("pelvis", &["prostate", "bladder", "uterus", "ovary", "pelvis"]),
    (
        "musculoskeletal",
        &["knee", "hip", "shoulder", "spine", "vertebra", "bone"],
    ),
];

/// The body region an organ name belongs to.
pub fn organ_region(organ: &str) -> Option<&'static str> {
    let o = organ.trim().to_ascii_lowercase();
    ORGAN_REGIONS
        .iter()
        .find(|(_, words)| words.iter().any(|w| o.contains(w)))
        .map(|(r, _)| *r)
}

/// Whole-word (or word-prefix for stems such as "dermoscop") keyword search in lower-case text.
pub fn mentions(text_lower: &str, keyword: &str) -> bool {
    let bytes = text_lower.as_bytes();
    let mut from = 0;
    while let Some(pos) = text_lower[from..].find(keyword) {
        let start = from + pos;
        let end = start + keyword.len();
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        // Short keywords ("ct", "pet", "oct") must be whole words; longer ones may be stems.
        let after_ok = keyword.len() > 4 || end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_lookup_accepts_common_spellings() {
        assert_eq!(modality("ct").map(|m| m.canonical), Some("CT"));
        assert_eq!(modality("Magnetic Resonance").map(|m| m.canonical), Some("MRI"));
        assert_eq!(modality("X-ray").map(|m| m.canonical), Some("X-ray"));
        assert!(modality("smell-o-vision").is_none());
    }

    #[test]
    fn regions_and_mentions() {
        assert_eq!(organ_region("Brain"), Some("head"));
        assert_eq!(organ_region("breast"), Some("breast"));
        assert!(mentions("a ct image.", "ct"));
        assert!(!mentions("the defect is", "ct"));
        assert!(mentions("dermoscopic view", "dermoscop"));
    }
}
