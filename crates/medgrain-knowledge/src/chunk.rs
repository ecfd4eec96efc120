//! Sentence-aware chunking: a document's sentences (radiology-aware splitting from `medgrain-reports`) are packed
//! into chunks of at most `max_tokens` tokens, consecutive chunks sharing `overlap` sentences. A sentence longer than
//! the limit is cut at word boundaries. Token counts come from the embedding model's tokenizer when one is given (so
//! a chunk never exceeds what the model reads), else from a word-based estimate (1.3 tokens per word, the WordPiece
//! ratio measured on medical text). Chunk ids are stable: `{document id}#{k}`.

use crate::ingest::Document;
use serde::{Deserialize, Serialize};

/// One passage of the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: String,
    pub doc_id: String,
    pub title: String,
    pub source: String,
    pub url: Option<String>,
    pub text: String,
    pub tokens: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mesh: Vec<String>,
}

/// Chunking settings.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    pub max_tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkOptions {
    /// 200 tokens leaves room for the title and special tokens inside MiniLM's 256-token window.
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 200,
            overlap: 1,
        }
    }
}

/// Counts tokens of a text.
pub trait TokenCounter: Sync {
    fn count(&self, text: &str) -> usize;
}

/// The estimate used without a tokenizer.
pub struct WordEstimate;

impl TokenCounter for WordEstimate {
    fn count(&self, text: &str) -> usize {
        (text.split_whitespace().count() as f64 * 1.3).ceil() as usize
    }
}

fn split_long(sentence: &str, max: usize, counter: &dyn TokenCounter) -> Vec<String> {
    if counter.count(sentence) <= max {
        return vec![sentence.to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in sentence.split_whitespace() {
        let candidate = if cur.is_empty() {
            w.to_string()
        } else {
            format!("{cur} {w}")
        };
        if !cur.is_empty() && counter.count(&candidate) > max {
            out.push(std::mem::take(&mut cur));
            cur = w.to_string();
        } else {
            cur = candidate;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Chunks one document.
pub fn chunk_document(doc: &Document, opts: ChunkOptions, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let max = opts.max_tokens.max(8);
    let sentences: Vec<(String, usize)> = doc
        .text
        .lines()
        .flat_map(medgrain_reports::split_sentences)
        .flat_map(|s| split_long(&s, max, counter))
        .map(|s| {
            let n = counter.count(&s);
            (s, n)
        })
        .collect();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < sentences.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < sentences.len() && (end == start || tokens + sentences[end].1 <= max) {
            tokens += sentences[end].1;
            end += 1;
        }
        let text = sentences[start..end]
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        chunks.push(Chunk {
            id: format!("{}#{}", doc.id, chunks.len()),
            doc_id: doc.id.clone(),
            title: doc.title.clone(),
            source: doc.source.clone(),
            url: doc.url.clone(),
            tokens: counter.count(&text),
            text,
            mesh: doc.mesh.clone(),
        });
        if end >= sentences.len() {
            break;
        }
        // Step back `overlap` sentences, but always move forward.
        start = end.saturating_sub(opts.overlap).max(start + 1);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document {
            id: "d".into(),
            title: "T".into(),
            text: text.into(),
            source: "s".into(),
            url: None,
            mesh: vec![],
        }
    }

    #[test]
    fn chunks_respect_the_limit_and_overlap_by_one_sentence() {
        let text = (0..20)
            .map(|i| format!("Sentence number {i} has six words."))
            .collect::<Vec<_>>()
            .join(" ");
        let c = chunk_document(
            &doc(&text),
            ChunkOptions {
                max_tokens: 24,
                overlap: 1,
            },
            &WordEstimate,
        );
        assert!(c.len() > 3);
        for (k, ch) in c.iter().enumerate() {
            assert_eq!(ch.id, format!("d#{k}"));
            assert!(ch.tokens <= 24 + 2, "{ch:?}");
        }
        // consecutive chunks share their boundary sentence
        let last_of_first = c[0].text.rsplit(". ").next().unwrap();
        assert!(
            c[1].text.starts_with(last_of_first.trim_end_matches('.')),
            "{:?} / {:?}",
            c[0].text,
            c[1].text
        );
        // every sentence is in some chunk
        for i in 0..20 {
            assert!(c.iter().any(|ch| ch.text.contains(&format!("number {i} "))));
        }
    }

    #[test]
    fn decimals_are_not_sentence_breaks_and_long_sentences_are_cut() {
        let c = chunk_document(&doc("A 2.3 cm mass. It grew."), ChunkOptions::default(), &WordEstimate);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "A 2.3 cm mass. It grew.");
        let long = "word ".repeat(500);
        let c = chunk_document(
            &doc(&long),
            ChunkOptions {
                max_tokens: 100,
                overlap: 0,
            },
            &WordEstimate,
        );
        assert!(c.len() >= 6 && c.iter().all(|ch| ch.tokens <= 100));
    }
}
