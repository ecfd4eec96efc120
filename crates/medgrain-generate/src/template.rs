//! The offline, deterministic description writer. It writes the five MedTrinity sections from the facts alone —
//! metadata, measured ROI geometry and appearance — choosing among phrasings by a hash of the sample id so that
//! the corpus reads varied yet every run writes the same text. No statement appears that the facts do not support.

use crate::caption::{capitalise, join_and};
use crate::{is_normal, vocab, GenerateError, Generated, Generator, SampleFacts};
use medgrain_records::{GeneratorInfo, RoiRecord, Sections};
use medgrain_roi::position::size_words;

/// Template set version, recorded as `generator.prompt_version`.
pub const TEMPLATE_VERSION: &str = "template-v1";

/// At most this many ROIs are described one by one; the rest are counted.
const MAX_DESCRIBED: usize = 4;

#[derive(Debug, Default, Clone, Copy)]
pub struct TemplateWriter;

/// FNV-1a over the sample id and a section tag: picks a phrasing, stable across runs and platforms.
fn variant(id: &str, tag: &str, n: usize) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes().chain([0u8]).chain(tag.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

fn ordinal(k: usize) -> &'static str {
    ["first", "second", "third", "fourth", "fifth"]
        .get(k)
        .copied()
        .unwrap_or("next")
}

fn count_word(n: usize) -> String {
    match n {
        1 => "one".into(),
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        5 => "five".into(),
        n => n.to_string(),
    }
}

fn roi_name(k: usize, n: usize) -> String {
    if n == 1 {
        "the region of interest".into()
    } else {
        format!("the {} region", ordinal(k))
    }
}

fn side_clause(roi: &RoiRecord) -> String {
    match (roi.side.as_deref(), roi.side_frame.as_str()) {
        (Some(s), "patient") => format!(", on the patient's {s} side"),
        (Some(s), _) => format!(", on the {s} side of the image"),
        (None, _) => ", close to the vertical midline of the image".into(),
    }
}

impl TemplateWriter {
    fn modality_section(&self, f: &SampleFacts<'_>) -> String {
        let phrase = f.modality.map(|m| {
            vocab::modality(m)
                .map(|w| w.phrase.to_string())
                .unwrap_or(format!("{m} image"))
        });
        let colour = if f.colour { "colour" } else { "greyscale" };
        let dims = format!("{}×{} pixels, {colour}", f.width, f.height);
        match (phrase, f.organ) {
            (Some(p), Some(o)) => match variant(f.id, "modality", 3) {
                0 => format!("The image is a {p} of the {o} ({dims})."),
                1 => format!("This is a {p} depicting the {o} ({dims})."),
                _ => format!("A {p} of the {o} is shown ({dims})."),
            },
            (Some(p), None) => format!("The image is a {p} ({dims})."),
            (None, Some(o)) => format!("The image shows the {o}; its imaging modality is not recorded ({dims})."),
            (None, None) => format!("The imaging modality and the body part are not recorded ({dims})."),
        }
    }

    fn organ_section(&self, f: &SampleFacts<'_>) -> String {
        let organ = f.organ.unwrap_or("imaged anatomy");
        let share = f.foreground_fraction.map(|p| (p * 100.0).round() as i64);
        let first = match variant(f.id, "organ", 3) {
            0 => format!("The {organ} is the structure under examination."),
            1 => format!("The examined structure is the {organ}."),
            _ => format!("The examination concerns the {organ}."),
        };
        match share {
            Some(p) => format!("{first} Tissue occupies about {p}% of the frame; the rest is background."),
            None => first,
        }
    }

