//! Text metrics, each defined as the reference implementation computes it:
//! - BLEU as NLTK's `corpus_bleu` / `sentence_bleu` with no smoothing (NLTK's `method0`: an n-gram order with no
//!   match contributes `log(sys.float_info.min)`, a hypothesis with no unigram match scores 0);
//! - ROUGE-L as `rouge-score`'s `rougeL` F-measure with its default tokeniser (lower case, runs of `[a-z0-9]`);
//! - token precision / recall / F1 and "exact match" as LLaVA-Med's `evaluate_metrics.py` computes them.

use std::collections::HashMap;

/// `sys.float_info.min`: what NLTK's `method0` puts in place of a zero n-gram precision.
const FLOAT_MIN: f64 = f64::MIN_POSITIVE;

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// NLTK's `modified_precision` for one reference: clipped n-gram matches and `max(1, hypothesis n-grams)`.
fn modified_precision(reference: &[String], hypothesis: &[String], n: usize) -> (u64, u64) {
    let hyp = ngram_counts(hypothesis, n);
    let rf = ngram_counts(reference, n);
    let matched: usize = hyp.iter().map(|(g, c)| (*c).min(rf.get(g).copied().unwrap_or(0))).sum();
    let total: usize = hyp.values().sum();
    (matched as u64, total.max(1) as u64)
}

/// Corpus BLEU with one reference per hypothesis and the given n-gram weights (NLTK `corpus_bleu`, no smoothing).
pub fn corpus_bleu(pairs: &[(Vec<String>, Vec<String>)], weights: &[f64]) -> f64 {
    let orders = weights.len();
    let mut num = vec![0u64; orders + 1];
    let mut den = vec![0u64; orders + 1];
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (reference, hypothesis) in pairs {
        for n in 1..=orders {
            let (a, b) = modified_precision(reference, hypothesis, n);
            num[n] += a;
            den[n] += b;
        }
        hyp_len += hypothesis.len();
        ref_len += reference.len();
    }
    if num.get(1).copied().unwrap_or(0) == 0 {
        return 0.0;
    }
    let bp = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    let log_sum: f64 = (1..=orders)
        .map(|n| {
            let p = if num[n] == 0 {
                FLOAT_MIN
            } else {
                num[n] as f64 / den[n] as f64
            };
            weights[n - 1] * p.ln()
        })
        .sum();
    bp * log_sum.exp()
}

/// Sentence BLEU with one reference (NLTK `sentence_bleu`, no smoothing).
pub fn sentence_bleu(reference: &[String], hypothesis: &[String], weights: &[f64]) -> f64 {
    corpus_bleu(&[(reference.to_vec(), hypothesis.to_vec())], weights)
}

/// `rouge-score`'s default tokeniser: lower case, every run of characters outside `[a-z0-9]` is a separator.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { cur[j].max(prev[j + 1]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L F-measure of a prediction against a target (`rouge_score.rouge_scorer.RougeScorer(["rougeL"])`).
pub fn rouge_l(target: &str, prediction: &str) -> f64 {
    let (t, p) = (rouge_tokens(target), rouge_tokens(prediction));
    if t.is_empty() || p.is_empty() {
        return 0.0;
    }
    let l = lcs_len(&t, &p) as f64;
    let (precision, recall) = (l / p.len() as f64, l / t.len() as f64);
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn counts(tokens: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for t in tokens {
        *m.entry(t.as_str()).or_insert(0) += 1;
    }
    m
}

/// Token F1, precision and recall as LLaVA-Med's `calculate_f1score`: over the words of either answer, a word in
/// both adds its count *in the prediction* to TP, a word only in the prediction its count to FP, a word only in the
/// gold answer its count to FN; all three are 0 when either answer is empty or TP is 0.
pub fn token_prf(prediction: &[String], gold: &[String]) -> (f64, f64, f64) {
    let (p, g) = (counts(prediction), counts(gold));
    if p.is_empty() || g.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let tp: usize = p.iter().filter(|(w, _)| g.contains_key(*w)).map(|(_, c)| c).sum();
    let fp: usize = p.iter().filter(|(w, _)| !g.contains_key(*w)).map(|(_, c)| c).sum();
    let fn_: usize = g.iter().filter(|(w, _)| !p.contains_key(*w)).map(|(_, c)| c).sum();
    if tp == 0 {
        return (0.0, 0.0, 0.0);
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    (2.0 * precision * recall / (precision + recall), precision, recall)
}

/// "Exact match" as LLaVA-Med's `calculate_exactmatch` computes it: the number of distinct gold words found in the
/// prediction divided by the number of prediction words (0 for an empty prediction). It is 1 exactly when the
/// prediction is a permutation of distinct gold words covering all of them.
pub fn exact_match(prediction: &[String], gold: &[String]) -> f64 {
    if prediction.is_empty() {
        return 0.0;
    }
    let p = counts(prediction);
    let g = counts(gold);
    let found = g.keys().filter(|w| p.contains_key(*w)).count();
    found as f64 / prediction.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// Hand-derived: hypothesis "a b c d", reference "a b c e": p1 = 3/4, brevity 1 → BLEU-1 = 0.75;
    /// p2 = 2/3 → individual BLEU-2 = 2/3.
    #[test]
    fn bleu_by_hand() {
        let (r, h) = (t("a b c e"), t("a b c d"));
        assert!((sentence_bleu(&r, &h, &[1.0, 0.0, 0.0, 0.0]) - 0.75).abs() < 1e-12);
        assert!((sentence_bleu(&r, &h, &[0.0, 1.0, 0.0, 0.0]) - 2.0 / 3.0).abs() < 1e-12);
        // Shorter hypothesis: brevity penalty exp(1 - 4/2).
        let h2 = t("a b");
        assert!((sentence_bleu(&r, &h2, &[1.0, 0.0, 0.0, 0.0]) - (1.0f64 - 2.0).exp()).abs() < 1e-12);
        // No unigram match: 0.
        assert_eq!(sentence_bleu(&r, &t("x y"), &[1.0, 0.0, 0.0, 0.0]), 0.0);
        // No bigram match: log(float min) → about 2.2e-308, not a NaN.
        assert!(sentence_bleu(&r, &t("c a"), &[0.0, 1.0, 0.0, 0.0]) < 1e-300);
    }

    /// Hand-derived: LCS("the cat sat", "the cat ran") = 2 → P = R = 2/3.
    #[test]
    fn rouge_by_hand() {
        assert!((rouge_l("The cat sat.", "the cat ran") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(rouge_l("", "x"), 0.0);
        assert_eq!(rouge_tokens("Left-sided, 2.5cm"), vec!["left", "sided", "2", "5cm"]);
    }

    /// Hand-derived from the reference's counting: prediction "a a b", gold "a c" → TP = 2 (a counted twice, as in
    /// the prediction), FP = 1 (b), FN = 1 (c): P = 2/3, R = 2/3.
    #[test]
    fn token_prf_counts_as_the_reference() {
        let (f, p, r) = token_prf(&t("a a b"), &t("a c"));
        assert!((p - 2.0 / 3.0).abs() < 1e-12 && (r - 2.0 / 3.0).abs() < 1e-12 && (f - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(token_prf(&[], &t("a")), (0.0, 0.0, 0.0));
        // Exact match: distinct gold words found (1: a) over prediction words (3).
        assert!((exact_match(&t("a a b"), &t("a c")) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(exact_match(&t("left lung"), &t("left lung")), 1.0);
    }
}
