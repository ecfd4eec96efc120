//! Corpus ingestion: JSONL (`id`, `title`, `text`, `source`, optional `url`), folders of Markdown / plain text, and
//! PubMed/MEDLINE XML (`PubmedArticleSet`: PMID, ArticleTitle, AbstractText with labelled sections, MeSH headings
//! kept as metadata). Every problem (malformed line, invalid XML, empty document, non-UTF-8 text) is counted per
//! file with its first examples; a bad file never stops the build.

use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One document before chunking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub text: String,
    pub source: String,
    pub url: Option<String>,
    /// MeSH descriptor names (PubMed), empty otherwise.
    pub mesh: Vec<String>,
}

/// What one input file gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    /// "jsonl" | "text" | "pubmed-xml".
    pub format: String,
    pub documents: usize,
    /// Problems by kind ("malformed_json", "missing_text", "empty", "not_utf8", "invalid_xml", "unreadable").
    pub problems: std::collections::BTreeMap<String, usize>,
    /// The first few problems, with line numbers where known.
    pub examples: Vec<String>,
}

impl FileReport {
    fn problem(&mut self, kind: &str, detail: String) {
        *self.problems.entry(kind.to_string()).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(format!("{kind}: {detail}"));
        }
    }

    pub fn problem_count(&self) -> usize {
        self.problems.values().sum()
    }
}

/// Every input file under `paths` (files as given; folders walked, sorted, `.jsonl`, `.json`, `.xml`, `.md`,
/// `.markdown`, `.txt`), in a deterministic order.
pub fn input_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if format_of(&p).is_some() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or folder", p.display()),
            ));
        }
    }
    Ok(out)
}

/// The format a file is read as, from its extension.
pub fn format_of(p: &Path) -> Option<&'static str> {
    let name = p.file_name()?.to_string_lossy().to_lowercase();
    let name = name.trim_end_matches(".gz");
    if name.ends_with(".jsonl") || name.ends_with(".json") {
        Some("jsonl")
    } else if name.ends_with(".xml") {
        Some("pubmed-xml")
    } else if name.ends_with(".md") || name.ends_with(".markdown") || name.ends_with(".txt") {
        Some("text")
    } else {
        None
    }
}

#[derive(Deserialize)]
struct JsonDoc {
    id: Option<serde_json::Value>,
    #[serde(default)]
    title: Option<String>,
    text: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Reads one file, calling `emit` per good document. `name` is the file's name as recorded (relative path).
pub fn read_file(path: &Path, name: &str, emit: &mut dyn FnMut(Document)) -> FileReport {
    let format = format_of(path).unwrap_or("text");
    let mut report = FileReport {
        path: name.to_string(),
        format: format.to_string(),
        ..Default::default()
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            report.problem("unreadable", e.to_string());
            return report;
        }
    };
    // PubMed baseline files and large JSONL dumps come gzip'd.
    let bytes = if name.ends_with(".gz") {
        use std::io::Read;
        let mut out = Vec::new();
        if let Err(e) = flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out) {
            report.problem("unreadable", format!("gzip: {e}"));
            return report;
        }
        out
    } else {
        bytes
    };
    match format {
        "jsonl" => read_jsonl(&bytes, name, &mut report, emit),
        "pubmed-xml" => read_pubmed(&bytes, &mut report, emit),
        _ => read_text(&bytes, path, name, &mut report, emit),
    }
    report
}

fn read_jsonl(bytes: &[u8], name: &str, report: &mut FileReport, emit: &mut dyn FnMut(Document)) {
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            report.problem("not_utf8", format!("line {line_no}"));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let doc: JsonDoc = match serde_json::from_str(line) {
            Ok(d) => d,
            Err(e) => {
                report.problem("malformed_json", format!("line {line_no}: {e}"));
                continue;
            }
        };
        let text = doc.text.unwrap_or_default();
        if text.trim().is_empty() {
            report.problem("missing_text", format!("line {line_no}"));
            continue;
        }
        let id = match doc.id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => format!("{name}:{line_no}"),
        };
        report.documents += 1;
        emit(Document {
            id,
            title: doc.title.unwrap_or_default(),
            text,
            source: doc.source.unwrap_or_else(|| name.to_string()),
            url: doc.url,
            mesh: Vec::new(),
        });
    }
}

