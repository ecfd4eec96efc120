//! Generated reports against reference reports, the label-based protocol of CheXpert / CT-RATE-style evaluations:
//! each report is turned into the set of findings it states as present by medgrain's own report grounding
//! (sentence splitting, the findings vocabulary, negation and uncertainty scoping, anatomy), and the sets are
//! compared report by report. TP: a finding present in both; FP: present only in the generated report; FN: present
//! only in the reference. Micro precision / recall / F1 sum the counts over all reports; per finding the same over
//! that finding; `macro_f1` is the mean F1 of the findings present in any reference or generated report.
//! `with_anatomy` repeats the micro scores with each finding paired with the anatomy it was grounded to.
//! An uncertain finding ("possible nodule") counts as present by default (CheXpert's "U-ones"), as absent with
//! [`Uncertain::Absent`]. Beside them, BLEU-4 (NLTK `corpus_bleu`, uniform weights, no smoothing) and ROUGE-L (mean
//! of `rouge-score`'s per-report F-measure), both on `rouge-score`'s tokens of the findings and impressions text.

use crate::text::{corpus_bleu, rouge_l, rouge_tokens};
use crate::{input_err, layout_err, prf, Result};
use medgrain_reports::{read_reports_with, Ontology, ReportLayout, ReportRecord};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// How an uncertain finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncertain {
    Present,
    Absent,
}

const REPORT_FIELDS: &str = "expected a CSV with CT-RATE's columns (\"VolumeName\" and \"Findings_EN\" and/or \
\"Impressions_EN\") or an id column (\"id\", \"report_id\", \"study_id\") and a text column (\"report\", \"text\", \
\"findings\")";

/// The columns of a reports CSV.
pub fn detect_layout(path: &Path) -> Result<ReportLayout> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| input_err(path, e))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| input_err(path, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let has = |n: &str| headers.iter().any(|h| h == n);
    if has("VolumeName") && (has("Findings_EN") || has("Impressions_EN")) {
        return Ok(ReportLayout::ct_rate());
    }
    let id = ["id", "report_id", "study_id"].into_iter().find(|n| has(n));
    let text = ["report", "text", "findings"].into_iter().find(|n| has(n));
    match (id, text) {
        (Some(id), Some(text)) => Ok(ReportLayout::Csv {
            id_column: id.into(),
            findings_column: text.into(),
            impression_column: if has("impression") { "impression" } else { "impressions" }.into(),
        }),
        _ => Err(layout_err(path, format!("{REPORT_FIELDS}; it has {headers:?}"))),
    }
}

struct Labeled {
    text: String,
    findings: BTreeSet<String>,
    with_anatomy: BTreeSet<String>,
}

fn label(ont: &Ontology, r: &ReportRecord, uncertain: Uncertain) -> Labeled {
    let mut findings = BTreeSet::new();
    let mut with_anatomy = BTreeSet::new();
    for s in r.ground(ont) {
        for f in &s.grounding.findings {
            if f.negated || (f.uncertain && uncertain == Uncertain::Absent) {
                continue;
            }
            findings.insert(f.finding.clone());
            with_anatomy.insert(format!("{}@{}", f.finding, f.anatomy.as_deref().unwrap_or("-")));
        }
    }
    Labeled {
        text: format!("{} {}", r.findings, r.impressions).trim().to_string(),
        findings,
        with_anatomy,
    }
}

/// Precision, recall, F1 and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Prf {
    fn from_counts(tp: u64, fp: u64, fn_: u64) -> Self {
        let (precision, recall, f1) = prf(tp, fp, fn_);
        Prf {
            precision,
            recall,
            f1,
            tp,
            fp,
            fn_,
        }
    }
}

/// The result of `eval report`.
#[derive(Debug, Serialize)]
pub struct ReportEval {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub macro_f1: f64,
    pub by_finding: BTreeMap<String, Prf>,
    pub with_anatomy: Prf,
    pub bleu4: f64,
    pub rouge_l: f64,
    /// Reference reports scored.
    pub reports: u64,
    /// Reference ids without a generated report (scored as empty reports).
    pub missing: Vec<String>,
    /// Generated reports whose id is not among the references (not scored).
    pub unmatched: Vec<String>,
    /// Ids given more than once in either file (the first is scored), as "pred:ID" / "gold:ID".
    pub duplicates: Vec<String>,
    /// Generated reports with no text.
    pub empty_predictions: Vec<String>,
}

