//! Negation and uncertainty of a finding in its sentence, NegEx/ConText style: cues from `data/context_cues.tsv`
//! (pre-, post- and bidirectional negation and uncertainty, pseudo-cues, scope terminators), matched longest first
//! at word boundaries; a cue counts when it shares the finding's clause and no terminator stands between them. A
//! negation cue must also be near: at most [`WINDOW`] words between, or only a list of short items ("no effusion,
//! pneumothorax or consolidation"; "nodules, consolidation and effusion were not observed").

use crate::text::PhraseSet;
use crate::vocab::match_form;

/// Words allowed between a cue and its finding outside a list.
pub const WINDOW: usize = 6;
/// Words allowed per item of a list between a cue and its finding.
const LIST_ITEM: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    PreNeg,
    PostNeg,
    BiNeg,
    PreUnc,
    PostUnc,
    BiUnc,
    Pseudo,
    Term,
    Normal,
}

struct Cues {
    list: Vec<(String, Cat)>,
    set: PhraseSet,
}

fn cues() -> &'static Cues {
    static C: std::sync::OnceLock<Cues> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let mut list = Vec::new();
        for line in include_str!("../data/context_cues.tsv").lines() {
            if line.starts_with('#') || line.trim().is_empty() || line == "cue\tcategory" {
                continue;
            }
            let Some((cue, cat)) = line.split_once('\t') else {
                panic!("context_cues.tsv: a line without a tab: {line:?}")
            };
            let cat = match cat.trim() {
                "pre-neg" => Cat::PreNeg,
                "post-neg" => Cat::PostNeg,
                "bi-neg" => Cat::BiNeg,
                "pre-unc" => Cat::PreUnc,
                "post-unc" => Cat::PostUnc,
                "bi-unc" => Cat::BiUnc,
                "pseudo" => Cat::Pseudo,
                "term" => Cat::Term,
                "normal" => Cat::Normal,
                other => panic!("context_cues.tsv: unknown category {other:?}"),
            };
            list.push((match_form(cue.trim()), cat));
        }
        let phrases: Vec<(&str, usize)> = list.iter().enumerate().map(|(i, (c, _))| (c.as_str(), i)).collect();
        let set = PhraseSet::new(&phrases);
        Cues { list, set }
    })
}

/// What the context says about one finding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessment {
    pub negated: bool,
    pub uncertain: bool,
    /// The cue that decided (negation first), as written in the cue table.
    pub cue: Option<String>,
}

/// Words that end the scope of a cue besides the terminator cues: a semicolon, and a comma followed by an article
/// or "there" starts a new clause ("Although no effusion is seen, a nodule is present"); a bare comma does not,
/// since findings are listed with commas ("No effusion, nodule or mass").
const BREAKS: &[&str] = &["; ", ", and ", ", a ", ", an ", ", the ", ", there ", ". "];

/// Verbs that end a list of findings: a post-negation cue after one of them belongs to another statement.
const VERBS: &[&str] = &[
    " is ",
    " are ",
    " was ",
    " were ",
    " seen",
    " observed",
    " noted",
    " present",
    " detected",
    " shows ",
];
const AUXILIARIES: &[&str] = &[
    " is",
    " are",
    " was",
    " were",
    " has been",
    " have been",
    " has",
    " have",
];

/// Whether the text between a cue and its finding is near enough: few words, or a list of short items.
fn near(between: &str) -> bool {
    let words = between.split_whitespace().count();
    if words <= WINDOW {
        return true;
    }
    let mut items = vec![between.to_string()];
    for sep in [",", " or ", " and ", " nor ", "/"] {
        items = items.iter().flat_map(|s| s.split(sep).map(str::to_string)).collect();
    }
    items.len() > 1 && items.iter().all(|i| i.split_whitespace().count() <= LIST_ITEM)
}

/// Negation and uncertainty of the finding at byte span `[start, end)` of lower-case `text`.
pub fn assess(text: &str, start: usize, end: usize) -> Assessment {
    SentenceCues::scan(text).assess(start, end, false, &[])
}

/// The cues of one sentence, found once; each finding of the sentence is then assessed against them.
pub struct SentenceCues<'a> {
    text: &'a str,
    found: Vec<crate::text::Match>,
}

impl<'a> SentenceCues<'a> {
    /// Finds the cues of lower-case `text`.
    pub fn scan(text: &'a str) -> Self {
        SentenceCues {
            text,
            found: cues().set.find(&match_form(text)),
        }
    }

