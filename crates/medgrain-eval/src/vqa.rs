//! Medical VQA scored by a published protocol.
//!
//! Gold: a JSON array (VQA-RAD: `qid`, `question`, `answer`, `answer_type`, `question_type`; SLAKE: `qid`,
//! `answer_type`, `content_type`, `modality`, `location`; LLaVA conversation JSON: `id`, `conversations` of
//! `human`/`gpt` turns, optional `answer_type`), the same as JSON lines, or medgrain's VQA rows (a `vqa/*.parquet`
//! file, a `vqa/` folder or a dataset folder holding one). Predictions: JSON lines with an id (`qid`, `id` or
//! `question_id`) and an answer (`answer` or `text`).
//!
//! A question is closed when its `answer_type` says `CLOSED`; without an `answer_type` (PathVQA, medgrain's rows) a
//! question whose normalised gold answer is `yes` or `no` is closed and every other is open. Answers are normalised
//! by [`crate::normalize`]. Closed questions: a yes/no gold answer is matched by the first `yes` or `no` token of the
//! prediction; any other closed answer (SLAKE's "left lung") is a hit when its tokens occur, in order and
//! contiguous, among the prediction's tokens.

use crate::normalize::tokens;
use crate::text::{exact_match, sentence_bleu, token_prf};
use crate::{input_err, layout_err, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Which published protocol scores the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// LLaVA-Med: `closed_accuracy` over closed questions, `open_recall` (token recall) over open ones.
    LlavaMed,
    /// MedTrinity-25M's script: `exact_match`, `f1`, `precision`, `recall`, `bleu1`..`bleu3` over open questions,
    /// `yes_no_accuracy` over closed ones.
    MedTrinity,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::LlavaMed => "llava-med",
            Protocol::MedTrinity => "medtrinity",
        }
    }
}

/// One gold question.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldItem {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub closed: bool,
    pub question_type: String,
    pub modality: String,
}

/// Expected-field message for an unknown gold layout.
const GOLD_FIELDS: &str =
    "expected a JSON array or JSON lines of objects with an id (\"qid\", \"id\" or \"question_id\") \
and an answer (\"answer\", or \"conversations\" with a \"gpt\" turn), optional \"question\", \"answer_type\" \
(CLOSED/OPEN), \"question_type\" or \"content_type\", \"modality\"; or medgrain VQA Parquet (columns \"id\", \
\"question\", \"answer\", \"question_type\")";

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_string()),
        _ => None,
    }
}

fn first_field<'a>(o: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| o.get(*n).filter(|v| !v.is_null()))
}

fn turn(o: &Map<String, Value>, speakers: &[&str]) -> Option<String> {
    let conv = o.get("conversations").or_else(|| o.get("conversatons"))?.as_array()?;
    conv.iter().find_map(|t| {
        let from = t.get("from").or_else(|| t.get("role"))?.as_str()?;
        speakers
            .contains(&from)
            .then(|| t.get("value").or_else(|| t.get("content")).and_then(text_of))
            .flatten()
    })
}

fn is_yes_no(answer: &str) -> bool {
    matches!(tokens(answer).as_slice(), [w] if w == "yes" || w == "no")
}

