//! What the pipeline takes from a DICOM header beyond pixels and geometry: the split keys (PatientID,
//! StudyInstanceUID) and the study facts the coarse caption states (body part, descriptions, protocol, contrast
//! agent, age, sex). With de-identification on for the source, the header goes through the PS3.15 Basic Profile
//! (Clean Descriptors and Retain Patient Characteristics options) before anything reads it, and a file whose pixels
//! may hold burned-in text is refused.

use crate::config::{LoadedConfig, SourceConfig};
use crate::PipelineError;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_object::InMemDicomObject;
use medgrain_deid::describe::Descriptors;
use medgrain_deid::{Deidentifier, Keys, Options};

/// The de-identifier a source with `deid` on uses; `None` when it is off. A missing secret is a config error
/// naming the variable.
pub fn source_deidentifier(cfg: &SourceConfig, loaded: &LoadedConfig) -> Result<Option<Deidentifier>, PipelineError> {
    if !loaded.source_deid(cfg) {
        return Ok(None);
    }
    let keys = Keys::from_env().map_err(|e| PipelineError::Config {
        path: loaded.path.clone(),
        reason: format!(
            "source {:?} de-identifies its DICOM headers (deid {}): {e}",
            cfg.name,
            if cfg.deid.is_some() {
                "= true"
            } else {
                "is on by default: the generator sends to a server off this machine; set deid = false for a source \
                 without DICOM"
            }
        ),
    })?;
    Ok(Some(Deidentifier::new(
        keys,
        Options {
            modified_dates: false,
            patient_characteristics: true,
            clean_descriptors: true,
        },
        false,
    )))
}

fn vr_of(tag: (u16, u16)) -> VR {
    match tag {
        (0x0020, 0x000D) | (0x0008, 0x0016) => VR::UI,
        (0x0008, 0x0060) | (0x0028, 0x0301) | (0x0018, 0x0015) | (0x0010, 0x0040) => VR::CS,
        (0x0010, 0x1010) => VR::AS,
        _ => VR::LO,
    }
}

/// Split keys and the caption's study facts of one header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderFacts {
    pub keys: Vec<(String, String)>,
    pub facts: Option<String>,
}

/// Reads `header` ([`medgrain_imaging::dicom::HEADER_TAGS`] values), through `deid` when given. `Err` is the reason
/// a de-identifying source refuses the file (pixels that may hold identifying text).
pub fn header_facts(header: &[((u16, u16), String)], deid: Option<&Deidentifier>) -> Result<HeaderFacts, String> {
    let obj = InMemDicomObject::from_element_iter(
        header
            .iter()
            .map(|(t, v)| DataElement::new(Tag(t.0, t.1), vr_of(*t), PrimitiveValue::from(v.as_str()))),
    );
    let obj = match deid {
        Some(d) => {
            let sop = header
                .iter()
                .find(|(t, _)| *t == (0x0008, 0x0016))
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            if let Some(r) = medgrain_deid::burned_in_risk(&obj, sop) {
                return Err(format!(
                    "not sent anywhere: the pixels may hold identifying text ({r}); de-identification excludes such \
                     files (deid = false for the source keeps them, for a model on this machine only)"
                ));
            }
            d.data_set(obj).0
        }
        None => obj,
    };
    let text = |t: Tag| {
        obj.element(t)
            .ok()
            .and_then(|e| {
                e.to_str()
                    .ok()
                    .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
            })
            .filter(|s| !s.is_empty())
    };
    let mut keys = Vec::new();
    for (name, tag) in [
        ("PatientID", Tag(0x0010, 0x0020)),
        ("StudyInstanceUID", Tag(0x0020, 0x000D)),
    ] {
        if let Some(v) = text(tag) {
            keys.push((name.to_string(), v));
        }
    }
    let d = Descriptors::from_object(&obj, deid.is_some());
    Ok(HeaderFacts {
        keys,
        facts: facts_sentence(&d, deid.is_some()),
    })
}

