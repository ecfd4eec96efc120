//! Grounded-report rows and rule-based VQA pairs from grounded sentences (RadGenome-Chest CT style).
//!
//! Rows: one per (sentence, anatomy node it reaches, and every ancestor of that node); a node is abnormal when a
//! non-negated finding sits at it or below it, negated when all its findings are negated — so a negated template
//! sentence never makes a region abnormal. VQA: abnormality (per region), presence (Yes for stated findings, No for
//! negated ones), location, size (from the report), case-level disorders; 20+ phrasings per type, chosen by a
//! hash of (volume, question); the "given region" variants name the region in the question.

use crate::{GroundedSentence, Ontology};

pub use medgrain_records::{GroundedRow, VqaRow};

/// A lesion measured on its mask: finding name, the anatomy node that contains it, long axis, mask file.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionFact {
    pub finding: String,
    pub anatomy: String,
    pub long_axis_mm: f64,
    pub mask_ref: String,
}

fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn under(node: &str, anatomy: &str) -> bool {
    anatomy == node || anatomy.starts_with(&format!("{node}/"))
}

/// Rows of one grounded sentence. `mask_of` maps an anatomy path to its mask file (relative), if any.
pub fn grounded_rows(g: &GroundedSentence, mask_of: &dyn Fn(&str) -> Option<String>) -> Vec<GroundedRow> {
    let mut nodes: Vec<String> = g
        .grounding
        .anatomy
        .iter()
        .flat_map(|a| Ontology::ancestors(a))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
        .into_iter()
        .map(|node| {
            let here: Vec<_> = g
                .grounding
                .findings
                .iter()
                .filter(|f| f.anatomy.as_deref().is_some_and(|a| under(&node, a)))
                .collect();
            let region = node.split('/').next().unwrap_or(&node).to_string();
            let mask_ref = mask_of(&node).or_else(|| mask_of(&region));
            GroundedRow {
                volume_id: g.volume_id.clone(),
                abnormal: here.iter().any(|f| !f.negated),
                negated: !here.is_empty() && here.iter().all(|f| f.negated),
                sentence: g.grounding.sentence.clone(),
                region,
                anatomy: node,
                mask_ref,
                split: None,
            }
        })
        .collect()
}