fn gold_from_object(o: &Map<String, Value>) -> Option<GoldItem> {
    let id = first_field(o, &["qid", "id", "question_id"]).and_then(id_string)?;
    let answer = first_field(o, &["answer"])
        .and_then(text_of)
        .or_else(|| turn(o, &["gpt", "assistant"]))?;
    let question = first_field(o, &["question"])
        .and_then(text_of)
        .or_else(|| turn(o, &["human", "user"]))
        .unwrap_or_default()
        .replace("<image>", "")
        .trim()
        .to_string();
    let closed = match first_field(o, &["answer_type"]).and_then(Value::as_str) {
        Some(t) => t.trim().eq_ignore_ascii_case("closed"),
        None => is_yes_no(&answer),
    };
    let label = |names: &[&str]| {
        first_field(o, names)
            .and_then(text_of)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    };
    Some(GoldItem {
        id,
        question,
        answer,
        closed,
        question_type: label(&["question_type", "content_type"]),
        modality: label(&["modality", "image_modality"]),
    })
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| input_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// medgrain's own VQA rows (grounded-reports recipe, CT volumes): closed when the answer is yes/no.
fn gold_from_parquet(path: &Path) -> Result<Vec<GoldItem>> {
    let col = |name: &str| {
        medgrain_export::read::string_column(path, name).map_err(|e| layout_err(path, format!("{e}; {GOLD_FIELDS}")))
    };
    let (ids, questions, answers, types) = (col("id")?, col("question")?, col("answer")?, col("question_type")?);
    Ok(ids
        .into_iter()
        .zip(questions)
        .zip(answers)
        .zip(types)
        .filter_map(|(((id, q), a), t)| {
            let (id, answer) = (id?, a?);
            Some(GoldItem {
                closed: is_yes_no(&answer),
                id,
                question: q.unwrap_or_default(),
                answer,
                question_type: t.unwrap_or_else(|| "unknown".into()),
                modality: "CT".into(),
            })
        })
        .collect())
}

/// Reads gold questions from any layout the module knows; an unknown layout is [`crate::EvalError::Layout`].
pub fn read_gold(path: &Path) -> Result<Vec<GoldItem>> {
    if path.is_dir() {
        let vqa = path.join("vqa");
        let dir = if vqa.is_dir() { vqa } else { path.to_path_buf() };
        let files = parquet_files(&dir)?;
        if files.is_empty() {
            return Err(layout_err(
                path,
                format!("no VQA Parquet files in {}; {GOLD_FIELDS}", dir.display()),
            ));
        }
        let mut out = Vec::new();
        for f in files {
            out.extend(gold_from_parquet(&f)?);
        }
        return Ok(out);
    }
    if path.extension().is_some_and(|x| x == "parquet") {
        return gold_from_parquet(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| input_err(path, e))?;
    let values: Vec<Value> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            return Err(layout_err(
                path,
                format!("a JSON value that is not an array; {GOLD_FIELDS}"),
            ))
        }
        Err(_) => {
            let mut v = Vec::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                v.push(
                    serde_json::from_str(line)
                        .map_err(|e| layout_err(path, format!("line {}: not JSON ({e}); {GOLD_FIELDS}", i + 1)))?,
                );
            }
            v
        }
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_object()
                .and_then(gold_from_object)
                .ok_or_else(|| layout_err(path, format!("item {i} has no id or no answer; {GOLD_FIELDS}")))
        })
        .collect()
}

/// Predictions read from JSON lines, with what could not be used.
#[derive(Debug, Default)]
pub struct Predictions {
    /// id → answer, first occurrence.
    pub answers: HashMap<String, String>,
    /// Ids in file order.
    pub order: Vec<String>,
    pub duplicates: Vec<String>,
    /// "line N: reason".
    pub bad_lines: Vec<String>,
}

pub fn read_predictions(path: &Path) -> Result<Predictions> {
    let text = std::fs::read_to_string(path).map_err(|e| input_err(path, e))?;
    let mut p = Predictions::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Option<(String, String)> = serde_json::from_str::<Value>(line).ok().and_then(|v| {
            let o = v.as_object()?;
            let id = first_field(o, &["qid", "id", "question_id"]).and_then(id_string)?;
            let answer = first_field(o, &["answer", "text"]).and_then(text_of)?;
            Some((id, answer))
        });
        match parsed {
            None => p.bad_lines.push(format!(
                "line {}: not a JSON object with an id (\"qid\", \"id\", \"question_id\") and an answer (\"answer\", \"text\")",
                i + 1
            )),
            Some((id, answer)) => {
                if p.answers.contains_key(&id) {
                    p.duplicates.push(id);
                } else {
                    p.order.push(id.clone());
                    p.answers.insert(id, answer);
                }
            }
        }
    }
    Ok(p)
}

