//! The findings vocabulary (`data/findings.tsv`): canonical finding names, their terms (synonyms, inflections,
//! adjective forms, word stems), the kind of mention, a default anatomy and the source of each row. The table is
//! data, versioned in its header; see the file for the column meanings.

use crate::text::{Match, PhraseSet};
use crate::ReportError;

/// How a term mentions its finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    /// The term states the abnormality ("pleural effusion", "granuloma").
    Finding,
    /// The term names a structure or property ("heart size", "mediastinum"): a mention only when no finding term
    /// is in the sentence; a normality cue makes it a negated mention.
    Structure,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabEntry {
    pub finding: String,
    pub kind: TermKind,
    pub anatomy: Option<String>,
    pub terms: Vec<String>,
    pub sources: Vec<String>,
}

/// The parsed table with its matcher.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    pub version: String,
    pub entries: Vec<VocabEntry>,
    set: PhraseSet,
}

/// Lower case, hyphens as spaces: the form terms and text are matched in (same byte offsets as the input's
/// lower-case form for ASCII hyphens).
pub fn match_form(lower: &str) -> String {
    lower.replace('-', " ")
}

impl Vocabulary {
    /// The table shipped with medgrain.
    pub fn embedded() -> &'static Vocabulary {
        static V: std::sync::OnceLock<Vocabulary> = std::sync::OnceLock::new();
        V.get_or_init(|| {
            Vocabulary::parse(include_str!("../data/findings.tsv"))
                .unwrap_or_else(|e| panic!("the embedded findings table is invalid: {e}"))
        })
    }

    pub fn parse(text: &str) -> Result<Vocabulary, ReportError> {
        let bad = |line: usize, why: &str| ReportError::Ontology(format!("findings table line {line}: {why}"));
        let mut version = None;
        let mut entries = Vec::new();
        let mut header_seen = false;
        for (no, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            if let Some(rest) = line.strip_prefix('#') {
                if let Some(v) = rest.trim().strip_prefix("version") {
                    version = Some(v.trim().to_string());
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if !header_seen {
                if cols != ["finding", "kind", "anatomy", "terms", "sources"] {
                    return Err(bad(no, "the header must be: finding kind anatomy terms sources"));
                }
                header_seen = true;
                continue;
            }
            let [finding, kind, anatomy, terms, sources] = cols[..] else {
                return Err(bad(no, &format!("{} columns, want 5", cols.len())));
            };
            let kind = match kind {
                "finding" => TermKind::Finding,
                "structure" => TermKind::Structure,
                other => return Err(bad(no, &format!("kind {other:?} is neither finding nor structure"))),
            };
            let mut list = Vec::new();
            for t in terms.split('|').map(str::trim).filter(|t| !t.is_empty()) {
                if t.chars().any(|c| c.is_uppercase()) {
                    return Err(bad(no, &format!("term {t:?} is not lower case")));
                }
                if let Some(stem) = t.strip_suffix("(s)") {
                    list.push(stem.to_string());
                    list.push(format!("{stem}s"));
                } else if let Some(stem) = t.strip_suffix("(es)") {
                    list.push(stem.to_string());
                    list.push(format!("{stem}es"));
                } else {
                    list.push(t.to_string());
                }
            }
            if finding.trim().is_empty() || list.is_empty() {
                return Err(bad(no, "a row needs a finding and at least one term"));
            }
            entries.push(VocabEntry {
                finding: finding.trim().to_string(),
                kind,
                anatomy: Some(anatomy.trim())
                    .filter(|a| *a != "-" && !a.is_empty())
                    .map(str::to_string),
                terms: list,
                sources: sources.split_whitespace().map(str::to_string).collect(),
            });
        }
        let version = version.ok_or_else(|| bad(1, "no '# version' line"))?;
        let forms: Vec<(String, usize, bool)> = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                e.terms.iter().map(move |t| match t.strip_suffix('*') {
                    Some(stem) => (match_form(stem), i, true),
                    None => (match_form(t), i, false),
                })
            })
            .collect();
        let list: Vec<(&str, usize, bool)> = forms.iter().map(|(t, i, p)| (t.as_str(), *i, *p)).collect();
        Ok(Vocabulary {
            version,
            entries,
            set: PhraseSet::with_prefixes(&list),
        })
    }

    /// Term occurrences in text already in [`match_form`]; `Match::index` is the entry's index.
    pub fn find(&self, form: &str) -> Vec<Match> {
        self.set.find(form)
    }

    /// The default anatomy of a finding (the first row naming it that has one).
    pub fn anatomy_of(&self, finding: &str) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.finding == finding)
            .find_map(|e| e.anatomy.as_deref())
    }

    /// Every canonical finding name, in table order, once.
    pub fn findings(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.finding.as_str()) {
                out.push(&e.finding);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_its_anatomy_exists() {
        let v = Vocabulary::embedded();
        assert!(v.version.starts_with("2026"));
        assert!(v.findings().len() > 60);
        let ont = crate::Ontology::embedded().unwrap();
        for e in &v.entries {
            if let Some(a) = &e.anatomy {
                assert!(
                    ont.node(a).is_some(),
                    "{}: anatomy {a:?} is not in anatomy.json",
                    e.finding
                );
            }
            assert!(!e.sources.is_empty(), "{} has no source", e.finding);
        }
    }

    #[test]
    fn stems_plurals_and_hyphens() {
        let v = Vocabulary::embedded();
        let names = |t: &str| -> Vec<String> {
            v.find(&match_form(t))
                .iter()
                .map(|m| v.entries[m.index].finding.clone())
                .collect()
        };
        assert_eq!(names("bibasilar atelectatic changes"), ["atelectasis"]);
        assert_eq!(names("ground glass opacities"), ["ground-glass opacity"]);
        assert_eq!(names("two granulomas"), ["granuloma"]);
        // longest term wins: a pleural scar is not lung scarring
        assert_eq!(names("pleural scar"), ["pleural thickening"]);
        assert!(names("massive").is_empty());
        let bad = "# version 1\nfinding\tkind\tanatomy\tterms\tsources\nx\tweird\t-\ty\tMG\n";
        assert!(Vocabulary::parse(bad).is_err());
        assert!(Vocabulary::parse("finding\tkind\tanatomy\tterms\tsources\n").is_err());
    }
}
