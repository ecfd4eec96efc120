//! Radiology report grounding (the text half of the RadGenome-Chest CT recipe): an anatomy ontology with report
//! phrasings ([`Ontology`], data in `data/anatomy.json`), radiology-aware sentence splitting ([`split_sentences`]),
//! and per-sentence extraction ([`ground_sentence`]) of findings with negation scoped to the right finding,
//! uncertainty, sizes in millimetres and the anatomy each finding is reported in.

pub mod context;
pub mod grounded;
pub mod text;
pub mod vocab;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use text::{parse_sizes, Match, PhraseSet};
pub use vocab::{TermKind, Vocabulary};

/// Errors of report processing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {reason}")]
    Input { path: String, reason: String },
    #[error("ontology: {0}")]
    Ontology(String),
}

#[derive(Debug, Clone, Deserialize)]
struct NodeSpec {
    path: String,
    #[serde(default)]
    also: Vec<String>,
    phrases: Vec<String>,
    #[serde(default)]
    totalseg: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct OntologySpec {
    nodes: Vec<NodeSpec>,
    /// Overrides of the findings table's default anatomy (`data/findings.tsv`).
    #[serde(default)]
    finding_anatomy: BTreeMap<String, String>,
}

/// One anatomy node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnatomyNode {
    /// "/"-joined path from the top region, e.g. "lung/right lung/right lung upper lobe".
    pub path: String,
    /// Further paths of the same node (a node may have two parents).
    pub also: Vec<String>,
    pub totalseg: Vec<String>,
}

impl AnatomyNode {
    pub fn depth(&self) -> usize {
        self.path.matches('/').count()
    }
}

/// The anatomy hierarchy with its phrasings.
#[derive(Debug, Clone)]
pub struct Ontology {
    pub nodes: Vec<AnatomyNode>,
    /// (lower-case phrase, node index), longest phrases first.
    phrases: Vec<(String, usize)>,
    phrase_set: PhraseSet,
    finding_anatomy: BTreeMap<String, String>,
}

impl Ontology {
    /// The ontology shipped with medgrain.
    pub fn embedded() -> Result<Self, ReportError> {
        Self::from_json(include_str!("../data/anatomy.json"))
    }

    pub fn from_json(text: &str) -> Result<Self, ReportError> {
        let spec: OntologySpec = serde_json::from_str(text).map_err(|e| ReportError::Ontology(e.to_string()))?;
        let mut nodes = Vec::new();
        let mut phrases = Vec::new();
        for (i, n) in spec.nodes.into_iter().enumerate() {
            for p in &n.phrases {
                phrases.push((p.to_lowercase(), i));
            }
            nodes.push(AnatomyNode {
                path: n.path,
                also: n.also,
                totalseg: n.totalseg,
            });
        }
        phrases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let list: Vec<(&str, usize)> = phrases.iter().map(|(p, i)| (p.as_str(), *i)).collect();
        let phrase_set = PhraseSet::new(&list);
        Ok(Ontology {
            nodes,
            phrases,
            phrase_set,
            finding_anatomy: {
                let mut m = spec.finding_anatomy;
                let vocab = Vocabulary::embedded();
                for f in vocab.findings() {
                    if let Some(a) = vocab.anatomy_of(f) {
                        m.entry(f.to_string()).or_insert_with(|| a.to_string());
                    }
                }
                m
            },
        })
    }

    /// The node with this path (primary or an alternative parent's path).
    pub fn node(&self, path: &str) -> Option<&AnatomyNode> {
        self.nodes
            .iter()
            .find(|n| n.path == path || n.also.iter().any(|a| a == path))
    }

    /// The node a mask class attaches to: the most specific node listing it as a TotalSegmentator class, else (SAT
    /// and other natural-language names such as "left kidney" or "Right lung upper lobe") the node whose name or
    /// report phrasing equals it, case and underscores aside.
    pub fn node_for_class(&self, class: &str) -> Option<&AnatomyNode> {
        self.nodes
            .iter()
            .filter(|n| n.totalseg.iter().any(|c| c == class))
            .max_by_key(|n| n.depth())
            .or_else(|| {
                let name = class.trim().to_lowercase().replace('_', " ");
                let by_leaf = self
                    .nodes
                    .iter()
                    .find(|n| n.path.rsplit('/').next() == Some(name.as_str()));
                by_leaf.or_else(|| {
                    self.phrases
                        .iter()
                        .find(|(p, _)| *p == name)
                        .map(|(_, i)| &self.nodes[*i])
                })
            })
    }

