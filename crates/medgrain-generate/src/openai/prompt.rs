//! The MedTrinity prompt (versioned), its JSON answer schema, and a robust parser for answers. The prompt gives the
//! model the coarse caption, the computed ROI facts (position, size, appearance, measurements) and the retrieved
//! passages, asks for the five sections plus one integrated description, and forbids mentioning boxes, outlines,
//! captions, annotations or the provided knowledge.

use super::visual::VisualPrompt;
use crate::SampleFacts;
use medgrain_records::Sections;
use serde_json::{json, Value};

/// Recorded as `generator.prompt_version`; bump whenever the text below changes.
pub const PROMPT_VERSION: &str = "medtrinity-v1";

const SYSTEM: &str = "You are an expert radiologist and medical imaging specialist. You write precise, factual \
descriptions of medical images for a training dataset. You never invent findings.";

const SECTION_KEYS: [&str; 5] = [
    "modality",
    "organ_detection",
    "roi_analysis",
    "lesion_texture",
    "local_global",
];

fn facts_block(f: &SampleFacts<'_>, v: &VisualPrompt) -> String {
    let mut s = String::new();
    s.push_str(&format!("- Coarse description: {}\n", f.coarse_caption));
    s.push_str(&format!(
        "- Modality: {}; organ or body part: {}; recorded diagnosis: {}\n",
        f.modality.unwrap_or("not recorded"),
        f.organ.unwrap_or("not recorded"),
        if f.diseases.is_empty() {
            "not recorded".to_string()
        } else {
            f.diseases.join(", ")
        }
    ));
    s.push_str(&format!("- Image as shown: {}×{} pixels\n", v.width, v.height));
    if f.rois.is_empty() {
        s.push_str("- No region of interest is marked.\n");
    }
    for (k, (roi, b)) in f.rois.iter().zip(&v.boxes).enumerate() {
        let side = match (roi.side.as_deref(), roi.side_frame.as_str()) {
            (Some(sd), "patient") => format!("on the patient's {sd} side"),
            (Some(sd), _) => format!("on the {sd} side of the image (patient orientation unknown)"),
            (None, _) => "near the vertical midline".to_string(),
        };
        s.push_str(&format!(
            "- Region of interest {} (outlined in {}): {} part of the image, {side}; spans x {}–{}, y {}–{} in the image as shown; {:.1}% of the image area",
            k + 1,
            v.colour,
            roi.position,
            b[0],
            b[2],
            b[1],
            b[3],
            roi.area_fraction * 100.0
        ));
        if let Some(a) = &roi.appearance {
            s.push_str(&format!(
                "; measured {} than its surroundings ({:.2} vs {:.2} on a 0–1 scale), {} texture, {} margin",
                a.contrast, a.mean_inside, a.mean_ring, a.texture, a.margin
            ));
        }
        if let Some(m) = &roi.measurements {
            if let (Some(l), Some(sh)) = (m.long_axis_mm, m.short_axis_mm) {
                s.push_str(&format!("; {l:.1} × {sh:.1} mm"));
            }
            if let Some(hu) = m.mean_hu {
                s.push_str(&format!("; mean {hu:.0} HU"));
            }
        }
        s.push_str(".\n");
    }
    s
}

/// The user's text part of the request.
pub fn user_text(f: &SampleFacts<'_>, v: &VisualPrompt) -> String {
    let mut t = String::from(
        "Describe this medical image. Facts computed from the image and its source record follow; treat them as \
         true and do not contradict them.\n",
    );
    t.push_str(&facts_block(f, v));
    if !f.knowledge.is_empty() {
        t.push_str("\nMedical background that may help (use it only where it applies to this image):\n");
        for (i, k) in f.knowledge.iter().enumerate() {
            t.push_str(&format!("[{}] {}\n", i + 1, k.text.trim()));
        }
    }
    t.push_str(
        "\nWrite the description in five parts:\n\
         1. modality: the imaging modality and, where visible, the view or sequence.\n\
         2. organ_detection: the organs and tissues visible and their approximate locations; any devices.\n\
         3. roi_analysis: where the region of interest lies relative to organs and reference structures, its size \
         and shape.\n\
         4. lesion_texture: the intensity, texture and margin of the region of interest and what is unusual in it.\n\
         5. local_global: how the region of interest relates to the surrounding regions and to the whole image, \
         and what this suggests.\n\
         Then write description: one integrated paragraph combining the five parts.\n\
         Rules: call the marked area \"the region of interest\"; never mention boxes, outlines, markings or their \
         colour, captions, annotations, the facts list or the background passages; state nothing the image and the \
         facts do not support.\n\
         Answer with only a JSON object with the string keys modality, organ_detection, roi_analysis, \
         lesion_texture, local_global, description.",
    );
    t
}

