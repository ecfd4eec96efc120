//! Dataset statistics (`stats.json`): counts per modality, organ, disease, source, ROI label and failure stage,
//! QC flags, and histograms of ROIs per sample, ROI area fraction and description length. Stats of shards merge
//! by addition, so a resumed run reports the same figures as an uninterrupted one.

use medgrain_records::{ErrorRecord, TripletRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A histogram over fixed bin edges: `counts[i]` counts values in `[edges[i], edges[i+1])`; the last bin is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

impl Histogram {
    pub fn new(edges: &[f64]) -> Self {
        Histogram {
            edges: edges.to_vec(),
            counts: vec![0; edges.len()],
        }
    }

    pub fn add(&mut self, v: f64) {
        let i = self.edges.iter().rposition(|&e| v >= e).unwrap_or(0);
        self.counts[i] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        if self.edges == other.edges {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a += b;
            }
        }
    }
}

const AREA_EDGES: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
const WORD_EDGES: &[f64] = &[0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 1000.0];
const ROI_COUNT_EDGES: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub samples: u64,
    pub rows: u64,
    pub failed: u64,
    pub rois: u64,
    pub qc_failed: u64,
    /// Tokens reported by the generator over all rows (0 for the template writer).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Set when prices are configured: tokens × price per million.
    pub estimated_cost_usd: Option<f64>,
    pub by_modality: BTreeMap<String, u64>,
    pub by_organ: BTreeMap<String, u64>,
    pub by_disease: BTreeMap<String, u64>,
    pub by_source: BTreeMap<String, u64>,
    /// Rows per split (empty without a `[splits]` table).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_split: BTreeMap<String, u64>,
    pub by_roi_label: BTreeMap<String, u64>,
    pub failures_by_stage: BTreeMap<String, u64>,
    pub qc_flags: BTreeMap<String, u64>,
    pub rois_per_sample: Histogram,
    pub roi_area_fraction: Histogram,
    pub description_words: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            samples: 0,
            rows: 0,
            failed: 0,
            rois: 0,
            qc_failed: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            estimated_cost_usd: None,
            by_modality: BTreeMap::new(),
            by_organ: BTreeMap::new(),
            by_disease: BTreeMap::new(),
            by_source: BTreeMap::new(),
            by_split: BTreeMap::new(),
            by_roi_label: BTreeMap::new(),
            failures_by_stage: BTreeMap::new(),
            qc_flags: BTreeMap::new(),
            rois_per_sample: Histogram::new(ROI_COUNT_EDGES),
            roi_area_fraction: Histogram::new(AREA_EDGES),
            description_words: Histogram::new(WORD_EDGES),
        }
    }
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    *m.entry(k.to_string()).or_insert(0) += 1;
}

fn merge_map(a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
    for (k, v) in b {
        *a.entry(k.clone()).or_insert(0) += v;
    }
}

impl Stats {
    pub fn add_row(&mut self, r: &TripletRecord) {
        self.samples += 1;
        self.rows += 1;
        bump(&mut self.by_modality, r.modality.as_deref().unwrap_or("unknown"));
        bump(&mut self.by_organ, r.organ.as_deref().unwrap_or("unknown"));
        bump(&mut self.by_source, &r.source);
        if let Some(s) = &r.split {
            bump(&mut self.by_split, s);
        }
        if r.diseases.is_empty() {
            bump(&mut self.by_disease, "unknown");
        }
        for d in &r.diseases {
            bump(&mut self.by_disease, d);
        }
        self.rois += r.rois.len() as u64;
        self.rois_per_sample.add(r.rois.len() as f64);
        for roi in &r.rois {
            self.roi_area_fraction.add(roi.area_fraction);
            bump(&mut self.by_roi_label, &roi.label);
        }
        self.description_words
            .add(r.description.split_whitespace().count() as f64);
        self.prompt_tokens += r.generator.prompt_tokens.unwrap_or(0).max(0) as u64;
        self.completion_tokens += r.generator.completion_tokens.unwrap_or(0).max(0) as u64;
        if !r.qc.passed {
            self.qc_failed += 1;
        }
        for f in &r.qc.flags {
            bump(&mut self.qc_flags, f.split(':').next().unwrap_or(f));
        }
    }

    pub fn add_error(&mut self, e: &ErrorRecord) {
        self.samples += 1;
        self.failed += 1;
        bump(&mut self.failures_by_stage, &e.stage);
    }

    pub fn merge(&mut self, o: &Stats) {
        self.samples += o.samples;
        self.rows += o.rows;
        self.failed += o.failed;
        self.rois += o.rois;
        self.qc_failed += o.qc_failed;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        merge_map(&mut self.by_modality, &o.by_modality);
        merge_map(&mut self.by_split, &o.by_split);
        merge_map(&mut self.by_organ, &o.by_organ);
        merge_map(&mut self.by_disease, &o.by_disease);
        merge_map(&mut self.by_source, &o.by_source);
        merge_map(&mut self.by_roi_label, &o.by_roi_label);
        merge_map(&mut self.failures_by_stage, &o.failures_by_stage);
        merge_map(&mut self.qc_flags, &o.qc_flags);
        self.rois_per_sample.merge(&o.rois_per_sample);
        self.roi_area_fraction.merge(&o.roi_area_fraction);
        self.description_words.merge(&o.description_words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_half_open() {
        let mut h = Histogram::new(&[0.0, 1.0, 2.0]);
        for v in [0.0, 0.5, 1.0, 1.99, 2.0, 50.0] {
            h.add(v);
        }
        assert_eq!(h.counts, vec![2, 2, 2]);
    }

    #[test]
    fn merge_adds() {
        let mut a = Stats::default();
        let e = ErrorRecord {
            source: "s".into(),
            source_path: "p".into(),
            stage: "mask".into(),
            error: "x".into(),
        };
        a.add_error(&e);
        let mut b = Stats::default();
        b.add_error(&e);
        a.merge(&b);
        assert_eq!(a.failed, 2);
        assert_eq!(a.failures_by_stage["mask"], 2);
    }
}