    /// Where a finding usually sits when the text names no place (e.g. "pleural effusion" → "pleura").
    pub fn usual_anatomy(&self, finding: &str) -> Option<&str> {
        self.finding_anatomy.get(finding).map(String::as_str)
    }

    /// Every ancestor path of `path`, itself included, most specific first.
    pub fn ancestors(path: &str) -> Vec<String> {
        let parts: Vec<&str> = path.split('/').collect();
        (1..=parts.len()).rev().map(|k| parts[..k].join("/")).collect()
    }

    fn anatomy_matches(&self, lower: &str) -> Vec<Match> {
        self.phrase_set.find(lower)
    }
}

/// One finding in a sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub finding: String,
    pub negated: bool,
    pub uncertain: bool,
    pub size_mm: Option<f64>,
    pub anatomy: Option<String>,
    /// "left" | "right" | "bilateral" when the text says so near the finding.
    pub laterality: Option<String>,
}

/// A grounded sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceGrounding {
    pub sentence: String,
    /// Anatomy paths the sentence speaks of, most specific first.
    pub anatomy: Vec<String>,
    pub findings: Vec<Finding>,
    pub abnormal: bool,
}

/// Splits report text into sentences: at `.`, `!`, `?` followed by a space and an upper-case letter or a digit,
/// and at line breaks — not inside decimals ("2.3 cm"), abbreviations ("e.g.", "i.e.", "vs.", "approx.", "Dr.")
/// or list markers.
pub fn split_sentences(text: &str) -> Vec<String> {
    text::split_sentences(text)
}

