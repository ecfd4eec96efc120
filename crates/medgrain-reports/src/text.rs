//! Text primitives for radiology reports: phrase matching at word boundaries (longest first, no overlaps),
//! sentence splitting, size parsing, and the negation / uncertainty / laterality cues around a finding.
//! All positions are byte offsets into lower-case text.

/// A phrase found in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    /// The caller's index of the phrase's entry.
    pub index: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// A set of phrases searched in one pass (Aho–Corasick over all phrases), with [`find_phrases`]' semantics.
/// A phrase may be a word prefix ([`PhraseSet::with_prefixes`]): it then matches any word that starts with it,
/// and the match covers the whole word ("atelecta" → "atelectatic").
#[derive(Debug, Clone)]
pub struct PhraseSet {
    automaton: aho_corasick::AhoCorasick,
    /// (caller's index, prefix) per pattern.
    patterns: Vec<(usize, bool)>,
}

impl PhraseSet {
    pub fn new(phrases: &[(&str, usize)]) -> PhraseSet {
        let list: Vec<(&str, usize, bool)> = phrases.iter().map(|&(p, i)| (p, i, false)).collect();
        Self::with_prefixes(&list)
    }

    /// Phrases with a flag: `true` makes the phrase a word prefix.
    pub fn with_prefixes(phrases: &[(&str, usize, bool)]) -> PhraseSet {
        let kept: Vec<&(&str, usize, bool)> = phrases.iter().filter(|p| !p.0.is_empty()).collect();
        // Building fails only on absurd sizes; an empty automaton then matches nothing.
        let automaton = aho_corasick::AhoCorasick::new(kept.iter().map(|p| p.0))
            .or_else(|_| aho_corasick::AhoCorasick::new(Vec::<&str>::new()))
            .unwrap_or_else(|_| unreachable!("an empty automaton always builds"));
        PhraseSet {
            automaton,
            patterns: kept.iter().map(|p| (p.1, p.2)).collect(),
        }
    }

    /// Non-overlapping occurrences at word boundaries, preferring the longest phrase (then the earliest
    /// position); sorted by position.
    pub fn find(&self, text: &str) -> Vec<Match> {
        let bytes = text.as_bytes();
        // (start, end, pattern id): on equal spans the phrase given first wins.
        let mut cands: Vec<(usize, usize, usize)> = self
            .automaton
            .find_overlapping_iter(text)
            .filter_map(|m| {
                let (s, mut e) = (m.start(), m.end());
                let (_, prefix) = self.patterns[m.pattern().as_usize()];
                if s > 0 && is_word(bytes[s - 1]) {
                    return None;
                }
                if prefix {
                    while e < bytes.len() && is_word(bytes[e]) {
                        e += 1;
                    }
                } else if e < bytes.len() && is_word(bytes[e]) {
                    return None;
                }
                Some((s, e, m.pattern().as_usize()))
            })
            .collect();
        cands.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)).then(a.2.cmp(&b.2)));
        cands.dedup();
        let mut taken = vec![false; bytes.len()];
        let mut out = Vec::new();
        for (s, e, pattern) in cands {
            let index = self.patterns[pattern].0;
            if !taken[s..e].iter().any(|&t| t) {
                taken[s..e].iter_mut().for_each(|t| *t = true);
                out.push(Match {
                    start: s,
                    end: e,
                    index,
                });
            }
        }
        out.sort_by_key(|m| m.start);
        out
    }
}

/// Non-overlapping occurrences of `phrases` in `text` at word boundaries, preferring the longest phrase at each
/// position; sorted by position. Builds a [`PhraseSet`]; keep one for repeated searches.
pub fn find_phrases(text: &str, phrases: &[(&str, usize)]) -> Vec<Match> {
    PhraseSet::new(phrases).find(text)
}

const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "vs.", "approx.", "dr.", "etc.", "no.", "fig.", "cf.", "mr.", "mrs.", "st.",
];

/// Splits report text into sentences (see [`crate::split_sentences`]).
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split(['\n', '\r']) {
        let chars: Vec<(usize, char)> = para.char_indices().collect();
        let mut start = 0;
        for (k, &(i, c)) in chars.iter().enumerate() {
            if !matches!(c, '.' | '!' | '?') {
                continue;
            }
            // Need whitespace then an upper-case letter or digit.
            let Some(&(_, next)) = chars.get(k + 1) else { continue };
            if !next.is_whitespace() {
                continue;
            }
            let Some(&(_, after)) = chars[k + 1..].iter().find(|(_, ch)| !ch.is_whitespace()) else {
                continue;
            };
            if !(after.is_uppercase() || after.is_ascii_digit()) {
                continue;
            }
            let upto = &para[start..i + c.len_utf8()];
            let last_word = upto.split_whitespace().last().unwrap_or("").to_lowercase();
            if ABBREVIATIONS.contains(&last_word.as_str()) {
                continue;
            }
            // A bare list marker ("3.") starts the next sentence, it does not end one.
            if last_word.trim_end_matches('.').chars().all(|ch| ch.is_ascii_digit()) && upto.trim() == last_word {
                continue;
            }
            let s = upto.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
            start = i + c.len_utf8();
        }
        let rest = para[start..].trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

/// A size mention: its span and its largest dimension in millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    pub start: usize,
    pub end: usize,
    pub mm: f64,
}