/// Whether a closed question is answered: see the module documentation.
pub fn closed_hit(prediction: &str, gold: &str) -> bool {
    let (p, g) = (tokens(prediction), tokens(gold));
    if g.is_empty() {
        return p.is_empty();
    }
    if let [w] = g.as_slice() {
        if w == "yes" || w == "no" {
            return p.iter().find(|t| *t == "yes" || *t == "no") == Some(w);
        }
    }
    p.windows(g.len()).any(|win| win == g.as_slice())
}

/// The scores of one open question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenScores {
    pub exact_match: f64,
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub bleu1: f64,
    pub bleu2: f64,
    pub bleu3: f64,
}

/// Scores one open question (normalised tokens; BLEU-n as the scripts compute it: NLTK `sentence_bleu` with the
/// weight on n-grams of order n only, no smoothing).
pub fn open_scores(prediction: &str, gold: &str) -> OpenScores {
    let (p, g) = (tokens(prediction), tokens(gold));
    let (f1, precision, recall) = token_prf(&p, &g);
    OpenScores {
        exact_match: exact_match(&p, &g),
        f1,
        precision,
        recall,
        bleu1: sentence_bleu(&g, &p, &[1.0, 0.0, 0.0, 0.0]),
        bleu2: sentence_bleu(&g, &p, &[0.0, 1.0, 0.0, 0.0]),
        bleu3: sentence_bleu(&g, &p, &[0.0, 0.0, 1.0, 0.0]),
    }
}

#[derive(Debug, Default, Clone)]
struct Acc {
    closed: u64,
    closed_hits: u64,
    open: u64,
    sums: [f64; 7],
}

impl Acc {
    fn add_closed(&mut self, hit: bool) {
        self.closed += 1;
        self.closed_hits += hit as u64;
    }
    fn add_open(&mut self, s: &OpenScores) {
        self.open += 1;
        let v = [s.exact_match, s.f1, s.precision, s.recall, s.bleu1, s.bleu2, s.bleu3];
        for (a, b) in self.sums.iter_mut().zip(v) {
            *a += b;
        }
    }
    fn json(&self, protocol: Protocol) -> Value {
        let mean = |sum: f64, n: u64| {
            if n > 0 {
                Value::from(sum / n as f64)
            } else {
                Value::Null
            }
        };
        let mut m = Map::new();
        m.insert("questions".into(), (self.closed + self.open).into());
        m.insert("closed".into(), self.closed.into());
        m.insert("open".into(), self.open.into());
        let closed = mean(self.closed_hits as f64, self.closed);
        match protocol {
            Protocol::LlavaMed => {
                m.insert("closed_accuracy".into(), closed);
                m.insert("open_recall".into(), mean(self.sums[3], self.open));
            }
            Protocol::MedTrinity => {
                for (k, i) in [
                    ("exact_match", 0),
                    ("f1", 1),
                    ("precision", 2),
                    ("recall", 3),
                    ("bleu1", 4),
                    ("bleu2", 5),
                    ("bleu3", 6),
                ] {
                    m.insert(k.into(), mean(self.sums[i], self.open));
                }
                m.insert("yes_no_accuracy".into(), closed);
            }
        }
        Value::Object(m)
    }
}

/// The result of `eval vqa` (SPEC: `protocol`, `overall`, `by_question_type`, `by_modality`, `unmatched`).
#[derive(Debug, Serialize)]
pub struct VqaReport {
    pub protocol: String,
    pub overall: Value,
    pub by_question_type: BTreeMap<String, Value>,
    pub by_modality: BTreeMap<String, Value>,
    /// Prediction ids that are not in the gold file (not scored).
    pub unmatched: Vec<String>,
    /// Gold ids without a prediction (scored as empty answers: wrong).
    pub missing: Vec<String>,
    /// Prediction ids given more than once (the first answer is scored).
    pub duplicates: Vec<String>,
    /// Gold ids given more than once (the first item is scored).
    pub duplicate_gold: Vec<String>,
    /// Gold ids whose prediction is empty or only punctuation and articles (scored: wrong).
    pub empty_answers: Vec<String>,
    /// Prediction lines that could not be used.
    pub bad_lines: Vec<String>,
}