/// Grounds one sentence.
pub fn ground_sentence(ont: &Ontology, sentence: &str) -> SentenceGrounding {
    let lower = sentence.to_lowercase();
    let anatomy_hits = ont.anatomy_matches(&lower);
    let vocab = Vocabulary::embedded();
    let form = vocab::match_form(&lower);
    let mut finding_hits = vocab.find(&form);
    // A structure mention ("heart size", "the mediastinum", "valve") is a finding only in a sentence that names
    // no finding outright: "calcification of the aortic valve" is a calcification, "the heart is enlarged" is
    // cardiomegaly.
    if finding_hits
        .iter()
        .any(|h| vocab.entries[h.index].kind == TermKind::Finding)
    {
        finding_hits.retain(|h| vocab.entries[h.index].kind == TermKind::Finding);
    }
    // "pleural or pericardial effusion": one phrase, two findings.
    let pleural = vocab.entries.iter().position(|e| e.finding == "pleural effusion");
    for cue in [
        "pleural or pericardial effusion",
        "pleural and pericardial effusion",
        "pleural and pericardial effusions",
    ] {
        let mut from = 0;
        while let Some(p) = lower[from..].find(cue) {
            let start = from + p;
            if let Some(i) = pleural {
                finding_hits.push(Match {
                    start,
                    end: start + "pleural".len(),
                    index: i,
                });
            }
            from = start + cue.len();
        }
    }
    finding_hits.sort_by_key(|m| m.start);
    // Anatomy words inside a finding's own phrase ("pleural" in "pleural effusion") place that finding only.
    let anatomy_hits: Vec<Match> = anatomy_hits
        .into_iter()
        .filter(|a| !finding_hits.iter().any(|f| a.start >= f.start && a.end <= f.end))
        .collect();
    let sizes = parse_sizes(&lower);
    // Distance in bytes, plus a penalty when a clause break stands between (a place across "and a 4 mm nodule in
    // …" or a ";" belongs to the other statement).
    let gap = |a: (usize, usize), b: (usize, usize)| -> usize {
        let (lo, hi) = if a.0 >= b.1 { (b.1, a.0) } else { (a.1, b.0.max(a.1)) };
        let between = &lower[lo..hi];
        let crosses = [";", ",", " and ", " but ", " whereas ", " while "]
            .iter()
            .any(|b| between.contains(b));
        (hi - lo) + if crosses { 60 } else { 0 }
    };
    let cues = context::SentenceCues::scan(&lower);
    let mut findings: Vec<Finding> = Vec::new();
    for hit in &finding_hits {
        let entry = &vocab.entries[hit.index];
        let name = entry.finding.as_str();
        let others: Vec<(usize, usize)> = finding_hits
            .iter()
            .filter(|h| h.start != hit.start)
            .map(|h| (h.start, h.end))
            .collect();
        let ctx = cues.assess(hit.start, hit.end, entry.kind == TermKind::Structure, &others);
        let (negated, uncertain) = (ctx.negated, ctx.uncertain);
        let laterality = text::laterality_near(&lower, hit.start, hit.end);
        // The nearest anatomy mention in the sentence, else the finding's usual place (on the stated side).
        let nearest = anatomy_hits
            .iter()
            .min_by_key(|a| gap((a.start, a.end), (hit.start, hit.end)))
            .map(|a| ont.nodes[a.index].path.clone());
        let usual = || {
            let u = ont.finding_anatomy.get(name).cloned();
            match (u.as_deref(), laterality.as_deref()) {
                (Some("lung"), Some(side @ ("left" | "right"))) => Some(format!("lung/{side} lung")),
                _ => u,
            }
        };
        let anatomy = match (name, nearest) {
            // Where the finding's own phrase names its anatomy (pleural/pericardial/cardiac), keep it.
            (
                "pleural effusion"
                | "pneumothorax"
                | "pleural thickening"
                | "pericardial effusion"
                | "cardiomegaly"
                | "lymphadenopathy"
                | "hiatal hernia",
                _,
            ) => ont.finding_anatomy.get(name).cloned(),
            (_, Some(n)) => Some(n),
            (_, None) => usual(),
        };
        findings.push(Finding {
            finding: name.to_string(),
            negated,
            uncertain,
            size_mm: None,
            anatomy,
            laterality,
        });
    }
    // Each size belongs to one finding: the one it describes ("a 3 mm calcified nodule" → the head noun
    // "nodule"; "a nodule measuring 1.8 cm with ground-glass" → "nodule"), else the nearest.
    for s in &sizes {
        let measuring = finding_hits.iter().rposition(|h| {
            h.end <= s.start && {
                let between = lower[h.end..s.start].trim();
                [
                    "measuring",
                    "measures",
                    "measured",
                    "of",
                    "measuring up to",
                    "measuring approximately",
                    "up to",
                ]
                .iter()
                .any(|w| between == *w || between.ends_with(&format!(" {w}")) && !between.contains([',', ';']))
                    && between.split_whitespace().count() <= 4
            }
        });
        let owner = measuring.or_else(|| {
            finding_hits
                .iter()
                .enumerate()
                .min_by_key(|(_, h)| gap((s.start, s.end), (h.start, h.end)))
                .map(|(i, _)| i)
        });
        // A finding word right before another ("calcified nodule") is an adjective of it.
        let owner = owner.map(|mut i| {
            while i + 1 < finding_hits.len()
                && finding_hits[i].start > s.end
                && lower[finding_hits[i].end..finding_hits[i + 1].start].trim().is_empty()
            {
                i += 1;
            }
            i
        });
        if let Some(i) = owner {
            if findings[i].size_mm.is_none() {
                findings[i].size_mm = Some(s.mm);
            }
        }
    }
    // One finding stated twice the same way ("the heart is enlarged; cardiomegaly is present") is one finding.
    let mut kept: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        let same = |k: &Finding| {
            k.finding == f.finding && k.negated == f.negated && k.uncertain == f.uncertain && k.anatomy == f.anatomy
        };
        match kept.iter_mut().find(|k| same(k)) {
            Some(k) => {
                if k.size_mm.is_none() {
                    k.size_mm = f.size_mm;
                }
            }
            None => kept.push(f),
        }
    }
    let findings = kept;
    let mut anatomy: Vec<String> = anatomy_hits.iter().map(|a| ont.nodes[a.index].path.clone()).collect();
    for f in &findings {
        if let Some(a) = &f.anatomy {
            anatomy.push(a.clone());
        }
    }
    anatomy.sort_by(|a, b| b.matches('/').count().cmp(&a.matches('/').count()).then(a.cmp(b)));
    anatomy.dedup();
    let abnormal = findings.iter().any(|f| !f.negated);
    SentenceGrounding {
        sentence: sentence.trim().to_string(),
        anatomy,
        findings,
        abnormal,
    }
}

/// One sentence of one report section, as `report ground --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroundedSentence {
    pub volume_id: String,
    pub section: String,
    #[serde(flatten)]
    pub grounding: SentenceGrounding,
}