    fn roi_section(&self, f: &SampleFacts<'_>) -> String {
        let n = f.rois.len();
        if n == 0 {
            return match variant(f.id, "roi0", 2) {
                0 => "No region of interest is marked in this image.".into(),
                _ => "The image has no marked region of interest.".into(),
            };
        }
        let mut out = if n == 1 {
            String::new()
        } else {
            format!("There are {} regions of interest. ", count_word(n))
        };
        for (k, roi) in f.rois.iter().take(MAX_DESCRIBED).enumerate() {
            let w = roi.bbox_xyxy[2] - roi.bbox_xyxy[0];
            let h = roi.bbox_xyxy[3] - roi.bbox_xyxy[1];
            let pct = roi.area_fraction * 100.0;
            let size = size_words(roi.area_fraction);
            let name = capitalise(&roi_name(k, n));
            let s = match variant(f.id, &format!("roi{k}"), 3) {
                0 => format!(
                    "{name} lies in the {} part of the image{}, spanning about {w}×{h} pixels ({pct:.1}% of the image area, {size}).",
                    roi.position,
                    side_clause(roi)
                ),
                1 => format!(
                    "{name} is a {size} area of about {w}×{h} pixels ({pct:.1}% of the image) located in the {} region{}.",
                    roi.position,
                    side_clause(roi)
                ),
                _ => format!(
                    "{name}, {size} at {pct:.1}% of the image area ({w}×{h} pixels), sits in the {} part of the frame{}.",
                    roi.position,
                    side_clause(roi)
                ),
            };
            out.push_str(&s);
            out.push(' ');
            if let Some(p) = &roi.patient_position {
                out.push_str(&format!("Relative to the centre of the scanned volume it is {p}. "));
            }
            if let Some(o) = &roi.organ_context {
                match o.relation.as_str() {
                    "inside" | "enclosed" => out.push_str(&format!("It lies within the {}", o.organ)),
                    _ => out.push_str(&format!("It borders the {}", o.organ)),
                }
                let ct = f.modality.is_some_and(|m| m.eq_ignore_ascii_case("ct"));
                let roi_hu = roi.measurements.as_ref().and_then(|m| m.mean_hu);
                match (ct, &o.attenuation_vs_organ, roi_hu, o.organ_mean_hu) {
                    (true, Some(a), Some(r), Some(org)) => out.push_str(&format!(
                        " and is {a} relative to it (mean {r:.0} HU against {org:.0} HU for the {}). ",
                        o.organ
                    )),
                    _ => out.push_str(". "),
                }
            }
            if let Some(words) = roi.measurements.as_ref().and_then(|m| outline_words(m, roi.area_px)) {
                out.push_str(&format!("Its outline is {words}. "));
            }
            if let Some(m) = &roi.measurements {
                if let (Some(l), Some(sh)) = (m.long_axis_mm, m.short_axis_mm) {
                    out.push_str(&format!("It measures about {l:.0} × {sh:.0} mm in this plane"));
                    if let Some(hu) = m.mean_hu {
                        out.push_str(&format!(", with a mean attenuation of {hu:.0} HU"));
                    }
                    out.push_str(". ");
                }
            }
        }
        if n > MAX_DESCRIBED {
            out.push_str(&format!("{} further regions are smaller. ", n - MAX_DESCRIBED));
        }
        out.trim_end().to_string()
    }

    fn texture_section(&self, f: &SampleFacts<'_>) -> String {
        if f.rois.is_empty() {
            return "With no region of interest marked, no focal texture is described.".into();
        }
        let n = f.rois.len();
        let word = if f.colour { "brightness" } else { "intensity" };
        let mut out = String::new();
        for (k, roi) in f.rois.iter().take(MAX_DESCRIBED).enumerate() {
            let name = capitalise(&roi_name(k, n));
            let Some(a) = &roi.appearance else {
                out.push_str(&format!("{name} could not be measured against its surroundings. "));
                continue;
            };
            let contrast = match a.contrast.as_str() {
                "brighter" => "appears brighter than the surrounding tissue".to_string(),
                "darker" => "appears darker than the surrounding tissue".to_string(),
                _ => format!("has a {word} similar to the surrounding tissue"),
            };
            let margin = match a.margin.as_str() {
                "well-defined" => "a well-defined margin",
                "ill-defined" => "an ill-defined, gradual margin",
                _ => "a margin that is hard to delineate",
            };
            let s = match variant(f.id, &format!("tex{k}"), 2) {
                0 => format!(
                    "{name} {contrast} (mean {word} {:.2} against {:.2} around it, on a 0–1 scale), with {} internal texture and {margin}.",
                    a.mean_inside, a.mean_ring, a.texture
                ),
                _ => format!(
                    "{name} {contrast} ({:.2} versus {:.2} on a 0–1 scale); its internal texture is {} and it has {margin}.",
                    a.mean_inside, a.mean_ring, a.texture
                ),
            };
            out.push_str(&s);
            out.push(' ');
        }
        out.trim_end().to_string()
    }

