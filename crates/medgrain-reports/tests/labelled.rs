//! Accuracy on the hand-labelled sentence set `data/labelled_sentences.jsonl` (written for this evaluation in the
//! style of CT-RATE reports: negation before and after the finding, lists, mixed present/absent findings,
//! uncertainty, laterality, sizes in mm and cm). Prints the figures reported in BENCHMARKS.md and checks floors.

use medgrain_reports::{ground_sentence, Ontology};

#[derive(Default, Debug)]
struct Score {
    ok: usize,
    n: usize,
}

impl Score {
    fn add(&mut self, ok: bool) {
        self.n += 1;
        self.ok += usize::from(ok);
    }
    fn rate(&self) -> f64 {
        if self.n == 0 {
            1.0
        } else {
            self.ok as f64 / self.n as f64
        }
    }
}

#[test]
fn labelled_sentences() {
    let ont = Ontology::embedded().unwrap();
    let data = include_str!("../data/labelled_sentences.jsonl");
    let (mut recall, mut precision, mut negation, mut uncertainty, mut anatomy, mut size) = (
        Score::default(),
        Score::default(),
        Score::default(),
        Score::default(),
        Score::default(),
        Score::default(),
    );
    let mut misses = Vec::new();
    let mut sentences = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        sentences += 1;
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let sentence = v["sentence"].as_str().unwrap();
        let g = ground_sentence(&ont, sentence);
        let mut used = vec![false; g.findings.len()];
        for want in v["findings"].as_array().unwrap() {
            let name = want["finding"].as_str().unwrap();
            let found = (0..g.findings.len()).find(|&i| !used[i] && g.findings[i].finding == name);
            recall.add(found.is_some());
            let Some(i) = found else {
                misses.push(format!("missed {name:?} in {sentence:?}"));
                continue;
            };
            used[i] = true;
            let f = &g.findings[i];
            let neg_ok = f.negated == want["negated"].as_bool().unwrap();
            negation.add(neg_ok);
            if !neg_ok {
                misses.push(format!("negation of {name:?} in {sentence:?}"));
            }
            let unc_ok = f.uncertain == want["uncertain"].as_bool().unwrap_or(false);
            uncertainty.add(unc_ok);
            if !unc_ok {
                misses.push(format!("uncertainty of {name:?} in {sentence:?}"));
            }
            if let Some(a) = want["anatomy"].as_str() {
                let ok = f.anatomy.as_deref() == Some(a);
                anatomy.add(ok);
                if !ok {
                    misses.push(format!("anatomy of {name:?}: {:?} ≠ {a:?} in {sentence:?}", f.anatomy));
                }
            }
            if let Some(mm) = want["size_mm"].as_f64() {
                let ok = f.size_mm.is_some_and(|s| (s - mm).abs() < 0.01);
                size.add(ok);
                if !ok {
                    misses.push(format!("size of {name:?}: {:?} ≠ {mm} in {sentence:?}", f.size_mm));
                }
            }
        }
        for (i, u) in used.iter().enumerate() {
            precision.add(*u);
            if !u {
                misses.push(format!("extra {:?} in {sentence:?}", g.findings[i].finding));
            }
        }
    }
    eprintln!("{sentences} sentences");
    eprintln!("finding recall {:.3} ({}/{})", recall.rate(), recall.ok, recall.n);
    eprintln!(
        "finding precision {:.3} ({}/{})",
        precision.rate(),
        precision.ok,
        precision.n
    );
    eprintln!(
        "negation accuracy {:.3} ({}/{})",
        negation.rate(),
        negation.ok,
        negation.n
    );
    eprintln!(
        "uncertainty accuracy {:.3} ({}/{})",
        uncertainty.rate(),
        uncertainty.ok,
        uncertainty.n
    );
    eprintln!("anatomy accuracy {:.3} ({}/{})", anatomy.rate(), anatomy.ok, anatomy.n);
    eprintln!("size accuracy {:.3} ({}/{})", size.rate(), size.ok, size.n);
    for m in &misses {
        eprintln!("  {m}");
    }
    assert!(sentences >= 300);
    assert!(recall.rate() >= 0.97, "recall {recall:?}");
    assert!(precision.rate() >= 0.95, "precision {precision:?}");
    assert!(negation.rate() >= 0.97, "negation {negation:?}");
    assert!(uncertainty.rate() >= 0.95, "uncertainty {uncertainty:?}");
    assert!(anatomy.rate() >= 0.95, "anatomy {anatomy:?}");
    assert!(size.rate() >= 0.97, "size {size:?}");
}