/// One row of a CT-RATE reports CSV. `clinical_information` and `technique` are kept as context (they are not
/// grounded: they describe the request and the acquisition, not the patient's anatomy).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReportRecord {
    pub volume_id: String,
    pub findings: String,
    pub impressions: String,
    pub clinical_information: Option<String>,
    pub technique: Option<String>,
}

impl ReportRecord {
    /// Every sentence of the findings and impressions sections, grounded.
    pub fn ground(&self, ont: &Ontology) -> Vec<GroundedSentence> {
        [("findings", &self.findings), ("impressions", &self.impressions)]
            .into_iter()
            .flat_map(|(section, text)| {
                split_sentences(text).into_iter().map(move |s| GroundedSentence {
                    volume_id: self.volume_id.clone(),
                    section: section.to_string(),
                    grounding: ground_sentence(ont, &s),
                })
            })
            .collect()
    }
}

/// Where the report text is in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportLayout {
    /// A CSV with an id column and a findings and/or an impression column (other columns ignored).
    Csv {
        id_column: String,
        findings_column: String,
        impression_column: String,
    },
    /// Plain text, one report per line (empty lines skipped); the id is `line-N` (1-based line number), the text is
    /// the findings section.
    Lines,
}

impl ReportLayout {
    /// CT-RATE's columns: `VolumeName`, `Findings_EN`, `Impressions_EN`.
    pub fn ct_rate() -> Self {
        ReportLayout::Csv {
            id_column: "VolumeName".into(),
            findings_column: "Findings_EN".into(),
            impression_column: "Impressions_EN".into(),
        }
    }
}

/// Reads a CT-RATE CSV (`VolumeName`, `Findings_EN`, `Impressions_EN`, optional `ClinicalInformation_EN`,
/// `Technique_EN`; other columns ignored), calling `emit` per report (streaming: one row in memory at a time).
/// Returns the number of reports read. A malformed row is an error naming its line.
pub fn read_reports(path: &std::path::Path, emit: &mut dyn FnMut(ReportRecord)) -> Result<usize, ReportError> {
    read_reports_with(path, &ReportLayout::ct_rate(), emit)
}

/// [`read_reports`] for any [`ReportLayout`]. A CSV without the id column, or with neither text column, is an
/// error naming the columns it has.
pub fn read_reports_with(
    path: &std::path::Path,
    layout: &ReportLayout,
    emit: &mut dyn FnMut(ReportRecord),
) -> Result<usize, ReportError> {
    let err = |reason: String| ReportError::Input {
        path: path.display().to_string(),
        reason,
    };
    let (id_column, findings_column, impression_column) = match layout {
        ReportLayout::Lines => {
            use std::io::BufRead;
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let mut n = 0;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| err(format!("line {}: {e}", i + 1)))?;
                if line.trim().is_empty() {
                    continue;
                }
                n += 1;
                emit(ReportRecord {
                    volume_id: format!("line-{}", i + 1),
                    findings: line.trim().to_string(),
                    ..Default::default()
                });
            }
            return Ok(n);
        }
        ReportLayout::Csv {
            id_column,
            findings_column,
            impression_column,
        } => (id_column, findings_column, impression_column),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| err(e.to_string()))?;
    let headers = rdr.headers().map_err(|e| err(e.to_string()))?.clone();
    let has = || {
        let names: Vec<String> = headers.iter().map(|h| format!("{:?}", h.trim())).collect();
        names.join(", ")
    };
    let col = |n: &str| headers.iter().position(|h| h.trim() == n);
    let vol = col(id_column).ok_or_else(|| err(format!("no {id_column:?} column (it has {})", has())))?;
    let (findings, impressions) = (col(findings_column), col(impression_column));
    if findings.is_none() && impressions.is_none() {
        return Err(err(format!(
            "neither {findings_column:?} nor {impression_column:?} is a column (it has {})",
            has()
        )));
    }
    let (clinical, technique) = (col("ClinicalInformation_EN"), col("Technique_EN"));
    let mut n = 0;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").trim().to_string();
        let opt = |c: Option<usize>| Some(get(c)).filter(|s| !s.is_empty());
        n += 1;
        emit(ReportRecord {
            volume_id: get(Some(vol)),
            findings: get(findings),
            impressions: get(impressions),
            clinical_information: opt(clinical),
            technique: opt(technique),
        });
    }
    Ok(n)
}