    /// Negation and uncertainty of the finding at `[start, end)`. With `structure`, a normality cue in the clause
    /// ("the heart is normal in size") also negates. `others`: the spans of the sentence's other findings — a
    /// bidirectional uncertainty cue after this finding that is followed by another finding in the clause belongs
    /// to that one ("consolidation, possibly pneumonia": the pneumonia is uncertain, the consolidation is not).
    pub fn assess(&self, start: usize, end: usize, structure: bool, others: &[(usize, usize)]) -> Assessment {
        let (c, text) = (cues(), self.text);
        let cat = |m: &crate::text::Match| c.list[m.index].1;
        // cues inside the finding's own words do not count
        let found: Vec<&crate::text::Match> = self.found.iter().filter(|m| m.end <= start || m.start >= end).collect();
        let (mut lo, mut hi) = crate::text::clause_by(text, start, end, BREAKS);
        for m in found.iter().filter(|m| cat(m) == Cat::Term) {
            if m.end <= start {
                lo = lo.max(m.end);
            } else if m.start >= end {
                hi = hi.min(m.start);
            }
        }
        let before_in_clause = |m: &&&crate::text::Match| m.end <= start && m.start >= lo;
        let after_in_clause = |m: &&&crate::text::Match| m.start >= end && m.end <= hi;
        // Negation cues must be near (see `near`); a cue after the finding negates it only across list material
        // (other findings, commas, "and"/"or", places): "nodules, consolidation and effusion were not observed".
        let neg = found
            .iter()
            .filter(|m| matches!(cat(m), Cat::PreNeg | Cat::BiNeg))
            .filter(before_in_clause)
            .filter(|m| near(&text[m.end..start]))
            .max_by_key(|m| m.end)
            .or_else(|| {
                found
                    .iter()
                    .filter(|m| matches!(cat(m), Cat::PostNeg | Cat::BiNeg))
                    .filter(after_in_clause)
                    .filter(|m| near(&text[end..m.start]) && only_list_between(&text[end..m.start]))
                    .min_by_key(|m| m.start)
            })
            .or_else(|| {
                found
                    .iter()
                    .filter(|m| structure && cat(m) == Cat::Normal)
                    .find(|m| m.start >= lo && m.end <= hi)
            });
        // Uncertainty cues reach over the whole clause.
        let unc = found
            .iter()
            .filter(|m| matches!(cat(m), Cat::PreUnc | Cat::BiUnc))
            .filter(before_in_clause)
            .max_by_key(|m| m.end)
            .or_else(|| {
                found
                    .iter()
                    .filter(|m| matches!(cat(m), Cat::PostUnc | Cat::BiUnc))
                    .filter(after_in_clause)
                    .filter(|m| cat(m) == Cat::PostUnc || !others.iter().any(|&(s, _)| s >= m.end && s < hi))
                    .min_by_key(|m| m.start)
            });
        Assessment {
            negated: neg.is_some(),
            uncertain: unc.is_some(),
            cue: neg.or(unc).map(|m| c.list[m.index].0.clone()),
        }
    }
}

/// Whether no verb stands between a finding and a post-negation cue (a trailing auxiliary — "were" in "… were not
/// observed" — aside).
fn only_list_between(between: &str) -> bool {
    let mut between = format!(" {} ", between.trim_end());
    for aux in AUXILIARIES {
        if between.trim_end().ends_with(aux) {
            let keep = between.trim_end().len() - aux.len();
            between.truncate(keep);
            between.push(' ');
            break;
        }
    }
    !VERBS.iter().any(|v| between.contains(v))
}

/// One `report context` answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConceptContext {
    pub concept: String,
    pub sentence: String,
    pub negated: bool,
    pub uncertain: bool,
    pub cue: Option<String>,
    /// Whether the concept was found in the sentence (if not, nothing is negated or uncertain).
    pub found: bool,
}

/// Negation and uncertainty of `concept` in `sentence`: the concept is looked up case-insensitively at word
/// boundaries, runs of white space counting as one space; its first occurrence is assessed.
pub fn concept_context(concept: &str, sentence: &str) -> ConceptContext {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let (text, needle) = (squash(sentence), squash(concept));
    let hit = if needle.is_empty() {
        None
    } else {
        crate::text::find_phrases(&text, &[(needle.as_str(), 0)])
            .first()
            .copied()
    };
    let a = hit.map(|m| assess(&text, m.start, m.end)).unwrap_or_default();
    ConceptContext {
        concept: concept.to_string(),
        sentence: sentence.to_string(),
        negated: a.negated,
        uncertain: a.uncertain,
        cue: a.cue,
        found: hit.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, word: &str) -> Assessment {
        let s = text.find(word).unwrap();
        assess(text, s, s + word.len())
    }

    #[test]
    fn hand_derived_cases() {
        assert!(at("no pleural effusion or pneumothorax was observed", "pleural effusion").negated);
        assert!(at("no pleural effusion or pneumothorax was observed", "pneumothorax").negated);
        let t = "a nodule is seen; pneumothorax was not observed";
        assert!(!at(t, "nodule").negated && at(t, "pneumothorax").negated);
        let t = "nodules, consolidation and pleural effusion were not observed";
        assert!(at(t, "nodules").negated && at(t, "consolidation").negated && at(t, "pleural effusion").negated);
        assert!(!at("a nodule is seen in the rul and effusion was not observed", "nodule").negated);
        assert!(!at("no significant change in the left upper lobe mass", "mass").negated);
        assert!(at("the previously seen consolidation has resolved", "consolidation").negated);
        let a = at("malignancy cannot be excluded", "malignancy");
        assert!(!a.negated && a.uncertain && a.cue.as_deref() == Some("cannot be excluded"));
        // a terminator ends the scope
        assert!(!at("no fever but pneumonia was diagnosed", "pneumonia").negated);
        // a far cue outside a list does not reach
        let t = "no history of surgery was reported and the patient underwent a workup that showed pneumonia";
        assert!(!at(t, "pneumonia").negated);
        assert!(at("the patient denies chest pain", "chest pain").negated);
        assert!(!at("gram negative bacteremia", "bacteremia").negated);
        assert!(at("pneumonia is unlikely", "pneumonia").negated);
        assert!(at("rule out pneumonia", "pneumonia").uncertain);
    }

    #[test]
    fn concepts_are_found_whatever_the_spacing_and_case() {
        let c = concept_context("staph   bacteremia", "Found to have no STAPH  BACTEREMIA.");
        assert!(c.found && c.negated && c.cue.as_deref() == Some("no"));
        let c = concept_context("fever", "No chills.");
        assert!(!c.found && !c.negated && c.cue.is_none());
    }
}