fn read_text(bytes: &[u8], path: &Path, name: &str, report: &mut FileReport, emit: &mut dyn FnMut(Document)) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        report.problem("not_utf8", name.to_string());
        return;
    };
    if text.trim().is_empty() {
        report.problem("empty", name.to_string());
        return;
    }
    // Title: the first Markdown heading, else the file stem; headings and list markers become plain sentences.
    let title = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix('#')
                .map(|t| t.trim_start_matches('#').trim().to_string())
        })
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().replace(['_', '-'], " "))
                .unwrap_or_default()
        });
    let mut body = String::new();
    for line in text.lines() {
        let l = line
            .trim()
            .trim_start_matches('#')
            .trim_start_matches(['-', '*', '>'])
            .trim();
        if l.is_empty() {
            body.push('\n');
            continue;
        }
        body.push_str(l);
        // A heading or list item is its own sentence.
        if !l.ends_with(['.', '!', '?', ':']) && (line.trim_start().starts_with(['#', '-', '*'])) {
            body.push('.');
        }
        body.push('\n');
    }
    report.documents += 1;
    emit(Document {
        id: name.to_string(),
        title,
        text: body.trim().to_string(),
        source: "file".into(),
        url: None,
        mesh: Vec::new(),
    });
}

/// PubMed XML: one document per `PubmedArticle` with an abstract or a title.
fn read_pubmed(bytes: &[u8], report: &mut FileReport, emit: &mut dyn FnMut(Document)) {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let (mut pmid, mut title, mut abstract_parts, mut mesh) =
        (String::new(), String::new(), Vec::<String>::new(), Vec::new());
    let mut label: Option<String> = None;
    let mut current = String::new();
    let mut articles = 0usize;
    loop {
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => {
                report.problem(
                    "invalid_xml",
                    format!(
                        "at byte {}: {e} ({articles} articles read before it)",
                        reader.buffer_position()
                    ),
                );
                return;
            }
        };
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                if name == "AbstractText" {
                    label = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"Label")
                        .map(|a| String::from_utf8_lossy(&a.value).to_string());
                }
                if name == "PubmedArticle" {
                    pmid.clear();
                    title.clear();
                    abstract_parts.clear();
                    mesh.clear();
                }
                if matches!(
                    name.as_str(),
                    "AbstractText" | "ArticleTitle" | "PMID" | "DescriptorName"
                ) {
                    current.clear();
                }
                stack.push(name);
            }
            Event::Text(t) => {
                let s = match t.decode() {
                    Ok(s) => quick_xml::escape::unescape(&s)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|_| s.to_string()),
                    Err(_) => {
                        report.problem("not_utf8", format!("at byte {}", reader.buffer_position()));
                        String::new()
                    }
                };
                current.push_str(&s);
            }
            Event::GeneralRef(r) => {
                // Entity references (&amp; &lt; …) arrive on their own in quick-xml 0.38.
                let name = String::from_utf8_lossy(r.as_ref()).to_string();
                let s = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                current.push_str(s);
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                let parent = stack
                    .len()
                    .checked_sub(2)
                    .and_then(|i| stack.get(i))
                    .cloned()
                    .unwrap_or_default();
                match name.as_str() {
                    "PMID" if parent == "MedlineCitation" && pmid.is_empty() => pmid = current.trim().to_string(),
                    "ArticleTitle" => title = current.trim().to_string(),
                    "AbstractText" => {
                        let t = current.trim();
                        if !t.is_empty() {
                            abstract_parts.push(match label.take() {
                                Some(l) if !l.is_empty() => format!("{l}: {t}"),
                                _ => t.to_string(),
                            });
                        }
                    }
                    "DescriptorName" => mesh.push(current.trim().to_string()),
                    "PubmedArticle" => {
                        articles += 1;
                        let text = abstract_parts.join("\n");
                        if text.trim().is_empty() && title.is_empty() {
                            report.problem("empty", format!("PMID {pmid}"));
                        } else if pmid.is_empty() {
                            report.problem("missing_id", format!("article {articles}"));
                        } else {
                            report.documents += 1;
                            emit(Document {
                                id: format!("pmid:{pmid}"),
                                title: title.clone(),
                                text: if text.trim().is_empty() { title.clone() } else { text },
                                source: "pubmed".into(),
                                url: Some(format!("https://pubmed.ncbi.nlm.nih.gov/{pmid}/")),
                                mesh: mesh.clone(),
                            });
                        }
                    }
                    _ => {}
                }
                // Text of a child element also belongs to its parent (e.g. <i> inside AbstractText).
                stack.pop();
            }
            Event::Eof => {
                if !stack.is_empty() {
                    report.problem("invalid_xml", format!("unexpected end inside <{}>", stack.join("/")));
                }
                return;
            }
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, content: &[u8]) -> (Vec<Document>, FileReport) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let mut docs = Vec::new();
        let r = read_file(&p, name, &mut |d| docs.push(d));
        (docs, r)
    }

    #[test]
    fn jsonl_counts_bad_lines_and_keeps_the_rest() {
        let (docs, r) = read(
            "c.jsonl",
            b"{\"id\":\"a\",\"title\":\"T\",\"text\":\"Liver cyst.\",\"source\":\"s\"}\n{not json\n{\"id\":\"b\",\"text\":\"\"}\n\xff\xfe\n{\"id\":7,\"text\":\"Nodule.\"}\n",
        );
        assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a", "7"]);
        assert_eq!(r.documents, 2);
        assert_eq!(r.problems["malformed_json"], 1);
        assert_eq!(r.problems["missing_text"], 1);
        assert_eq!(r.problems["not_utf8"], 1);
        assert!(r.examples[0].contains("line 2"), "{:?}", r.examples);
    }

    #[test]
    fn pubmed_xml_with_labelled_sections_and_mesh() {
        let xml = br#"<?xml version="1.0"?>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version="1">123</PMID><Article>
<ArticleTitle>Pulmonary nodules &amp; CT</ArticleTitle><Abstract>
<AbstractText Label="BACKGROUND">Nodules are common.</AbstractText>
<AbstractText Label="RESULTS">Most are <i>benign</i>.</AbstractText></Abstract></Article>
<MeshHeadingList><MeshHeading><DescriptorName UI="D1">Lung Neoplasms</DescriptorName></MeshHeading></MeshHeadingList>
</MedlineCitation><PubmedData><ArticleIdList><ArticleId IdType="pubmed">123</ArticleId></ArticleIdList></PubmedData></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>124</PMID><Article><ArticleTitle></ArticleTitle></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>"#;
        let (docs, r) = read("p.xml", xml);
        assert_eq!(docs.len(), 1, "{r:?}");
        let d = &docs[0];
        assert_eq!(d.id, "pmid:123");
        assert_eq!(d.title, "Pulmonary nodules & CT");
        assert_eq!(d.text, "BACKGROUND: Nodules are common.\nRESULTS: Most are benign.");
        assert_eq!(d.mesh, ["Lung Neoplasms"]);
        assert_eq!(r.problems["empty"], 1);
        let (docs, r) = read(
            "bad.xml",
            b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID></Med",
        );
        assert!(docs.is_empty());
        assert_eq!(r.problems["invalid_xml"], 1, "{r:?}");
    }

    #[test]
    fn gzip_inputs_are_read() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"id\":\"z\",\"text\":\"Gzip passage.\"}\n").unwrap();
        let (docs, r) = read("c.jsonl.gz", &gz.finish().unwrap());
        assert_eq!((docs.len(), r.format.as_str()), (1, "jsonl"));
        let (docs, r) = read("bad.jsonl.gz", b"not gzip");
        assert!(docs.is_empty() && r.problems["unreadable"] == 1);
    }

    #[test]
    fn text_files_take_their_heading_as_title() {
        let (docs, _) = read(
            "liver.md",
            b"# Liver cysts\n\nSimple cysts are anechoic.\n- thin wall\n",
        );
        assert_eq!(docs[0].title, "Liver cysts");
        assert!(docs[0].text.contains("thin wall."));
        let (docs, r) = read("empty.txt", b"  \n");
        assert!(docs.is_empty() && r.problems["empty"] == 1);
        let (docs, r) = read("latin1.txt", b"caf\xe9");
        assert!(docs.is_empty() && r.problems["not_utf8"] == 1);
    }
}