    fn local_global_section(&self, f: &SampleFacts<'_>) -> String {
        let abnormal: Vec<&str> = f
            .diseases
            .iter()
            .map(String::as_str)
            .filter(|d| !is_normal(d))
            .collect();
        let diagnosis = if abnormal.is_empty() {
            if f.diseases.is_empty() {
                None
            } else {
                Some("no abnormality".to_string())
            }
        } else {
            Some(join_and(&abnormal))
        };
        let organ = f.organ.unwrap_or("imaged anatomy");
        let n = f.rois.len();
        let mut out = String::new();
        match (n, &diagnosis) {
            (0, Some(_)) if abnormal.is_empty() => out.push_str(&format!(
                "No abnormality is recorded; without a focal region, the description concerns the {organ} as a whole."
            )),
            (0, Some(d)) => out.push_str(&format!(
                "The recorded diagnosis is {d}; without a focal region, the description concerns the {organ} as a whole."
            )),
            (0, None) => out.push_str(&format!("No focal region is marked, so the description concerns the {organ} as a whole.")),
            (_, Some(d)) if !abnormal.is_empty() => {
                let regions = if n == 1 { "The region of interest marks" } else { "The regions of interest mark" };
                let lesion = if n == 1 { "the lesion" } else { "the lesions" };
                out.push_str(&format!("{regions} {lesion} of the recorded diagnosis, {d}, within the {organ}."))
            }
            _ if n == 1 => out.push_str(&format!("The marked region lies within the {organ}.")),
            _ => out.push_str(&format!("The marked regions lie within the {organ}.")),
        }
        // Relations between ROIs, in image terms.
        let described: Vec<&RoiRecord> = f.rois.iter().take(MAX_DESCRIBED).collect();
        for k in 1..described.len() {
            let (a, b) = (described[0], described[k]);
            let dx = (b.centroid_xy[0] - a.centroid_xy[0]) as f64;
            let dy = (b.centroid_xy[1] - a.centroid_xy[1]) as f64;
            let dist = (dx * dx + dy * dy).sqrt();
            let horiz = if dx.abs() < 0.1 * f.width as f64 {
                None
            } else if dx < 0.0 {
                Some("left")
            } else {
                Some("right")
            };
            let vert = if dy.abs() < 0.1 * f.height as f64 {
                None
            } else if dy < 0.0 {
                Some("above")
            } else {
                Some("below")
            };
            let dir = match (vert, horiz) {
                (Some(v), Some(h)) => format!("{v} and to the {h} of"),
                (Some(v), None) => v.to_string(),
                (None, Some(h)) => format!("to the {h} of"),
                (None, None) => "next to".into(),
            };
            out.push_str(&format!(
                " The {} region lies {dir} the first, about {} pixels away (image frame).",
                ordinal(k),
                dist.round() as i64
            ));
        }
        if let Some((id, sentence)) = supporting_knowledge(f, &abnormal) {
            out.push_str(&format!(" Reference knowledge ({id}): {sentence}"));
        }
        if n == 1 {
            let roi = &f.rois[0];
            let largest = roi.area_fraction;
            out.push_str(&format!(
                " It is {} relative to the whole image, covering {:.1}% of it.",
                size_words(largest),
                largest * 100.0
            ));
        }
        out
    }
}

/// A sentence of a retrieved passage that supports the local–global statement: it names one of the recorded
/// diagnoses, and the QC finds nothing in it (no finding the record lacks, no other body region). Passages are tried best first; none qualifies → no knowledge sentence.
fn supporting_knowledge(f: &SampleFacts<'_>, abnormal: &[&str]) -> Option<(String, String)> {
    if abnormal.is_empty() {
        return None;
    }
    for k in f.knowledge {
        for sentence in medgrain_reports::split_sentences(&k.text) {
            let lower = sentence.to_lowercase();
            let names_diagnosis = abnormal.iter().any(|d| {
                let d = d.to_lowercase();
                let forms = [d.clone(), format!("{d}s"), format!("{d}es")];
                let list: Vec<(&str, usize)> = forms.iter().map(|f| (f.as_str(), 0)).collect();
                !medgrain_reports::text::find_phrases(&lower, &list).is_empty()
            });
            // The QC's own rules judge the sentence, so a quoted passage never fails QC.
            let consistent = crate::qc::unsupported_findings(f, &lower).is_empty()
                && crate::qc::organ_contradictions(f, &lower).is_empty();
            if names_diagnosis && consistent {
                let id = k.id.split('#').next().unwrap_or(&k.id).to_string();
                return Some((id, sentence));
            }
        }
    }
    None
}

impl Generator for TemplateWriter {
    fn kind(&self) -> &'static str {
        "template"
    }

    fn prompt_version(&self) -> &str {
        TEMPLATE_VERSION
    }

    fn generate(&self, f: &SampleFacts<'_>) -> Result<Generated, GenerateError> {
        let sections = Sections {
            modality: self.modality_section(f),
            organ_detection: self.organ_section(f),
            roi_analysis: self.roi_section(f),
            lesion_texture: self.texture_section(f),
            local_global: self.local_global_section(f),
        };
        let description = sections.named().iter().map(|(_, s)| *s).collect::<Vec<_>>().join(" ");
        Ok(Generated {
            sections,
            description,
            generator: GeneratorInfo {
                kind: "template".into(),
                model: None,
                prompt_version: TEMPLATE_VERSION.into(),
                prompt_tokens: None,
                completion_tokens: None,
                finish_reason: Some("stop".into()),
            },
        })
    }
}