impl VqaReport {
    /// `true` when every gold question had exactly one usable prediction and no prediction was left over.
    pub fn clean(&self) -> bool {
        self.unmatched.is_empty()
            && self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.duplicate_gold.is_empty()
            && self.bad_lines.is_empty()
    }
}

/// Scores predictions against gold questions.
pub fn evaluate(gold: &[GoldItem], preds: &Predictions, protocol: Protocol) -> VqaReport {
    let (mut overall, mut by_type, mut by_mod) = (
        Acc::default(),
        BTreeMap::<String, Acc>::new(),
        BTreeMap::<String, Acc>::new(),
    );
    let mut seen = HashSet::new();
    let (mut missing, mut duplicate_gold, mut empty_answers) = (Vec::new(), Vec::new(), Vec::new());
    for g in gold {
        if !seen.insert(g.id.as_str()) {
            duplicate_gold.push(g.id.clone());
            continue;
        }
        let answer = match preds.answers.get(&g.id) {
            Some(a) => a.as_str(),
            None => {
                missing.push(g.id.clone());
                ""
            }
        };
        if preds.answers.contains_key(&g.id) && tokens(answer).is_empty() {
            empty_answers.push(g.id.clone());
        }
        let accs = [
            &mut overall,
            by_type.entry(g.question_type.clone()).or_default(),
            by_mod.entry(g.modality.clone()).or_default(),
        ];
        if g.closed {
            let hit = closed_hit(answer, &g.answer);
            accs.into_iter().for_each(|a| a.add_closed(hit));
        } else {
            let s = open_scores(answer, &g.answer);
            accs.into_iter().for_each(|a| a.add_open(&s));
        }
    }
    let unmatched = preds
        .order
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .cloned()
        .collect();
    VqaReport {
        protocol: protocol.name().to_string(),
        overall: overall.json(protocol),
        by_question_type: by_type.iter().map(|(k, a)| (k.clone(), a.json(protocol))).collect(),
        by_modality: by_mod.iter().map(|(k, a)| (k.clone(), a.json(protocol))).collect(),
        unmatched,
        missing,
        duplicates: preds.duplicates.clone(),
        duplicate_gold,
        empty_answers,
        bad_lines: preds.bad_lines.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived closed rules.
    #[test]
    fn closed_rules() {
        assert!(closed_hit("Yes, there is a nodule.", "yes"));
        assert!(!closed_hit("No, but yes elsewhere", "yes")); // the first yes/no decides
        assert!(!closed_hit("There is a nodule", "no")); // "no" inside "nodule" is not an answer
        assert!(!closed_hit("not sure", "no"));
        assert!(closed_hit("It is in the left lung.", "Left Lung"));
        assert!(!closed_hit("lung, left", "left lung")); // tokens in order
        assert!(!closed_hit("", "yes"));
    }

    fn item(id: &str, answer: &str, closed: bool) -> GoldItem {
        GoldItem {
            id: id.into(),
            question: String::new(),
            answer: answer.into(),
            closed,
            question_type: "t".into(),
            modality: "CT".into(),
        }
    }

    #[test]
    fn missing_unmatched_duplicates_are_listed() {
        let gold = vec![item("1", "yes", true), item("2", "liver", false), item("3", "no", true)];
        let mut p = Predictions::default();
        for (id, a) in [("1", "yes"), ("2", "the liver"), ("9", "x")] {
            p.order.push(id.into());
            p.answers.insert(id.into(), a.into());
        }
        p.duplicates.push("1".into());
        let r = evaluate(&gold, &p, Protocol::LlavaMed);
        assert_eq!(r.missing, vec!["3"]);
        assert_eq!(r.unmatched, vec!["9"]);
        assert_eq!(r.duplicates, vec!["1"]);
        // Closed: 1 hit of 2 (3 is missing → wrong); open: recall 1.
        assert_eq!(r.overall["closed_accuracy"], 0.5);
        assert_eq!(r.overall["open_recall"], 1.0);
        assert!(!r.clean());
    }
}
