//! Coarse captions from metadata, MedTrinity-style: modality, organ and recorded diagnosis in one sentence. The
//! caption states only what the source metadata states, so it can never contradict it.

use crate::{is_normal, vocab};

/// "Computed tomography (CT) image of the lung showing pulmonary nodule." and its variants for missing fields.
pub fn coarse_caption(modality: Option<&str>, organ: Option<&str>, diseases: &[String]) -> String {
    let what = match modality {
        Some(m) => match vocab::modality(m) {
            Some(w) => capitalise(w.phrase),
            None => format!("{m} image"),
        },
        None => "Medical image".to_string(),
    };
    let of = organ.map(|o| format!(" of the {o}")).unwrap_or_default();
    let abnormal: Vec<&str> = diseases.iter().map(String::as_str).filter(|d| !is_normal(d)).collect();
    let tail = if abnormal.is_empty() {
        if diseases.is_empty() {
            String::new()
        } else {
            " with no abnormality recorded".to_string()
        }
    } else {
        format!(" showing {}", join_and(&abnormal))
    };
    format!("{what}{of}{tail}.")
}

/// "a", "a and b", "a, b and c".
pub fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Upper-cases the first letter.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_follow_metadata() {
        assert_eq!(
            coarse_caption(Some("MRI"), Some("breast"), &["breast carcinoma".into()]),
            "Magnetic resonance (MR) image of the breast showing breast carcinoma."
        );
        assert_eq!(
            coarse_caption(Some("CT"), Some("lung"), &["normal".into()]),
            "Computed tomography (CT) image of the lung with no abnormality recorded."
        );
        assert_eq!(coarse_caption(None, None, &[]), "Medical image.");
        assert_eq!(
            coarse_caption(Some("Thermography"), None, &["a".into(), "b".into(), "c".into()]),
            "Thermography image showing a, b and c."
        );
    }
}