/// Sizes such as "5 mm", "5mm", "2.3 x 1.5 cm", "15x12 mm", "3.8 cm" (largest dimension, in mm).
pub fn parse_sizes(text: &str) -> Vec<Size> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut dims: Vec<f64> = Vec::new();
        let mut j = i;
        loop {
            let ns = j;
            while j < b.len()
                && (b[j].is_ascii_digit() || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            match text[ns..j].parse::<f64>() {
                Ok(v) => dims.push(v),
                Err(_) => break,
            }
            let mut k = j;
            while k < b.len() && b[k] == b' ' {
                k += 1;
            }
            if k < b.len() && (b[k] == b'x' || b[k] == b'*' || text[k..].starts_with('×')) {
                let mut m = k + if text[k..].starts_with('×') {
                    '×'.len_utf8()
                } else {
                    1
                };
                while m < b.len() && b[m] == b' ' {
                    m += 1;
                }
                if m < b.len() && b[m].is_ascii_digit() {
                    j = m;
                    continue;
                }
            }
            j = k;
            break;
        }
        let unit = if text[j..].starts_with("mm") {
            Some((1.0, 2))
        } else if text[j..].starts_with("cm") {
            Some((10.0, 2))
        } else {
            None
        };
        match unit {
            Some((f, len)) if j + len == b.len() || !is_word(b[j + len]) => {
                let mm = dims.iter().copied().fold(0.0, f64::max) * f;
                out.push(Size {
                    start,
                    end: j + len,
                    mm,
                });
                i = j + len;
            }
            _ => i = j.max(i + 1),
        }
    }
    out
}

/// Words that end the scope of a negation or uncertainty cue.
/// A comma followed by an article or "there" starts a new clause ("Although no effusion is seen, a nodule is
/// present"); a bare comma does not, since findings are listed with commas ("No effusion, nodule or mass").
const BREAKS: &[&str] = &[
    " but ",
    " however",
    " although",
    " whereas",
    " while ",
    "; ",
    ", and ",
    " except ",
    ", a ",
    ", an ",
    ", the ",
    ", there ",
];

/// The clause around `[start, end)`: from the previous break to the next one.
fn clause(text: &str, start: usize, end: usize) -> (usize, usize) {
    clause_by(text, start, end, BREAKS)
}

/// The span around `[start, end)` from the last of `breaks` before it to the first after it.
pub(crate) fn clause_by(text: &str, start: usize, end: usize, breaks: &[&str]) -> (usize, usize) {
    let mut lo = 0;
    let mut hi = text.len();
    for br in breaks {
        if let Some(p) = text[..start].rfind(br) {
            lo = lo.max(p + br.len());
        }
        if let Some(p) = text[end..].find(br) {
            hi = hi.min(end + p);
        }
    }
    (lo, hi)
}

/// Whether the finding at `[start, end)` is negated (see [`crate::context::assess`]).
pub fn is_negated(text: &str, start: usize, end: usize) -> bool {
    crate::context::assess(text, start, end).negated
}

/// Whether an uncertainty cue applies to the finding (see [`crate::context::assess`]).
pub fn is_uncertain(text: &str, start: usize, end: usize) -> bool {
    crate::context::assess(text, start, end).uncertain
}

/// "left" / "right" / "bilateral" in the finding's clause, nearest to it.
pub fn laterality_near(text: &str, start: usize, end: usize) -> Option<String> {
    let (lo, hi) = clause(text, start, end);
    let words: &[(&str, &str)] = &[
        ("bilateral", "bilateral"),
        ("both", "bilateral"),
        ("right", "right"),
        ("left", "left"),
    ];
    let mut best: Option<(usize, &str)> = None;
    for (w, side) in words {
        let mut from = lo;
        while let Some(p) = text[from..hi].find(w) {
            let s = from + p;
            let e = s + w.len();
            let bytes = text.as_bytes();
            if (s == 0 || !is_word(bytes[s - 1])) && (e >= bytes.len() || !is_word(bytes[e])) {
                let d = if s >= end { s - end } else { start.saturating_sub(e) };
                if best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, side));
                }
            }
            from = e;
        }
    }
    best.map(|(_, s)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let s = parse_sizes("a 2.3 x 1.5 cm mass, a 15x12 mm nodule, 5mm and 3.8 cm; 12 sections, t7");
        let mm: Vec<f64> = s.iter().map(|s| s.mm).collect();
        assert_eq!(mm, vec![23.0, 15.0, 5.0, 38.0]);
    }

    #[test]
    fn longest_phrase_wins() {
        let m = find_phrases(
            "no pleural effusion or effusion",
            &[("effusion", 0), ("pleural effusion", 1)],
        );
        assert_eq!(m.iter().map(|m| m.index).collect::<Vec<_>>(), vec![1, 0]);
        assert!(find_phrases("massive", &[("mass", 0)]).is_empty());
    }

    #[test]
    fn negation_cues() {
        let t = "no pleural effusion or pneumothorax was observed";
        assert!(is_negated(t, 3, 19));
        let t = "a nodule is seen; pneumothorax was not observed";
        assert!(!is_negated(t, 2, 8));
        assert!(is_negated(t, 18, 29));
        let t = "nodules, consolidation and pleural effusion were not observed";
        assert!(is_negated(t, 0, 7) && is_negated(t, 9, 22) && is_negated(t, 27, 43));
        let t = "a nodule is seen in the rul and effusion was not observed";
        assert!(!is_negated(t, 2, 8));
        let t = "no significant change in the left upper lobe mass";
        assert!(!is_negated(t, 45, 49));
        let t = "the previously seen consolidation has resolved";
        assert!(is_negated(t, 20, 33));
        let t = "malignancy cannot be excluded";
        assert!(!is_negated(t, 0, 10) && is_uncertain(t, 0, 10));
    }
}