fn age_phrase(a: &str, clean: bool) -> Option<String> {
    if a == "090Y" && clean {
        return Some("90 years or older".into());
    }
    let n: u32 = a.get(..3)?.parse().ok()?;
    let unit = match a.get(3..)? {
        "Y" => "year",
        "M" => "month",
        "W" => "week",
        "D" => "day",
        _ => return None,
    };
    Some(format!("{n}-{unit}-old"))
}

/// "DICOM header: study "CT CHEST W/O CONTRAST"; body part CHEST; patient 45-year-old male." or `None`.
/// `clean`: the header went through de-identification (ages above 89 read as 090Y).
pub fn facts_sentence(d: &Descriptors, clean: bool) -> Option<String> {
    let mut parts = Vec::new();
    let quoted = |label: &str, v: &Option<String>| v.as_ref().map(|v| format!("{label} \"{v}\""));
    parts.extend(quoted("study", &d.study_description));
    parts.extend(quoted("series", &d.series_description));
    parts.extend(quoted("protocol", &d.protocol_name));
    parts.extend(d.body_part.as_ref().map(|v| format!("body part {v}")));
    parts.extend(d.contrast_agent.as_ref().map(|v| format!("contrast agent {v}")));
    let age = d.age.as_deref().and_then(|a| age_phrase(a, clean));
    let sex = d.sex.as_deref().map(|s| match s {
        "M" => "male",
        "F" => "female",
        _ => "sex other",
    });
    match (age, sex) {
        (Some(a), Some(s)) => parts.push(format!("patient {a} {s}")),
        (Some(a), None) => parts.push(format!("patient {a}")),
        (None, Some(s)) => parts.push(format!("patient {s}")),
        (None, None) => {}
    }
    (!parts.is_empty()).then(|| format!("DICOM header: {}.", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<((u16, u16), String)> {
        vec![
            ((0x0010, 0x0020), "MRN-4471-ZEBULON".into()),
            ((0x0020, 0x000D), "1.2.3.4.5".into()),
            ((0x0008, 0x0016), "1.2.840.10008.5.1.4.1.1.2".into()),
            ((0x0008, 0x0060), "CT".into()),
            ((0x0018, 0x0015), "CHEST".into()),
            ((0x0008, 0x1030), "CT CHEST W/O CONTRAST for Zebulon Quixote".into()),
            ((0x0010, 0x1010), "093Y".into()),
            ((0x0010, 0x0040), "F".into()),
        ]
    }

    #[test]
    fn without_deid_the_header_is_taken_as_it_is() {
        let f = header_facts(&header(), None).unwrap();
        assert_eq!(f.keys[0], ("PatientID".to_string(), "MRN-4471-ZEBULON".to_string()));
        assert_eq!(
            f.facts.as_deref(),
            Some(
                "DICOM header: study \"CT CHEST W/O CONTRAST for Zebulon Quixote\"; body part CHEST; patient \
                 93-year-old female."
            )
        );
    }

    #[test]
    fn with_deid_identifying_values_never_come_out() {
        let d = Deidentifier::new(
            Keys::new(b"0123456789abcdef-secret").unwrap(),
            Options {
                modified_dates: false,
                patient_characteristics: true,
                clean_descriptors: true,
            },
            false,
        );
        let f = header_facts(&header(), Some(&d)).unwrap();
        let all = format!("{f:?}");
        for planted in ["ZEBULON", "Zebulon", "Quixote", "4471", "1.2.3.4.5", "093Y"] {
            assert!(!all.contains(planted), "{planted} in {all}");
        }
        assert_eq!(
            f.facts.as_deref(),
            Some("DICOM header: study \"CT CHEST W/O CONTRAST\"; body part CHEST; patient 90 years or older female.")
        );
        // keyed pseudonyms: the same patient gives the same key
        assert_eq!(f.keys, header_facts(&header(), Some(&d)).unwrap().keys);
        // pixels that may hold text are refused
        let mut us = header();
        us[3].1 = "US".into();
        assert!(header_facts(&us, Some(&d)).unwrap_err().contains("modality US"));
        assert!(header_facts(&us, None).is_ok());
    }
}