/// Outline words from measured shape (regions of at least 30 pixels; smaller ones are too coarse to call):
/// eccentricity < 0.6 round, < 0.9 oval, else elongated; solidity < 0.85 adds an irregular, lobulated contour,
/// ≥ 0.95 with circularity ≥ 0.8 a smooth one.
fn outline_words(m: &medgrain_records::Measurements, area_px: i64) -> Option<String> {
    let (e, s) = (m.eccentricity?, m.solidity?);
    if area_px < 30 {
        return None;
    }
    let form = if e < 0.6 {
        "roughly round"
    } else if e < 0.9 {
        "oval"
    } else {
        "elongated"
    };
    let contour = if s < 0.85 {
        ", with an irregular, lobulated contour"
    } else if s >= 0.95 && m.circularity.is_some_and(|c| c >= 0.8) {
        " and smooth"
    } else {
        ""
    };
    Some(format!("{form}{contour}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc;
    use medgrain_records::{Appearance, MaskRle};

    fn roi(x: f32, side: Option<&str>, contrast: &str, texture: &str, margin: &str) -> RoiRecord {
        RoiRecord {
            label: "nodule".into(),
            label_id: Some(1),
            bbox_xyxy: [10, 10, 20, 18],
            mask_rle: MaskRle {
                size: [100, 100],
                counts: String::new(),
            },
            area_px: 64,
            area_fraction: 0.0064,
            centroid_xy: [x, 14.0],
            position: "left, upper".into(),
            side: side.map(str::to_string),
            side_frame: "image".into(),
            origin: "annotation".into(),
            score: None,
            measurements: None,
            appearance: Some(Appearance {
                mean_inside: 0.7,
                mean_ring: 0.3,
                std_inside: 0.01,
                edge_sharpness: 0.9,
                contrast: contrast.into(),
                texture: texture.into(),
                margin: margin.into(),
            }),
            organ_context: None,
            patient_position: None,
        }
    }

    fn facts<'a>(rois: &'a [RoiRecord], diseases: &'a [String]) -> SampleFacts<'a> {
        SampleFacts {
            id: "sample-1",
            modality: Some("CT"),
            organ: Some("lung"),
            diseases,
            width: 100,
            height: 100,
            colour: false,
            foreground_fraction: Some(0.7),
            rois,
            knowledge: &[],
            coarse_caption: "",
            image: None,
        }
    }

    #[test]
    fn text_states_the_measured_facts() {
        let rois = [roi(15.0, Some("left"), "brighter", "heterogeneous", "ill-defined")];
        let d = vec!["pulmonary nodule".to_string()];
        let g = TemplateWriter.generate(&facts(&rois, &d)).unwrap();
        let s = &g.sections;
        assert!(s.modality.contains("computed tomography") && s.modality.contains("lung"));
        assert!(s.roi_analysis.contains("left, upper") && s.roi_analysis.contains("10×8 pixels"));
        assert!(s.roi_analysis.contains("left side of the image"));
        assert!(s.lesion_texture.contains("brighter") && s.lesion_texture.contains("heterogeneous"));
        assert!(s.lesion_texture.contains("ill-defined"));
        assert!(s.local_global.contains("pulmonary nodule"));
        assert!(!s.lesion_texture.contains("darker") && !s.lesion_texture.contains("homogeneous internal"));
        let q = qc::check(&facts(&rois, &d), &g.description, &g.sections);
        assert!(q.passed, "{:?}", q.flags);
    }

    #[test]
    fn same_id_same_text_and_no_roi_case() {
        let d = vec!["normal".to_string()];
        let a = TemplateWriter.generate(&facts(&[], &d)).unwrap();
        let b = TemplateWriter.generate(&facts(&[], &d)).unwrap();
        assert_eq!(a, b);
        assert!(a.sections.roi_analysis.contains("no marked region") || a.sections.roi_analysis.contains("No region"));
        assert!(
            a.sections.local_global.contains("No abnormality is recorded"),
            "{}",
            a.sections.local_global
        );
    }

    #[test]
    fn several_rois_are_related() {
        let rois = [
            roi(15.0, Some("left"), "darker", "homogeneous", "well-defined"),
            roi(80.0, Some("right"), "darker", "homogeneous", "well-defined"),
        ];
        let d = vec!["hepatic cyst".to_string()];
        let g = TemplateWriter.generate(&facts(&rois, &d)).unwrap();
        assert!(g
            .sections
            .roi_analysis
            .starts_with("There are two regions of interest."));
        assert!(
            g.sections.local_global.contains("to the right of the first"),
            "{}",
            g.sections.local_global
        );
    }
}
