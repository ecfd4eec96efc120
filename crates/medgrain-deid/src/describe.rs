//! Descriptive facts of a DICOM header for captions (body part, study / series description, protocol, contrast
//! agent, age, sex), and the Clean Descriptors cleaning used when de-identification is on: only words of a fixed
//! imaging vocabulary (`data/descriptor_words.txt`) survive, so identifying text in a descriptor cannot.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;
use std::collections::HashSet;
use std::sync::OnceLock;

const WORDS: &str = include_str!("../data/descriptor_words.txt");

fn words() -> &'static HashSet<String> {
    static W: OnceLock<HashSet<String>> = OnceLock::new();
    W.get_or_init(|| {
        WORDS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .map(|w| w.to_ascii_lowercase())
            .collect()
    })
}

/// Clean Descriptors: keeps the vocabulary words (and numbers of at most three digits) of `text`, in order, and
/// drops the rest. Tokens are split on anything but letters, digits, `+`, `-` and `/`.
pub fn clean_descriptor(text: &str) -> String {
    let w = words();
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '+' | '-' | '/')))
        .filter(|t| !t.is_empty())
        .filter(|t| {
            let l = t.to_lowercase();
            w.contains(&l) || (t.len() <= 3 && t.chars().all(|c| c.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Patient's Age kept by the Retain Patient Characteristics option, with ages above 89 years grouped as `090Y`
/// (HIPAA Safe Harbor's bound; read "90 years or older").
pub fn clean_age(age: &str) -> Option<String> {
    let a = age.trim_end_matches(['\0', ' ']).trim();
    if a.len() != 4 {
        return None;
    }
    let n: u32 = a[..3].parse().ok()?;
    let unit = &a[3..];
    match unit {
        "Y" if n >= 90 => Some("090Y".into()),
        "Y" | "M" | "W" | "D" => Some(format!("{n:03}{unit}")),
        _ => None,
    }
}

/// What a header says about the study, for the coarse caption.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Descriptors {
    pub body_part: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub protocol_name: Option<String>,
    pub contrast_agent: Option<String>,
    /// `045Y` etc.
    pub age: Option<String>,
    /// `M`, `F` or `O`.
    pub sex: Option<String>,
}

impl Descriptors {
    pub fn is_empty(&self) -> bool {
        *self == Descriptors::default()
    }

    /// From a header. With `clean`, every free-text value goes through [`clean_descriptor`] and the age through
    /// [`clean_age`] first (de-identification on); without it the values are taken as they are, trimmed.
    pub fn from_object(obj: &InMemDicomObject, clean: bool) -> Descriptors {
        let raw = |tag: Tag| -> Option<String> {
            let e = obj.element(tag).ok()?;
            let s = e.to_str().ok()?.trim_end_matches(['\0', ' ']).trim().replace('\\', " ");
            (!s.is_empty()).then_some(s)
        };
        let text = |tag: Tag| -> Option<String> {
            let s = raw(tag)?;
            let s = if clean { clean_descriptor(&s) } else { s };
            (!s.is_empty()).then_some(s)
        };
        let age = raw(Tag(0x0010, 0x1010)).and_then(|a| if clean { clean_age(&a) } else { Some(a) });
        let sex = raw(Tag(0x0010, 0x0040)).filter(|s| matches!(s.as_str(), "M" | "F" | "O"));
        Descriptors {
            body_part: text(Tag(0x0018, 0x0015)),
            study_description: text(Tag(0x0008, 0x1030)),
            series_description: text(Tag(0x0008, 0x103E)),
            protocol_name: text(Tag(0x0018, 0x1030)),
            contrast_agent: text(Tag(0x0018, 0x0010)),
            age,
            sex,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_keep_only_vocabulary() {
        assert_eq!(clean_descriptor("CT CHEST W/O CONTRAST"), "CT CHEST W/O CONTRAST");
        assert_eq!(
            clean_descriptor("SMITH^JOHN CT ABDOMEN St. Mary's Hospital"),
            "CT ABDOMEN"
        );
        assert_eq!(clean_descriptor("Thorax 1.0 B70f MRN 12345678"), "Thorax 1 0");
        assert_eq!(clean_descriptor("Dr Jones protocol"), "protocol");
        assert_eq!(clean_descriptor("Smith"), "");
    }

    #[test]
    fn ages_over_89_are_grouped() {
        assert_eq!(clean_age("045Y").as_deref(), Some("045Y"));
        assert_eq!(clean_age("093Y").as_deref(), Some("090Y"));
        assert_eq!(clean_age("006M").as_deref(), Some("006M"));
        assert_eq!(clean_age("forty"), None);
    }
}