/// Chat messages for one sample.
pub fn messages(f: &SampleFacts<'_>, v: &VisualPrompt) -> Value {
    json!([
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [
            {"type": "text", "text": user_text(f, v)},
            {"type": "image_url", "image_url": {"url": v.data_url}}
        ]}
    ])
}

/// The `response_format` for a mode: "json_schema" (strict schema), "json_object", or "none".
pub fn response_format(mode: &str) -> Option<Value> {
    let mut props = serde_json::Map::new();
    for k in SECTION_KEYS.iter().chain(["description"].iter()) {
        props.insert(k.to_string(), json!({"type": "string"}));
    }
    let required: Vec<&str> = SECTION_KEYS.iter().copied().chain(["description"]).collect();
    match mode {
        "json_schema" => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": "medtrinity_description",
                "strict": true,
                "schema": {"type": "object", "properties": props, "required": required, "additionalProperties": false}
            }
        })),
        "json_object" => Some(json!({"type": "json_object"})),
        _ => None,
    }
}

/// The follow-up message of a repair attempt.
pub fn repair_message(truncated: bool) -> Value {
    let text = if truncated {
        "Your answer was cut off. Reply again, more briefly, with only the complete JSON object."
    } else {
        "Your answer was not a JSON object with the six string keys modality, organ_detection, roi_analysis, \
         lesion_texture, local_global, description. Reply again with only that JSON object."
    };
    json!({"role": "user", "content": text})
}

/// Parses a model's answer: tolerates code fences, text around the object, key case and spacing; the
/// description defaults to the sections joined when missing. Fails when a section is missing or empty.
pub fn parse_answer(text: &str) -> Result<(Sections, String), String> {
    let start = text.find('{').ok_or("no JSON object in the answer")?;
    let end = text.rfind('}').ok_or("no end of the JSON object in the answer")?;
    if end < start {
        return Err("no JSON object in the answer".into());
    }
    let v: Value = serde_json::from_str(&text[start..=end]).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("the answer is not a JSON object")?;
    let get = |key: &str| -> Option<String> {
        obj.iter()
            .find(|(k, _)| k.to_ascii_lowercase().replace([' ', '-'], "_") == key)
            .and_then(|(_, v)| v.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut parts = Vec::new();
    for k in SECTION_KEYS {
        parts.push(get(k).ok_or_else(|| format!("missing or empty key {k:?}"))?);
    }
    let sections = Sections {
        modality: parts[0].clone(),
        organ_detection: parts[1].clone(),
        roi_analysis: parts[2].clone(),
        lesion_texture: parts[3].clone(),
        local_global: parts[4].clone(),
    };
    let description = get("description").unwrap_or_else(|| parts.join(" "));
    Ok((sections, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fenced_and_loose_answers() {
        let a = "Sure!\n```json\n{\"Modality\": \"CT\", \"organ detection\": \"lung\", \"roi_analysis\": \"r\", \
                 \"lesion-texture\": \"t\", \"local_global\": \"g\"}\n```";
        let (s, d) = parse_answer(a).unwrap();
        assert_eq!(s.modality, "CT");
        assert_eq!(s.organ_detection, "lung");
        assert_eq!(s.lesion_texture, "t");
        assert_eq!(d, "CT lung r t g");
    }

    #[test]
    fn rejects_missing_sections_and_non_json() {
        assert!(parse_answer("no json here").is_err());
        assert!(parse_answer("{\"modality\": \"CT\"}")
            .unwrap_err()
            .contains("organ_detection"));
        assert!(parse_answer("{\"modality\": \"CT\", ").is_err());
    }

    #[test]
    fn schema_requires_all_keys() {
        let f = response_format("json_schema").unwrap();
        assert_eq!(f["json_schema"]["schema"]["required"].as_array().unwrap().len(), 6);
        assert!(response_format("none").is_none());
    }
}