/// Reads a CT-RATE CSV and grounds every sentence, calling `emit` per sentence (streaming). Returns the number of
/// reports read.
pub fn ground_csv(
    ont: &Ontology,
    path: &std::path::Path,
    emit: &mut dyn FnMut(GroundedSentence),
) -> Result<usize, ReportError> {
    ground_reports(ont, path, &ReportLayout::ct_rate(), emit)
}

/// [`ground_csv`] for any [`ReportLayout`].
pub fn ground_reports(
    ont: &Ontology,
    path: &std::path::Path,
    layout: &ReportLayout,
    emit: &mut dyn FnMut(GroundedSentence),
) -> Result<usize, ReportError> {
    read_reports_with(path, layout, &mut |r| r.ground(ont).into_iter().for_each(&mut *emit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> SentenceGrounding {
        ground_sentence(&Ontology::embedded().unwrap(), s)
    }

    #[test]
    fn negation_is_scoped_to_its_finding() {
        let r = g("Pericardial effusion-thickening was not observed.");
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].finding, "pericardial effusion");
        assert!(r.findings[0].negated && !r.abnormal);
        let r = g("No pleural effusion was observed, but a 12 mm nodule is seen in the right upper lobe.");
        let eff = r.findings.iter().find(|f| f.finding == "pleural effusion").unwrap();
        let nod = r.findings.iter().find(|f| f.finding == "nodule").unwrap();
        assert!(eff.negated && !nod.negated && r.abnormal);
        assert_eq!(nod.size_mm, Some(12.0));
        assert_eq!(eff.size_mm, None);
        assert_eq!(nod.anatomy.as_deref(), Some("lung/right lung/right lung upper lobe"));
    }

    #[test]
    fn sizes_anatomy_and_uncertainty() {
        let r = g("A mass lesion measuring 3.8 x 2.1 cm is seen in the lower lobe of the left lung.");
        let m = &r.findings[0];
        assert_eq!((m.finding.as_str(), m.size_mm), ("mass", Some(38.0)));
        assert_eq!(m.anatomy.as_deref(), Some("lung/left lung/left lung lower lobe"));
        assert_eq!(r.anatomy[0], "lung/left lung/left lung lower lobe");
        let r = g("Malignancy cannot be excluded for the 15x12 mm nodule in the RUL.");
        let n = r.findings.iter().find(|f| f.finding == "nodule").unwrap();
        assert!(n.uncertain && !n.negated, "{n:?}");
        assert_eq!(n.size_mm, Some(15.0));
        let r = g("Trachea and both main bronchi are open.");
        assert!(!r.abnormal && r.anatomy.contains(&"trachea and bronchie".to_string()));
    }

    #[test]
    fn mask_classes_attach_to_the_most_specific_node() {
        let ont = Ontology::embedded().unwrap();
        let path = |c: &str| ont.node_for_class(c).map(|n| n.path.as_str());
        assert_eq!(path("rib_left_5"), Some("bone/rib/left rib/left rib 5"));
        assert_eq!(path("vertebrae_T12"), Some("bone/spine/thoracic spine/T12 vertebra"));
        assert_eq!(path("kidney_right"), Some("abdomen/kidney/right kidney"));
        // SAT-style names
        assert_eq!(path("left kidney"), Some("abdomen/kidney/left kidney"));
        assert_eq!(
            path("Right lung upper lobe"),
            Some("lung/right lung/right lung upper lobe")
        );
        assert_eq!(path("no such organ"), None);
        let r = g("Degenerative changes are seen in the T12 vertebra; the 5th rib on the left is fractured.");
        assert!(
            r.anatomy
                .contains(&"bone/spine/thoracic spine/T12 vertebra".to_string()),
            "{:?}",
            r.anatomy
        );
        assert!(
            r.anatomy.contains(&"bone/rib/left rib/left rib 5".to_string()),
            "{:?}",
            r.anatomy
        );
    }

    #[test]
    fn sentences_split_like_a_radiologist_writes() {
        let s = split_sentences(
            "A 2.3 cm mass, e.g. a tumor, is seen. No effusion.\nHeart vs. lungs: normal. 3. Liver normal.",
        );
        assert_eq!(
            s,
            vec![
                "A 2.3 cm mass, e.g. a tumor, is seen.",
                "No effusion.",
                "Heart vs. lungs: normal.",
                "3. Liver normal."
            ]
        );
    }
}
