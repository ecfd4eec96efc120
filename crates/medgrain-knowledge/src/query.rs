//! Retrieval queries for triplets: built from a sample's modality, organ, diseases and findings, with a synonym
//! table so "MRI" also finds "magnetic resonance" passages, "nodule" finds "pulmonary nodule", and common
//! abbreviations are spelled out. The query is plain text; BM25 weighs its terms, the embedder reads it whole.

/// (term as it appears in metadata, expansions added to the query). Lower case.
pub const SYNONYMS: &[(&str, &[&str])] = &[
    ("mri", &["magnetic resonance imaging", "mr"]),
    ("mr", &["magnetic resonance imaging"]),
    ("ct", &["computed tomography"]),
    ("x-ray", &["radiograph", "radiography"]),
    ("cxr", &["chest radiograph"]),
    ("us", &["ultrasound", "sonography"]),
    ("ultrasound", &["sonography", "sonographic"]),
    ("pet", &["positron emission tomography"]),
    ("dermoscopy", &["dermatoscopy", "skin lesion"]),
    ("fundus photography", &["retinal photograph", "fundus"]),
    ("nodule", &["pulmonary nodule"]),
    ("mass", &["tumor", "neoplasm"]),
    ("tumor", &["mass", "neoplasm"]),
    ("lesion", &["focal lesion"]),
    ("hcc", &["hepatocellular carcinoma"]),
    ("copd", &["chronic obstructive pulmonary disease", "emphysema"]),
    ("ggo", &["ground-glass opacity"]),
    ("pe", &["pulmonary embolism"]),
    ("effusion", &["pleural effusion"]),
    ("lung", &["pulmonary"]),
    ("liver", &["hepatic"]),
    ("kidney", &["renal"]),
    ("brain", &["cerebral", "intracranial"]),
    ("breast", &["mammary"]),
    ("heart", &["cardiac"]),
    ("skin", &["cutaneous"]),
    ("retina", &["retinal"]),
];

/// The query for one sample: its facts, each followed by its synonyms (once each, in a fixed order).
pub fn build_query(modality: &str, organ: &str, diseases: &[String], findings: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !parts.contains(&t) {
            parts.push(t);
        }
    };
    let terms: Vec<&str> = [modality, organ]
        .into_iter()
        .chain(diseases.iter().map(String::as_str))
        .chain(findings.iter().map(String::as_str))
        .collect();
    for t in &terms {
        push(t);
        let lower = t.trim().to_lowercase();
        if let Some((_, syns)) = SYNONYMS.iter().find(|(k, _)| *k == lower) {
            syns.iter().for_each(|s| push(s));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_are_added_once() {
        let q = build_query("MRI", "brain", &["tumor".into()], &["mass".into()]);
        assert_eq!(
            q,
            "mri magnetic resonance imaging mr brain cerebral intracranial tumor mass neoplasm"
        );
    }
}