/// FNV-1a, for deterministic template choice and ids.
fn fnv(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

const ABNORMALITY: &[&str] = &[
    "Is there any abnormality in the {region}?",
    "Are there abnormal findings in the {region}?",
    "Does the {region} look abnormal?",
    "Is the {region} normal?",
    "Can any abnormality be seen in the {region}?",
    "Is anything abnormal visible in the {region}?",
    "Does this scan show an abnormality of the {region}?",
    "Are there pathological findings in the {region}?",
    "Is the {region} free of abnormalities?",
    "Do you see anything abnormal in the {region}?",
    "Is there evidence of disease in the {region}?",
    "What is abnormal in the {region}, if anything?",
    "Given the {region}, are there abnormal findings?",
    "Looking at the {region}, is anything abnormal?",
    "In the {region}, is there an abnormality?",
    "Is any pathology present in the {region}?",
    "Are abnormalities present in the {region} on this CT?",
    "Does the CT reveal an abnormality in the {region}?",
    "Is the appearance of the {region} abnormal?",
    "Would you call the {region} abnormal on this scan?",
];

const PRESENCE: &[&str] = &[
    "Is there {a} {finding}?",
    "Is {a} {finding} present?",
    "Does this CT show {a} {finding}?",
    "Can {a} {finding} be seen?",
    "Is {a} {finding} visible on this scan?",
    "Is there evidence of {a} {finding}?",
    "Does the patient have {a} {finding}?",
    "Is {a} {finding} identified?",
    "Do you see {a} {finding}?",
    "Is {a} {finding} observed?",
    "Is {a} {finding} detected in this study?",
    "Is {a} {finding} found?",
    "Given the {region}, is there {a} {finding}?",
    "In the {region}, is {a} {finding} present?",
    "Looking at the {region}, can {a} {finding} be seen?",
    "Within the {region}, is there {a} {finding}?",
    "Does the {region} show {a} {finding}?",
    "Is {a} {finding} seen in the {region}?",
    "Is {a} {finding} detected in the {region}?",
    "Does the {region} contain {a} {finding}?",
];

const LOCATION: &[&str] = &[
    "Where is the {finding} located?",
    "Where is the {finding}?",
    "In which structure is the {finding}?",
    "Which region contains the {finding}?",
    "Where can the {finding} be seen?",
    "What is the location of the {finding}?",
    "Where is the {finding} found?",
    "In which part of the body is the {finding}?",
    "Which anatomical region shows the {finding}?",
    "Where does the {finding} lie?",
    "Where is the {finding} situated?",
    "Localise the {finding}.",
    "Which organ or lobe holds the {finding}?",
    "Where in the scan is the {finding}?",
    "Indicate where the {finding} is.",
    "In what region is the {finding} observed?",
    "What anatomy does the {finding} involve?",
    "Which structure is affected by the {finding}?",
    "Where was the {finding} detected?",
    "Name the location of the {finding}.",
];

const SIZE: &[&str] = &[
    "What is the size of the {finding}?",
    "How large is the {finding}?",
    "How big is the {finding}?",
    "What does the {finding} measure?",
    "What is the diameter of the {finding}?",
    "How large is the {finding} in millimetres?",
    "Give the size of the {finding}.",
    "What size is the {finding}?",
    "How much does the {finding} measure?",
    "What is the largest dimension of the {finding}?",
    "Measure the {finding}.",
    "What is the reported size of the {finding}?",
    "Given the {region}, how large is the {finding}?",
    "In the {region}, what is the size of the {finding}?",
    "How big is the {finding} in the {region}?",
    "What does the {finding} in the {region} measure?",
    "What is the diameter of the {finding} in the {region}?",
    "Looking at the {region}, how large is the {finding}?",
    "Within the {region}, what size is the {finding}?",
    "How large does the {finding} in the {region} appear?",
];

const DISORDERS: &[&str] = &[
    "What abnormalities are seen in this CT?",
    "Which findings does this scan show?",
    "List the abnormal findings.",
    "What are the abnormal findings in this study?",
    "What disorders are present?",
    "What does this CT show?",
    "Which pathologies can be seen?",
    "What are the main findings?",
    "Summarise the abnormal findings.",
    "Which abnormalities does the patient have?",
    "What is wrong in this scan?",
    "Name the findings in this chest CT.",
    "What findings are reported for this case?",
    "Which diseases are visible?",
    "What abnormal structures are present?",
    "What are the positive findings?",
    "List all pathological findings of this case.",
    "Which lesions or disorders are present?",
    "What does the study reveal?",
    "What are the case-level findings?",
];

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Question–answer pairs for one volume from its grounded sentences (findings and impressions).
pub fn vqa_for_volume(
    volume_id: &str,
    sentences: &[GroundedSentence],
    mask_of: &dyn Fn(&str) -> Option<String>,
    lesions: &[LesionFact],
) -> Vec<VqaRow> {
    let mut out = Vec::new();
    let make =
        |qtype: &str, key: &str, templates: &[&str], fill: &[(&str, &str)], answer: String, anatomy: Option<String>| {
            let k = (fnv(&[volume_id, qtype, key]) % templates.len() as u64) as usize;
            let mut q = templates[k].to_string();
            for (name, value) in fill {
                q = q.replace(&format!("{{{name}}}"), value);
            }
            let mask_ref = anatomy.as_deref().and_then(mask_of);
            VqaRow {
                id: format!("{:016x}", fnv(&[volume_id, qtype, key, &q])),
                volume_id: volume_id.to_string(),
                anatomy,
                question_type: qtype.to_string(),
                question: q,
                answer,
                template_id: format!("{qtype}-{k:02}"),
                mask_ref,
                measured_mm: None,
                qc_flags: Vec::new(),
                split: None,
            }
        };
    let findings: Vec<&crate::Finding> = sentences
        .iter()
        .filter(|s| s.section == "findings")
        .flat_map(|s| s.grounding.findings.iter())
        .collect();
    // Presence, location, size — one question per (finding, anatomy) stated in the findings section; several
    // lesions of one kind in one place are answered together ("18 mm and 14 mm").
    let mut groups: std::collections::BTreeMap<(String, String, bool), Vec<Option<f64>>> = Default::default();
    for f in &findings {
        let anatomy = f.anatomy.clone().unwrap_or_else(|| "lung".into());
        groups
            .entry((f.finding.clone(), anatomy, f.negated))
            .or_default()
            .push(f.size_mm);
    }
    for ((finding, anatomy, negated), sizes) in &groups {
        let region = leaf(anatomy).to_string();
        let fill = [
            ("a", article(finding)),
            ("finding", finding.as_str()),
            ("region", region.as_str()),
        ];
        let key = format!("{finding}|{anatomy}");
        if *negated {
            // "No" only when the finding is stated nowhere in this report as present.
            if !groups.keys().any(|(f2, _, neg)| f2 == finding && !neg) {
                out.push(make(
                    "presence",
                    &key,
                    PRESENCE,
                    &fill,
                    "No".into(),
                    Some(anatomy.clone()),
                ));
            }
            continue;
        }
        out.push(make(
            "presence",
            &key,
            PRESENCE,
            &fill,
            "Yes".into(),
            Some(anatomy.clone()),
        ));
        out.push(make(
            "location",
            &key,
            LOCATION,
            &fill,
            region.clone(),
            Some(anatomy.clone()),
        ));
        let mut mm: Vec<f64> = sizes.iter().flatten().copied().collect();
        mm.sort_by(|a, b| b.total_cmp(a));
        mm.dedup();
        if !mm.is_empty() {
            let answer = mm
                .iter()
                .map(|v| format!("{v:.0} mm"))
                .collect::<Vec<_>>()
                .join(" and ");
            let mut row = make("size", &key, SIZE, &fill, answer, Some(anatomy.clone()));
            // Lesion masks of the same finding in the same place: the measured size, and a flag when the report's
            // size and the mask's disagree by more than 20 %.
            let mut measured: Vec<&LesionFact> = lesions
                .iter()
                .filter(|l| l.finding == *finding && l.anatomy == *anatomy)
                .collect();
            measured.sort_by(|a, b| b.long_axis_mm.total_cmp(&a.long_axis_mm));
            if let Some(first) = measured.first() {
                row.measured_mm = Some(first.long_axis_mm);
                row.mask_ref = Some(first.mask_ref.clone());
                let disagree = mm.iter().any(|r| {
                    let closest = measured
                        .iter()
                        .map(|l| l.long_axis_mm)
                        .min_by(|a, b| (a - r).abs().total_cmp(&(b - r).abs()))
                        .unwrap_or(*r);
                    (r - closest).abs() > 0.2 * closest
                });
                if disagree {
                    row.qc_flags.push("size_disagrees_with_mask".into());
                }
            }
            out.push(row);
        }
    }
    // Abnormality per top-level region mentioned.
    let mut regions: Vec<String> = sentences
        .iter()
        .filter(|s| s.section == "findings")
        .flat_map(|s| {
            s.grounding
                .anatomy
                .iter()
                .map(|a| a.split('/').next().unwrap_or(a).to_string())
        })
        .collect();
    regions.sort();
    regions.dedup();
    for region in regions {
        let bad: Vec<&str> = findings
            .iter()
            .filter(|f| !f.negated && f.anatomy.as_deref().is_some_and(|a| under(&region, a)))
            .map(|f| f.finding.as_str())
            .collect();
        let answer = if bad.is_empty() {
            "No".to_string()
        } else {
            format!("Yes: {}", dedup_join(&bad))
        };
        out.push(make(
            "abnormality",
            &region,
            ABNORMALITY,
            &[("region", region.as_str())],
            answer,
            Some(region.clone()),
        ));
    }
    // Case-level disorders.
    let present: Vec<&str> = findings
        .iter()
        .filter(|f| !f.negated)
        .map(|f| f.finding.as_str())
        .collect();
    let answer = if present.is_empty() {
        "No abnormality".to_string()
    } else {
        dedup_join(&present)
    };
    out.push(make("disorders", "case", DISORDERS, &[], answer, None));
    out
}

fn dedup_join(items: &[&str]) -> String {
    let mut v: Vec<&str> = items.to_vec();
    v.sort_unstable();
    v.dedup();
    v.join(", ")
}

/// Findings that are one kind of focal lesion for the purpose of matching a report to lesion masks: a radiologist's
/// "nodule" may be a mask's "mass", and "lesion" covers them all.
fn kind(finding: &str) -> &str {
    match finding {
        "nodule" | "mass" | "hypodense lesion" | "cyst" | "lesion" => "focal lesion",
        f => f,
    }
}

/// Whether two anatomy paths can name the same place: equal, or one inside the other.
fn compatible(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

fn side_of(path: &str) -> Option<&'static str> {
    if path.contains("right") {
        Some("right")
    } else if path.contains("left") {
        Some("left")
    } else {
        None
    }
}

/// Checks a report against the lesion masks of its volume (RadGPT-style). Sets each lesion's `reported`
/// ("present" | "negated" | "not mentioned") and `reported_size_mm`, and returns the contradictions as QC flags:
/// - `unreported_lesion:F@R` — a mask of finding F in region R that the report never states;
/// - `negated_but_masked:F@R` — the report negates F, yet a mask of it exists;
/// - `laterality_mismatch:F@R` — the report states F only on the other side;
/// - `location_mismatch:F@R` — the report states F only in another region;
/// - `size_mismatch:F@R` — the report's size and the mask's long axis differ by more than 20 %;
/// - `reported_without_mask:F@R` — (when `lesion_masks_given`) a stated, certain focal lesion (nodule, mass,
///   lesion, cyst) with no mask of its kind at that place. Effusions are not checked this way: lesion-mask
///   collections rarely segment them.
pub fn report_mask_flags(
    sentences: &[GroundedSentence],
    lesions: &mut [medgrain_records::LesionFindings],
    lesion_masks_given: bool,
) -> Vec<String> {
    let stated: Vec<&crate::Finding> = sentences.iter().flat_map(|s| s.grounding.findings.iter()).collect();
    let mut flags = Vec::new();
    for l in lesions.iter_mut() {
        let tag = format!("{}@{}", l.finding, leaf(&l.anatomy));
        let at = |f: &crate::Finding| f.anatomy.as_deref().is_none_or(|a| compatible(a, &l.anatomy));
        let same_kind = |f: &crate::Finding| kind(&f.finding) == kind(&l.finding);
        // Stated here (any word of its kind); stated only elsewhere (its own word); negated here or by name.
        let here: Vec<&&crate::Finding> = stated.iter().filter(|f| same_kind(f) && !f.negated && at(f)).collect();
        let present: Vec<&&crate::Finding> = stated.iter().filter(|f| f.finding == l.finding && !f.negated).collect();
        let negated = stated
            .iter()
            .any(|f| f.negated && (f.finding == l.finding || (same_kind(f) && at(f))));
        if !here.is_empty() {
            l.reported = "present".into();
            let measured = l.measurements.long_axis_mm;
            l.reported_size_mm = here.iter().filter_map(|f| f.size_mm).min_by(|a, b| {
                let d = |x: f64| measured.map_or(0.0, |m| (x - m).abs());
                d(*a).total_cmp(&d(*b))
            });
            if let (Some(r), Some(m)) = (l.reported_size_mm, measured) {
                if (m - r).abs() > 0.2 * r {
                    flags.push(format!("size_mismatch:{tag}"));
                }
            }
        } else if !present.is_empty() {
            l.reported = "present".into();
            let other_side = present.iter().any(|f| {
                let a = f.anatomy.as_deref().unwrap_or("");
                matches!((side_of(a), side_of(&l.anatomy)), (Some(x), Some(y)) if x != y)
            });
            flags.push(format!(
                "{}:{tag}",
                if other_side {
                    "laterality_mismatch"
                } else {
                    "location_mismatch"
                }
            ));
        } else if negated {
            l.reported = "negated".into();
            flags.push(format!("negated_but_masked:{tag}"));
        } else {
            l.reported = "not mentioned".into();
            flags.push(format!("unreported_lesion:{tag}"));
        }
    }
    if lesion_masks_given {
        for f in stated.iter().filter(|f| !f.negated && !f.uncertain) {
            let k = kind(&f.finding);
            if k != "focal lesion" {
                continue;
            }
            let place = f.anatomy.as_deref().unwrap_or("lung");
            let covered = lesions
                .iter()
                .any(|l| kind(&l.finding) == k && compatible(place, &l.anatomy));
            let tag = format!("reported_without_mask:{}@{}", f.finding, leaf(place));
            if !covered && !flags.contains(&tag) {
                flags.push(tag);
            }
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ground_sentence, GroundedSentence};

    fn gs(s: &str) -> GroundedSentence {
        GroundedSentence {
            volume_id: "v".into(),
            section: "findings".into(),
            grounding: ground_sentence(&Ontology::embedded().unwrap(), s),
        }
    }

    fn lesion(finding: &str, anatomy: &str, long: f64) -> medgrain_records::LesionFindings {
        medgrain_records::LesionFindings {
            finding: finding.into(),
            anatomy: anatomy.into(),
            measurements: medgrain_records::Measurements {
                long_axis_mm: Some(long),
                ..Default::default()
            },
            mask_ref: "m.nii.gz".into(),
            reported: String::new(),
            reported_size_mm: None,
        }
    }

    #[test]
    fn report_and_masks_are_reconciled() {
        const RUL: &str = "lung/right lung/right lung upper lobe";
        let report = |text: &[&str]| text.iter().map(|s| gs(s)).collect::<Vec<_>>();
        // Agreement: same place, size within 20 %.
        let mut l = vec![lesion("nodule", RUL, 11.0)];
        let f = report_mask_flags(
            &report(&["A 10 mm nodule is seen in the right upper lobe."]),
            &mut l,
            true,
        );
        assert!(f.is_empty(), "{f:?}");
        assert_eq!((l[0].reported.as_str(), l[0].reported_size_mm), ("present", Some(10.0)));
        // 10 mm said, 14 mm measured: 40 % apart.
        let mut l = vec![lesion("nodule", RUL, 14.0)];
        let f = report_mask_flags(
            &report(&["A 10 mm nodule is seen in the right upper lobe."]),
            &mut l,
            true,
        );
        assert_eq!(f, ["size_mismatch:nodule@right lung upper lobe"]);
        // Said on the other side.
        let mut l = vec![lesion("nodule", RUL, 10.0)];
        let f = report_mask_flags(&report(&["A nodule is seen in the left upper lobe."]), &mut l, true);
        assert!(
            f.contains(&"laterality_mismatch:nodule@right lung upper lobe".to_string()),
            "{f:?}"
        );
        assert!(
            f.contains(&"reported_without_mask:nodule@left lung upper lobe".to_string()),
            "{f:?}"
        );
        // Negated, and not mentioned at all.
        let mut l = vec![
            lesion("nodule", RUL, 10.0),
            lesion("hypodense lesion", "abdomen/liver", 20.0),
        ];
        let f = report_mask_flags(&report(&["No pulmonary nodule was detected."]), &mut l, true);
        assert_eq!(
            f,
            [
                "negated_but_masked:nodule@right lung upper lobe",
                "unreported_lesion:hypodense lesion@liver"
            ]
        );
        assert_eq!(
            (l[0].reported.as_str(), l[1].reported.as_str()),
            ("negated", "not mentioned")
        );
        // Without lesion masks, a stated nodule is not a contradiction.
        let f = report_mask_flags(&report(&["A nodule is seen in the right upper lobe."]), &mut [], false);
        assert!(f.is_empty());
    }

    #[test]
    fn template_sets_have_twenty_phrasings() {
        for t in [ABNORMALITY, PRESENCE, LOCATION, SIZE, DISORDERS] {
            assert!(t.len() >= 20);
        }
    }

    #[test]
    fn a_negated_sentence_never_makes_its_region_abnormal() {
        let rows = grounded_rows(&gs("Pericardial effusion-thickening was not observed."), &|_| None);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].anatomy, "heart");
        assert!(rows[0].negated && !rows[0].abnormal);
        let rows = grounded_rows(&gs("A 9 mm nodule is seen in the right upper lobe."), &|p| {
            (p == "lung/right lung/right lung upper lobe").then(|| "masks/v/lung_upper_lobe_right.nii.gz".to_string())
        });
        let paths: Vec<&str> = rows.iter().map(|r| r.anatomy.as_str()).collect();
        assert_eq!(
            paths,
            vec!["lung", "lung/right lung", "lung/right lung/right lung upper lobe"]
        );
        assert!(rows.iter().all(|r| r.abnormal && r.region == "lung"));
        assert_eq!(
            rows[2].mask_ref.as_deref(),
            Some("masks/v/lung_upper_lobe_right.nii.gz")
        );
    }

    #[test]
    fn vqa_answers_follow_the_report() {
        let s = vec![
            gs("No pleural effusion was observed."),
            gs("A 12 mm nodule is seen in the left lower lobe."),
        ];
        let lesion = LesionFact {
            finding: "nodule".into(),
            anatomy: "lung/left lung/left lung lower lobe".into(),
            long_axis_mm: 16.0,
            mask_ref: "lesions/v/01_nodule.nii.gz".into(),
        };
        let q = vqa_for_volume("v", &s, &|_| None, std::slice::from_ref(&lesion));
        let presence: Vec<(&str, &str)> = q
            .iter()
            .filter(|r| r.question_type == "presence")
            .map(|r| (r.question.as_str(), r.answer.as_str()))
            .collect();
        assert!(presence
            .iter()
            .any(|(q, a)| q.contains("pleural effusion") && *a == "No"));
        assert!(presence.iter().any(|(q, a)| q.contains("nodule") && *a == "Yes"));
        let size = q.iter().find(|r| r.question_type == "size").unwrap();
        assert_eq!(size.answer, "12 mm");
        assert_eq!(size.measured_mm, Some(16.0));
        assert_eq!(size.mask_ref.as_deref(), Some("lesions/v/01_nodule.nii.gz"));
        // 12 vs 16 mm: 25 % apart.
        assert_eq!(size.qc_flags, vec!["size_disagrees_with_mask".to_string()]);
        assert!(q
            .iter()
            .any(|r| r.question_type == "location" && r.answer == "left lung lower lobe"));
        let d = q.iter().find(|r| r.question_type == "disorders").unwrap();
        assert_eq!(d.answer, "nodule");
        assert!(q
            .iter()
            .any(|r| r.question_type == "abnormality" && r.anatomy.as_deref() == Some("pleura") && r.answer == "No"));
    }
}
