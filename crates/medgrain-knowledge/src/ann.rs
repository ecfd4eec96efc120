//! The approximate dense index of a knowledge base, `KBDIR/dense.ann/`: the vectors in segments of up to
//! [`SEGMENT_ROWS`] rows (`seg-000000.usearch`, …; segment `s` holds rows `s·R … (s+1)·R − 1`, keyed by their
//! global row), each a usearch HNSW graph (inner product) over i8-quantised vectors — a quarter of f32's size —
//! memory-mapped when searching. A query searches every segment (in parallel) for its [`RERANK`] best candidates,
//! scores those exactly against the f32 rows of `vectors.f32` (read where they lie, never loaded whole), and keeps
//! the best `k`: the scores returned are exact inner products.
//!
//! Why this shape (measured in `scripts/ann_bench` and `examples/ann_scale.rs`, BENCHMARKS.md "Approximate dense
//! index"): one HNSW graph of 10M clustered vectors (M = 16, efC = 128) reaches only recall@10 0.51–0.55 against
//! exact search, while graphs of 1M reach 0.97 with i8 + exact re-ranking; segments also bound a build's memory
//! (one segment's vectors and graph at a time) and make an incremental add touch only the last segment.

use crate::KnowledgeError;
use rayon::prelude::*;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Folder of the approximate index in a knowledge base folder.
pub const ANN_DIR: &str = "dense.ann";
/// File of the single-graph index that knowledge bases built before segments had; removed by the next build.
const LEGACY_FILE: &str = "dense.usearch";
/// Rows per segment: the size at which one i8 graph with re-ranking measured recall@10 0.97 (≈ 530 MB per segment
/// on disk for 384-dimensional vectors).
pub const SEGMENT_ROWS: usize = 1_000_000;
/// Search breadth per segment (usearch's `expansion_search`).
pub const ANN_EF_SEARCH: usize = 256;
/// Candidates per segment re-scored exactly on the f32 vectors.
pub const RERANK: usize = 100;
/// File of the f32 vectors (row-major, little-endian) in a knowledge base folder.
pub const VECTORS_FILE: &str = "vectors.f32";

fn options(dim: usize) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: dim,
        metric: usearch::MetricKind::IP,
        quantization: usearch::ScalarKind::I8,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: ANN_EF_SEARCH,
        multi: false,
    }
}

fn uerr(what: &str, path: &Path, e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Index(format!("{}: {what}: {e}", path.display()))
}

fn path_str(p: &Path) -> Result<&str, KnowledgeError> {
    p.to_str()
        .ok_or_else(|| KnowledgeError::Usage(format!("{}: the index path must be UTF-8", p.display())))
}

fn segment_path(dir: &Path, s: usize) -> PathBuf {
    dir.join(ANN_DIR).join(format!("seg-{s:06}.usearch"))
}

