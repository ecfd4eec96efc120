//! BM25 over the chunks with tantivy. The analyser is medical-aware: a token is a run of letters/digits that may
//! continue through `-`, `.` or `'` ("t2-weighted", "covid-19", "2.3", "crohn's"), lower-cased, with no stemming
//! and no stop words, so drug and disease names are matched as written. Queries are analysed the same way and run
//! as a disjunction of term queries (plain BM25 over the query's tokens: no query syntax to trip over).

use crate::KnowledgeError;
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED};
use tantivy::tokenizer::{LowerCaser, RegexTokenizer, TextAnalyzer, TokenStream};
use tantivy::{doc, Index, IndexReader, IndexWriter, TantivyDocument, Term};

/// The token pattern (also used by the Python reference in the test suite).
pub const TOKEN_PATTERN: &str = r"[\p{L}\p{N}]+(?:[-.'][\p{L}\p{N}]+)*";
const ANALYZER: &str = "medical";

fn analyzer() -> Result<TextAnalyzer, KnowledgeError> {
    let tok = RegexTokenizer::new(TOKEN_PATTERN).map_err(|e| KnowledgeError::Index(e.to_string()))?;
    Ok(TextAnalyzer::builder(tok).filter(LowerCaser).build())
}

/// The analyser's tokens of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let Ok(mut a) = analyzer() else {
        return Vec::new();
    };
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The BM25 index of a knowledge base (`KBDIR/bm25/`).
pub struct Bm25Index {
    index: Index,
    reader: IndexReader,
    body: tantivy::schema::Field,
    ord: tantivy::schema::Field,
}

fn err(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Index(e.to_string())
}

impl Bm25Index {
    /// Opens the index in `dir`, creating it when absent.
    pub fn open_or_create(dir: &Path) -> Result<Bm25Index, KnowledgeError> {
        std::fs::create_dir_all(dir).map_err(|e| KnowledgeError::io(dir, e))?;
        let index = if dir.join("meta.json").is_file() {
            Index::open_in_dir(dir).map_err(err)?
        } else {
            let mut sb = Schema::builder();
            let opts = TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(IndexRecordOption::WithFreqs),
            );
            sb.add_text_field("body", opts);
            sb.add_u64_field("ord", INDEXED | STORED | FAST);
            Index::create_in_dir(dir, sb.build()).map_err(err)?
        };
        index.tokenizers().register(ANALYZER, analyzer()?);
        let schema = index.schema();
        let body = schema.get_field("body").map_err(err)?;
        let ord = schema.get_field("ord").map_err(err)?;
        let reader = index.reader().map_err(err)?;
        Ok(Bm25Index {
            index,
            reader,
            body,
            ord,
        })
    }

    /// A writer for adding chunks (title and text are indexed together).
    pub fn writer(&self) -> Result<Bm25Writer, KnowledgeError> {
        let w: IndexWriter = self.index.writer_with_num_threads(1, 64_000_000).map_err(err)?;
        Ok(Bm25Writer {
            writer: w,
            body: self.body,
            ord: self.ord,
        })
    }

    pub fn reload(&self) -> Result<(), KnowledgeError> {
        self.reader.reload().map_err(err)
    }

    /// The top `k` chunk ordinals for `query`, best first, with their BM25 scores.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(u64, f32)>, KnowledgeError> {
        let terms = tokenize(query);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.body, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let q = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&q, &TopDocs::with_limit(k)).map_err(err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(err)?;
            if let Some(o) = d.get_first(self.ord).and_then(|v| v.as_u64()) {
                out.push((o, score));
            }
        }
        Ok(out)
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// Adds chunks to the index; `commit` makes them searchable.
pub struct Bm25Writer {
    writer: IndexWriter,
    body: tantivy::schema::Field,
    ord: tantivy::schema::Field,
}

impl Bm25Writer {
    pub fn add(&mut self, ord: u64, title: &str, text: &str) -> Result<(), KnowledgeError> {
        let body = if title.is_empty() {
            text.to_string()
        } else {
            format!("{title}\n{text}")
        };
        self.writer
            .add_document(doc!(self.body => body, self.ord => ord))
            .map(|_| ())
            .map_err(err)
    }

    pub fn commit(mut self) -> Result<(), KnowledgeError> {
        self.writer.commit().map_err(err)?;
        self.writer.wait_merging_threads().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medical_tokens_stay_whole() {
        assert_eq!(
            tokenize("T2-weighted MRI, COVID-19 and a 2.3 cm mass; Crohn's disease (5-FU)."),
            [
                "t2-weighted",
                "mri",
                "covid-19",
                "and",
                "a",
                "2.3",
                "cm",
                "mass",
                "crohn's",
                "disease",
                "5-fu"
            ]
        );
    }
}