impl ReportEval {
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.unmatched.is_empty() && self.duplicates.is_empty()
    }
}

fn read_all(
    path: &Path,
    ont: &Ontology,
    uncertain: Uncertain,
    side: &str,
    dups: &mut Vec<String>,
) -> Result<(Vec<String>, HashMap<String, Labeled>)> {
    let layout = detect_layout(path)?;
    let (mut order, mut map) = (Vec::new(), HashMap::new());
    read_reports_with(path, &layout, &mut |r| {
        if map.contains_key(&r.volume_id) {
            dups.push(format!("{side}:{}", r.volume_id));
            return;
        }
        order.push(r.volume_id.clone());
        map.insert(r.volume_id.clone(), label(ont, &r, uncertain));
    })
    .map_err(|e| input_err(path, e))?;
    Ok((order, map))
}

/// Scores generated reports (`pred`) against reference reports (`gold`).
pub fn evaluate(pred: &Path, gold: &Path, uncertain: Uncertain) -> Result<ReportEval> {
    let ont = Ontology::embedded().map_err(|e| input_err(gold, e))?;
    let mut duplicates = Vec::new();
    let (gold_order, gold_map) = read_all(gold, &ont, uncertain, "gold", &mut duplicates)?;
    let (pred_order, pred_map) = read_all(pred, &ont, uncertain, "pred", &mut duplicates)?;
    let empty = Labeled {
        text: String::new(),
        findings: BTreeSet::new(),
        with_anatomy: BTreeSet::new(),
    };
    let mut per: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let (mut atp, mut afp, mut afn) = (0, 0, 0);
    let mut missing = Vec::new();
    let mut pairs = Vec::new();
    let mut rouge_sum = 0.0;
    for id in &gold_order {
        let g = &gold_map[id];
        let p = match pred_map.get(id) {
            Some(p) => p,
            None => {
                missing.push(id.clone());
                &empty
            }
        };
        for f in g.findings.union(&p.findings) {
            let e = per.entry(f.clone()).or_default();
            match (p.findings.contains(f), g.findings.contains(f)) {
                (true, true) => {
                    e.0 += 1;
                    tp += 1
                }
                (true, false) => {
                    e.1 += 1;
                    fp += 1
                }
                _ => {
                    e.2 += 1;
                    fn_ += 1
                }
            }
        }
        atp += g.with_anatomy.intersection(&p.with_anatomy).count() as u64;
        afp += p.with_anatomy.difference(&g.with_anatomy).count() as u64;
        afn += g.with_anatomy.difference(&p.with_anatomy).count() as u64;
        pairs.push((rouge_tokens(&g.text), rouge_tokens(&p.text)));
        rouge_sum += rouge_l(&g.text, &p.text);
    }
    let gold_ids: HashSet<&String> = gold_order.iter().collect();
    let unmatched = pred_order.iter().filter(|id| !gold_ids.contains(id)).cloned().collect();
    let empty_predictions = pred_order
        .iter()
        .filter(|id| pred_map[*id].text.is_empty())
        .cloned()
        .collect();
    let by_finding: BTreeMap<String, Prf> = per
        .into_iter()
        .map(|(k, (a, b, c))| (k, Prf::from_counts(a, b, c)))
        .collect();
    let macro_f1 = if by_finding.is_empty() {
        0.0
    } else {
        by_finding.values().map(|p| p.f1).sum::<f64>() / by_finding.len() as f64
    };
    let micro = Prf::from_counts(tp, fp, fn_);
    let n = gold_order.len();
    Ok(ReportEval {
        precision: micro.precision,
        recall: micro.recall,
        f1: micro.f1,
        tp,
        fp,
        fn_,
        macro_f1,
        by_finding,
        with_anatomy: Prf::from_counts(atp, afp, afn),
        bleu4: corpus_bleu(&pairs, &[0.25; 4]),
        rouge_l: if n == 0 { 0.0 } else { rouge_sum / n as f64 },
        reports: n as u64,
        missing,
        unmatched,
        duplicates,
        empty_predictions,
    })
}