/// Reads rows `from..to` of a `vectors.f32` file (`dim` little-endian f32 per row; `path` names it in errors): a
/// file shorter than that is an error that asks for a rebuild.
pub fn read_rows(
    file: &std::fs::File,
    path: &Path,
    dim: usize,
    from: usize,
    to: usize,
) -> Result<Vec<f32>, KnowledgeError> {
    let mut out = Vec::with_capacity((to - from) * dim);
    let mut buf = vec![0u8; (1 << 20) / (4 * dim).max(1) * 4 * dim.max(1)];
    let mut at = from * dim * 4;
    let end = to * dim * 4;
    while at < end {
        let want = (end - at).min(buf.len());
        file.read_exact_at(&mut buf[..want], at as u64)
            .map_err(|e| KnowledgeError::Usage(format!("{}: truncated vectors ({e}); rebuild", path.display())))?;
        out.extend(
            buf[..want]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        at += want;
    }
    Ok(out)
}

/// Searches `index`, waiting for a free search context when every one is taken (usearch keeps one per hardware
/// thread; a search that finds them all in use fails instead of waiting).
fn search_waiting(index: &usearch::Index, query: &[f32], k: usize) -> Result<Vec<u64>, KnowledgeError> {
    let mut tries = 0u32;
    loop {
        match index.search(query, k) {
            Ok(m) => return Ok(m.keys),
            Err(e) if e.what().contains("Reserve capacity") && tries < 100_000 => {
                tries += 1;
                std::thread::yield_now();
            }
            Err(e) => return Err(KnowledgeError::Index(format!("approximate search: {e}"))),
        }
    }
}

/// The segmented approximate index, opened for search (see the module documentation).
pub struct Ann {
    segments: Vec<usearch::Index>,
    vectors: std::fs::File,
    vectors_path: PathBuf,
    dim: usize,
    rows: usize,
}

impl Ann {
    /// Brings `DIR/dense.ann` up to the first `n` rows of `DIR/vectors.f32` with [`SEGMENT_ROWS`] rows per segment.
    /// Returns the rows added.
    pub fn update(dir: &Path, dim: usize, n: usize) -> Result<usize, KnowledgeError> {
        Self::update_with(dir, dim, n, SEGMENT_ROWS)
    }

    /// [`Ann::update`] with `segment_rows` rows per segment. Segments that already hold their rows are kept as
    /// they are; the last one is extended with the rows past the ones it holds (an incremental build); a segment
    /// that does not match (unreadable, another dimension, more rows than it should hold after an interrupted
    /// build) is built anew. Only one segment's vectors and graph are in memory at a time; each segment is written
    /// to a temporary file and renamed.
    pub fn update_with(dir: &Path, dim: usize, n: usize, segment_rows: usize) -> Result<usize, KnowledgeError> {
        if dim == 0 || segment_rows == 0 {
            return Err(KnowledgeError::Usage(
                "an approximate index needs vectors and segments of at least one row".into(),
            ));
        }
        let vpath = dir.join(VECTORS_FILE);
        let vfile = std::fs::File::open(&vpath).map_err(|e| KnowledgeError::io(&vpath, e))?;
        let adir = dir.join(ANN_DIR);
        std::fs::create_dir_all(&adir).map_err(|e| KnowledgeError::io(&adir, e))?;
        let segs = n.div_ceil(segment_rows);
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let mut added = 0;
        for s in 0..segs {
            let (lo, hi) = (s * segment_rows, ((s + 1) * segment_rows).min(n));
            let path = segment_path(dir, s);
            let index = usearch::new_index(&options(dim)).map_err(|e| uerr("creating the index", &path, e))?;
            let mut from = lo;
            if path.is_file() {
                // a view is enough to see whether the segment is complete; it is loaded only to be extended
                let fits = |ix: &usearch::Index| {
                    ix.dimensions() == dim && ix.size() <= hi - lo && (ix.size() == 0 || ix.contains(lo as u64))
                };
                let held = {
                    let view = usearch::new_index(&options(dim)).map_err(|e| uerr("creating the index", &path, e))?;
                    match view.view(path_str(&path)?) {
                        Ok(()) if fits(&view) => Some(view.size()),
                        _ => None,
                    }
                };
                match held {
                    Some(h) if h == hi - lo => continue,
                    Some(_) if index.load(path_str(&path)?).is_ok() && fits(&index) => from = lo + index.size(),
                    _ => {
                        tracing::warn!("{}: does not match the vectors; rebuilding it", path.display());
                        index.reset().map_err(|e| uerr("resetting", &path, e))?;
                    }
                }
            }
            let rows = read_rows(&vfile, &vpath, dim, from, hi)?;
            index.reserve(hi - lo).map_err(|e| uerr("reserving", &path, e))?;
            let failure = std::sync::Mutex::new(None);
            std::thread::scope(|sc| {
                for w in 0..threads {
                    let (index, failure, rows) = (&index, &failure, &rows);
                    sc.spawn(move || {
                        for (i, v) in rows.chunks_exact(dim).enumerate().skip(w).step_by(threads) {
                            if let Err(e) = index.add((from + i) as u64, v) {
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert_with(|| e.to_string());
                                }
                                return;
                            }
                        }
                    });
                }
            });
            if let Some(e) = failure.into_inner().ok().flatten() {
                return Err(uerr("adding vectors", &path, e));
            }
            let tmp = path.with_extension("usearch.tmp");
            index.save(path_str(&tmp)?).map_err(|e| uerr("saving", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| KnowledgeError::io(&path, e))?;
            added += hi - from;
            tracing::info!("approximate index: segment {} of {segs} holds rows {lo}..{hi}", s + 1);
        }
        // segments past the vectors (a larger index from an interrupted build) and the pre-segment single file
        for s in segs.. {
            let p = segment_path(dir, s);
            if !p.is_file() {
                break;
            }
            std::fs::remove_file(&p).map_err(|e| KnowledgeError::io(&p, e))?;
        }
        let legacy = dir.join(LEGACY_FILE);
        if legacy.is_file() {
            std::fs::remove_file(&legacy).map_err(|e| KnowledgeError::io(&legacy, e))?;
        }
        Ok(added)
    }

    /// Opens `DIR/dense.ann` memory-mapped when its segments hold exactly rows `0..n` of `dim`; `None` (with a
    /// warning) when it is missing or stale, so that search falls back to the exact scan.
    pub fn open(dir: &Path, dim: usize, n: usize) -> Option<Ann> {
        let stale = |why: &str| {
            tracing::warn!(
                "{}: {why}: searching exactly (the next `kb build` rebuilds it)",
                dir.join(ANN_DIR).display()
            );
            None
        };
        let vectors_path = dir.join(VECTORS_FILE);
        let vectors = match std::fs::File::open(&vectors_path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.len() >= (n * dim * 4) as u64) => f,
            _ => return stale("the vectors it points into are missing or short"),
        };
        let mut segments = Vec::new();
        let mut rows = 0;
        for s in 0.. {
            let path = segment_path(dir, s);
            if !path.is_file() {
                break;
            }
            let Some(p) = path.to_str() else {
                return stale("the path is not UTF-8");
            };
            let Ok(index) = usearch::new_index(&options(dim)) else {
                return stale("usearch could not make an index");
            };
            match index.view(p) {
                Ok(()) if index.dimensions() == dim && index.size() > 0 && index.contains(rows as u64) => {
                    index.change_expansion_search(ANN_EF_SEARCH);
                    rows += index.size();
                    segments.push(index);
                }
                _ => return stale(&format!("segment {s} is unreadable or out of place")),
            }
        }
        if rows != n {
            return stale(&format!("it holds {rows} vectors, the knowledge base {n}"));
        }
        Some(Ann {
            segments,
            vectors,
            vectors_path,
            dim,
            rows,
        })
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Segments.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// The `k` nearest rows to `query` by inner product, best first, with their exact inner products (as
    /// [`crate::dense::top_k`]; ties by row). Safe to call from many threads at once.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, KnowledgeError> {
        if k == 0 || self.rows == 0 {
            return Ok(Vec::new());
        }
        if query.len() != self.dim {
            return Err(KnowledgeError::Usage(format!(
                "a {}-dimensional query for a {}-dimensional index",
                query.len(),
                self.dim
            )));
        }
        let per = RERANK.max(k);
        let parts: Vec<Result<Vec<(u64, f32)>, KnowledgeError>> = self
            .segments
            .par_iter()
            .map(|seg| {
                let mut keys = search_waiting(seg, query, per)?;
                keys.sort_unstable();
                let mut row = vec![0u8; self.dim * 4];
                keys.into_iter()
                    .map(|key| {
                        self.vectors
                            .read_exact_at(&mut row, key * (self.dim as u64) * 4)
                            .map_err(|e| KnowledgeError::io(&self.vectors_path, e))?;
                        let s: f32 = row
                            .chunks_exact(4)
                            .zip(query)
                            .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
                            .sum();
                        Ok((key, s))
                    })
                    .collect()
            })
            .collect();
        let mut best = Vec::with_capacity(per * self.segments.len());
        for p in parts {
            best.extend(p?);
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        best.truncate(k);
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::top_k;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    fn unit(i: usize, dim: usize) -> Vec<f32> {
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn write_vectors(dir: &Path, rows: &[f32]) {
        let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(dir.join(VECTORS_FILE), bytes).unwrap();
    }

    fn segment_sizes(dir: &Path, dim: usize) -> Vec<usize> {
        (0..)
            .map(|s| segment_path(dir, s))
            .take_while(|p| p.is_file())
            .map(|p| {
                let ix = usearch::new_index(&options(dim)).unwrap();
                ix.view(p.to_str().unwrap()).unwrap();
                ix.size()
            })
            .collect()
    }

    #[test]
    fn segments_build_grow_and_answer_with_exact_scores_from_many_threads() {
        let dim = 16;
        let all: Vec<f32> = (0..600).flat_map(|i| unit(i, dim)).collect();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_vectors(d, &all[..400 * dim]);
        assert_eq!(Ann::update_with(d, dim, 400, 250).unwrap(), 400);
        assert_eq!(segment_sizes(d, dim), [250, 150]);
        assert!(Ann::open(d, dim, 600).is_none(), "a stale index is not used");
        write_vectors(d, &all);
        let before = std::fs::read(segment_path(d, 0)).unwrap();
        assert_eq!(
            Ann::update_with(d, dim, 600, 250).unwrap(),
            200,
            "only the new rows are added"
        );
        assert_eq!(segment_sizes(d, dim), [250, 250, 100]);
        assert_eq!(
            std::fs::read(segment_path(d, 0)).unwrap(),
            before,
            "a full segment is not rewritten"
        );
        assert_eq!(Ann::update_with(d, dim, 600, 250).unwrap(), 0);
        let ann = Ann::open(d, dim, 600).unwrap();
        assert_eq!((ann.len(), ann.segments()), (600, 3));
        // from 8 threads at once (more than the cores: searches wait for a search context, never fail): every
        // score is the exact inner product of its row, best first; HNSW is approximate (a multi-threaded build makes a
        // different graph each run, and a graph may miss a node), so recall is held to floors, not to equality
        let (found_self, hits) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..8 {
                let (ann, all, found_self, hits) = (&ann, &all, &found_self, &hits);
                s.spawn(move || {
                    for i in (t..600).step_by(8) {
                        let q = &all[i * dim..(i + 1) * dim];
                        let want = top_k(all, dim, q, 5);
                        let got = ann.search(q, 5).unwrap();
                        assert_eq!(got.len(), 5);
                        for (key, score) in &got {
                            let row = &all[*key as usize * dim..(*key as usize + 1) * dim];
                            let exact: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
                            assert!((score - exact).abs() < 1e-5, "row {key}: {score} vs {exact}");
                        }
                        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "{got:?}");
                        if got[0].0 == i as u64 {
                            found_self.fetch_add(1, Relaxed);
                        }
                        hits.fetch_add(got.iter().filter(|g| want.iter().any(|w| w.0 == g.0)).count(), Relaxed);
                    }
                });
            }
        });
        let (found_self, hits) = (found_self.into_inner(), hits.into_inner());
        assert!(found_self >= 588, "{found_self} of 600 rows found themselves");
        assert!(hits >= 2850, "recall@5 {} against the exact scan", hits as f64 / 3000.0);
        assert!(
            ann.search(&all[..dim - 1], 5).is_err(),
            "a query of another dimension is an error"
        );
    }

    #[test]
    fn damaged_or_surplus_segments_are_rebuilt_and_the_old_single_file_goes() {
        let dim = 8;
        let all: Vec<f32> = (0..300).flat_map(|i| unit(i, dim)).collect();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_vectors(d, &all);
        std::fs::write(d.join(LEGACY_FILE), b"old").unwrap();
        assert_eq!(Ann::update_with(d, dim, 300, 100).unwrap(), 300);
        assert!(!d.join(LEGACY_FILE).exists());
        // a truncated middle segment: search falls back, the next build rebuilds only that one
        let p1 = segment_path(d, 1);
        let bytes = std::fs::read(&p1).unwrap();
        std::fs::write(&p1, &bytes[..bytes.len() / 3]).unwrap();
        assert!(Ann::open(d, dim, 300).is_none());
        assert_eq!(Ann::update_with(d, dim, 300, 100).unwrap(), 100);
        assert!(Ann::open(d, dim, 300).is_some());
        // an index larger than the vectors (an interrupted build): the surplus segment goes
        assert_eq!(Ann::update_with(d, dim, 200, 100).unwrap(), 0);
        assert_eq!(segment_sizes(d, dim), [100, 100]);
        assert!(Ann::open(d, dim, 200).is_some());
        // vectors shorter than the index claims: not opened
        write_vectors(d, &all[..150 * dim]);
        assert!(Ann::open(d, dim, 200).is_none());
        assert!(
            Ann::update_with(d, dim, 300, 100).is_err(),
            "rows past the end of vectors.f32 are an error"
        );
    }
}
