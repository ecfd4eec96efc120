"""The knowledge base (`medgrain kb build/search`): SPEC output shape, BM25 against rank_bm25 on the same
tokenisation, bad input counted per file, incremental builds, PubMed XML, dense retrieval with the real
all-MiniLM-L6-v2, and the triplets' knowledge column."""
import glob
import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from rank_bm25 import BM25Okapi

ROOT = Path(__file__).resolve().parents[2]
STARTER = ROOT / "crates/medgrain-knowledge/data/starter_kb.jsonl"
LABELLED = ROOT / "crates/medgrain-reports/data/labelled_sentences.jsonl"
# medgrain's analyser: runs of letters/digits joined by - . ' ; lower case (Rust: [\p{L}\p{N}]+(?:[-.'][\p{L}\p{N}]+)*)
TOKEN = re.compile(r"[^\W_]+(?:[-.'][^\W_]+)*")


def tokenize(text):
    return [t.lower() for t in TOKEN.findall(text)]


def run(bin_, *args, env=None, ok=True):
    r = subprocess.run([bin_, *map(str, args)], capture_output=True, text=True, env=env)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def no_model_env():
    env = dict(os.environ)
    env.pop("MEDGRAIN_EMBED_MODEL", None)
    return env


def search(bin_, kb, query, top=10, mode=None, env=None):
    args = ["kb", "search", kb, query, "--json", "--top", top]
    if mode:
        args += ["--mode", mode]
    return json.loads(run(bin_, *args, env=env).stdout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The starter passages plus the 308 labelled report sentences as documents (348 documents)."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "starter.jsonl").write_text(STARTER.read_text())
    docs = [{"id": f"s{i}", "title": "", "text": json.loads(l)["sentence"], "source": "labelled"}
            for i, l in enumerate(LABELLED.read_text().splitlines())]
    (d / "sentences.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    return d


@pytest.fixture(scope="module")
def bm25_kb(medgrain_bin, corpus, tmp_path_factory):
    kb = tmp_path_factory.mktemp("kb") / "kb"
    r = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", kb, env=no_model_env())
    assert "BM25 only" in r.stdout
    return kb


QUERIES = [
    "pleural effusion", "pericardial effusion", "pulmonary nodule right upper lobe", "liver metastasis",
    "hepatic cyst water attenuation", "ground-glass opacity", "emphysema upper lobes", "consolidation pneumonia",
    "rib fracture", "T12 vertebral compression fracture", "lymph node short axis", "mediastinal lymphadenopathy",
    "atelectasis lower lobe", "cardiomegaly", "hiatal hernia", "bronchiectasis", "melanoma dermoscopy",
    "diabetic retinopathy microaneurysms", "breast cyst anechoic", "fibroadenoma", "glioma T2-weighted",
    "brain metastasis oedema", "seborrheic keratosis", "macular degeneration drusen", "pneumothorax",
    "lung mass spiculated", "calcified nodule", "kidney cyst", "adrenal nodule", "thyroid nodule",
    "aorta calcification", "coronary artery calcification", "HU window level", "RECIST diameter",
    "COVID-19 pneumonia", "2.3 cm mass", "left lower lobe", "no pleural effusion", "sternum lesion",
    "pancreatic mass",
]


class TantivyBM25(BM25Okapi):
    """rank_bm25's Okapi BM25 with the idf Lucene and tantivy use: ln(1 + (N - n + 0.5) / (n + 0.5))."""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def test_search_output_follows_the_spec(medgrain_bin, bm25_kb):
    out = search(medgrain_bin, bm25_kb, "pleural effusion on CT", top=5, env=no_model_env())
    assert out["query"] == "pleural effusion on CT"
    assert 1 <= len(out["hits"]) <= 5
    for h in out["hits"]:
        assert set(h) == {"id", "title", "source", "score", "text"}
    scores = [h["score"] for h in out["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert all("effusion" in h["text"].lower() for h in out["hits"])


def test_bm25_agrees_with_rank_bm25(medgrain_bin, bm25_kb, corpus):
    docs = []
    for f in ["sentences.jsonl", "starter.jsonl"]:  # input files are ingested in sorted path order
        for l in (corpus / f).read_text().splitlines():
            d = json.loads(l)
            docs.append((f"{d['id']}#0", (d["title"] + "\n" + d["text"]) if d["title"] else d["text"]))
    assert len(docs) >= 340
    ref = TantivyBM25([tokenize(t) for _, t in docs], k1=1.2, b=0.75)
    agree, max_rel = 0, 0.0
    for q in QUERIES:
        ours = search(medgrain_bin, bm25_kb, q, top=5, env=no_model_env())["hits"]
        scores = ref.get_scores(tokenize(q))
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))[:5]
        theirs = [docs[i][0] for i in order if scores[i] > 0]
        # identical top-5 sets (ties may swap order); scores equal within tantivy's length quantisation
        if {h["id"] for h in ours} == set(theirs):
            agree += 1
        for h in ours:
            i = next(k for k, (d, _) in enumerate(docs) if d == h["id"])
            max_rel = max(max_rel, abs(h["score"] - scores[i]) / scores[i])
    print(f"top-5 sets equal for {agree}/{len(QUERIES)} queries; max relative score difference {max_rel:.4f}")
    assert agree >= 0.9 * len(QUERIES)
    assert max_rel < 0.05


def test_bad_input_is_counted_per_file_and_the_build_completes(medgrain_bin, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_text('{"id": "ok1", "title": "Liver", "text": "Hepatic cysts are common.", "source": "t"}\n'
                               '{broken\n{"id": "e", "text": ""}\n')
    (d / "b.xml").write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>9</PMID>")
    (d / "c.md").write_text("   \n")
    (d / "d.txt").write_bytes(b"Caf\xe9 au lait spots.")
    (d / "e.md").write_text("# Spleen\n\nThe spleen lies in the left upper quadrant.\n")
    kb = tmp_path / "kb"
    r = run(medgrain_bin, "kb", "build", "--input", d, "--out", kb, env=no_model_env(), ok=False)
    assert r.returncode == 1, r.stderr
    manifest = json.loads((kb / "kb.json").read_text())
    probs = {Path(f["report"]["path"]).name: f["report"]["problems"] for f in manifest["files"]}
    assert probs["a.jsonl"] == {"malformed_json": 1, "missing_text": 1}
    assert probs["b.xml"] == {"invalid_xml": 1}
    assert probs["c.md"] == {"empty": 1}
    assert probs["d.txt"] == {"not_utf8": 1}
    assert probs["e.md"] == {}
    assert manifest["chunks"] == 2
    hits = search(medgrain_bin, kb, "spleen quadrant", env=no_model_env())["hits"]
    assert hits[0]["title"] == "Spleen"


def test_incremental_build_skips_known_files_and_duplicates(medgrain_bin, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": "1", "text": "Alpha passage about the liver.", "source": "t"}\n')
    b.write_text('{"id": "2", "text": "Beta passage about the spleen.", "source": "t"}\n'
                 '{"id": "3", "text": "Alpha passage about the  liver.", "source": "t"}\n')
    kb = tmp_path / "kb"
    run(medgrain_bin, "kb", "build", "--input", a, "--out", kb, env=no_model_env())
    r = run(medgrain_bin, "kb", "build", "--input", a, b, "--out", kb, env=no_model_env())
    assert "1 already in the knowledge base" in r.stdout and "+1 duplicates dropped" in r.stdout, r.stdout
    m = json.loads((kb / "kb.json").read_text())
    assert m["chunks"] == 2 and m["documents"] == 3
    assert search(medgrain_bin, kb, "spleen", env=no_model_env())["hits"][0]["id"] == "2#0"
    assert len(search(medgrain_bin, kb, "passage", env=no_model_env())["hits"]) == 2


def test_pubmed_xml(medgrain_bin, tmp_path):
    x = tmp_path / "pubmed.xml"
    x.write_text("""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">
<PubmedArticleSet>
 <PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">31000001</PMID>
  <Article PubModel="Print"><ArticleTitle>Incidental pulmonary nodules on chest CT.</ArticleTitle>
   <Abstract><AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Incidental nodules are frequent.</AbstractText>
   <AbstractText Label="CONCLUSIONS" NlmCategory="CONCLUSIONS">Most solid nodules &lt; 6 mm need no follow-up.</AbstractText></Abstract>
  </Article>
  <MeshHeadingList><MeshHeading><DescriptorName UI="D055613" MajorTopicYN="Y">Multiple Pulmonary Nodules</DescriptorName></MeshHeading></MeshHeadingList>
 </MedlineCitation><PubmedData><ArticleIdList><ArticleId IdType="pubmed">31000001</ArticleId></ArticleIdList></PubmedData></PubmedArticle>
</PubmedArticleSet>
""")
    kb = tmp_path / "kb"
    run(medgrain_bin, "kb", "build", "--input", x, "--out", kb, env=no_model_env())
    h = search(medgrain_bin, kb, "follow-up of solid nodules", env=no_model_env())["hits"][0]
    assert h["id"] == "pmid:31000001#0" and h["source"] == "pubmed"
    assert h["text"] == "BACKGROUND: Incidental nodules are frequent. CONCLUSIONS: Most solid nodules < 6 mm need no follow-up."
    chunk = json.loads((kb / "chunks.jsonl").read_text().splitlines()[0])
    assert chunk["mesh"] == ["Multiple Pulmonary Nodules"]


@pytest.fixture(scope="module")
def model_dir():
    p = os.environ.get("MEDGRAIN_EMBED_MODEL")
    if not p or not (Path(p) / "model.safetensors").is_file():
        pytest.fail("MEDGRAIN_EMBED_MODEL must name the all-MiniLM-L6-v2 folder (scripts/test.sh sets it)")
    return p


def test_dense_and_hybrid_retrieval(medgrain_bin, corpus, tmp_path, model_dir):
    kb = tmp_path / "kb"
    r = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", kb)
    assert "BM25 + dense" in r.stdout
    # a paraphrase sharing no content word with its passage: BM25 cannot find it, the embedder can
    q = "a round, water-density lesion with a sharp edge within the hepatic parenchyma"
    dense = search(medgrain_bin, kb, q, top=3, mode="dense")["hits"]
    assert "starter:hepatic-cyst-ct#0" in [h["id"] for h in dense], dense
    assert all(-1.0 <= h["score"] <= 1.0 for h in dense)
    # hybrid (the default with a model) is reciprocal rank fusion of the BM25 and dense lists (k = 60, depth 50)
    q = "melanoma dermoscopy"
    hybrid = search(medgrain_bin, kb, q, top=3)["hits"]
    fused = {}
    for mode in ["bm25", "dense"]:
        for rank, h in enumerate(search(medgrain_bin, kb, q, top=50, mode=mode)["hits"]):
            fused[h["id"]] = fused.get(h["id"], 0.0) + 1 / (60 + rank + 1)
    ordinal = {json.loads(l)["id"]: i for i, l in enumerate((kb / "chunks.jsonl").read_text().splitlines())}
    want = sorted(fused.items(), key=lambda kv: (-kv[1], ordinal[kv[0]]))[:3]  # ties: the earlier-ingested chunk
    assert [h["id"] for h in hybrid] == [k for k, _ in want]
    assert all(abs(h["score"] - s) < 1e-12 for h, (_, s) in zip(hybrid, want))
    assert "starter:melanoma-dermoscopy#0" in [h["id"] for h in hybrid]
    # without the model the same KB falls back to BM25, and dense is refused with a clear error
    out = search(medgrain_bin, kb, "melanoma", top=1, env=no_model_env())
    assert out["hits"][0]["id"] == "starter:melanoma-dermoscopy#0"
    r = run(medgrain_bin, "kb", "search", kb, "x", "--json", "--mode", "dense", env=no_model_env(), ok=False)
    assert r.returncode == 2 and "MEDGRAIN_EMBED_MODEL" in r.stderr


def test_both_embedding_runtimes_give_the_same_vectors(medgrain_bin, corpus, tmp_path, model_dir):
    """ONNX Runtime (the default when ORT_DYLIB_PATH names its library; medgrain writes the BERT graph from the
    safetensors) and candle embed the same 348 passages: the build says which ran, and every vector pair agrees to
    cosine ≥ 0.9999 (each is held to sentence-transformers by the Rust parity test). Choosing ONNX Runtime without
    its library, or an unknown runtime, is refused naming the variable."""
    lib = os.environ.get("ORT_DYLIB_PATH")
    assert lib and Path(lib).is_file(), "ORT_DYLIB_PATH must name libonnxruntime.so (scripts/test.sh sets it)"
    vectors = {}
    for runtime in ["onnxruntime", "candle"]:
        env = dict(os.environ, MEDGRAIN_EMBED_RUNTIME=runtime)
        r = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", tmp_path / runtime, env=env)
        assert f"({runtime})" in r.stdout, r.stdout
        v = np.fromfile(tmp_path / runtime / "vectors.f32", dtype="<f4").reshape(-1, 384)
        assert len(v) == 348 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
        vectors[runtime] = v
    auto = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", tmp_path / "auto")
    assert "(onnxruntime)" in auto.stdout, auto.stdout
    cos = (vectors["onnxruntime"] * vectors["candle"]).sum(axis=1)
    assert cos.min() >= 0.9999, cos.min()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"}
    r = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", tmp_path / "none",
            env=dict(env, MEDGRAIN_EMBED_RUNTIME="onnxruntime"), ok=False)
    assert r.returncode != 0 and "ORT_DYLIB_PATH" in r.stderr, r.stderr
    r = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", tmp_path / "bad",
            env=dict(os.environ, MEDGRAIN_EMBED_RUNTIME="tensorflow"), ok=False)
    assert r.returncode == 2 and "MEDGRAIN_EMBED_RUNTIME" in r.stderr, r.stderr
    without = run(medgrain_bin, "kb", "build", "--input", corpus, "--out", tmp_path / "fallback", env=env)
    assert "(candle)" in without.stdout  # auto without the library: candle


def test_triplets_carry_retrieved_knowledge(demo_dir):
    rows = [r for f in sorted(glob.glob(str(demo_dir / "triplets/*.parquet"))) for r in pq.read_table(f).to_pylist()]
    starter = {json.loads(l)["id"]: json.loads(l) for l in STARTER.read_text().splitlines()}
    assert all(1 <= len(r["knowledge"]) <= 3 for r in rows)
    cited = 0
    for r in rows:
        for k in r["knowledge"]:
            assert k["source"] == "medgrain-starter" and k["id"].split("#")[0] in starter
        m = re.search(r"Reference knowledge \(([^)]+)\): (.*?\.)(?: It is|$)", r["sections"]["local_global"])
        if m:
            cited += 1
            pid, sentence = m.group(1), m.group(2)
            assert pid in [k["id"].split("#")[0] for k in r["knowledge"]]
            assert sentence in starter[pid]["text"]
            assert any(d.lower() in sentence.lower() for d in r["diseases"])
            assert r["qc"]["passed"], r["qc"]
    # the passage about each sample's disease is among its passages, for diseases the starter corpus covers
    expected = {"hepatic cyst": "starter:hepatic-cyst-ct#0", "melanoma": "starter:melanoma-dermoscopy#0",
                "glioma": "starter:glioma-mri#0", "fibroadenoma": "starter:fibroadenoma-us#0",
                "diabetic retinopathy": "starter:diabetic-retinopathy#0", "lung mass": "starter:lung-mass-ct#0"}
    for r in rows:
        want = expected.get(r["diseases"][0])
        if want:
            assert want in [k["id"] for k in r["knowledge"]], (r["diseases"], r["knowledge"])
    assert cited >= 100


WORDNET = Path("/usr/share/wordnet/data.noun")


def wordnet_corpus(path):
    """Every WordNet 3.0 noun.state synset (diseases, disorders, conditions: 3,544 passages nobody here wrote) as
    JSONL: id wn:OFFSET, title = its lemmas, text = its gloss."""
    if not WORDNET.is_file():
        pytest.fail("Debian wordnet-base is missing (scripts/test.sh installs it)")
    lines = []
    for line in WORDNET.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        if f[1] != "26":
            continue
        lemmas = [f[4 + 2 * i].replace("_", " ") for i in range(int(f[3], 16))]
        lines.append(json.dumps({"id": f"wn:{f[0]}", "title": ", ".join(lemmas), "text": gloss.strip(),
                                 "source": "wordnet-3.0"}))
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_retrieval_quality_on_wordnet_conditions(medgrain_bin, tmp_path, model_dir):
    n = wordnet_corpus(tmp_path / "wordnet.jsonl")
    assert n >= 2000
    kb = tmp_path / "kb"
    run(medgrain_bin, "kb", "build", "--input", tmp_path / "wordnet.jsonl", "--out", kb)
    queries = [json.loads(l) for l in (Path(__file__).parent / "kb_eval_queries.jsonl").read_text().splitlines()]
    assert len(queries) >= 40
    (tmp_path / "q.txt").write_text("".join(q["query"] + "\n" for q in queries))
    result = {}
    for mode in ["bm25", "dense", "hybrid"]:
        out = run(medgrain_bin, "kb", "search", kb, "--queries", tmp_path / "q.txt", "--json", "--top", 10,
                  "--mode", mode).stdout.splitlines()
        assert len(out) == len(queries)
        recall5, rr = 0, 0.0
        for q, line in zip(queries, out):
            ids = [h["id"].split("#")[0] for h in json.loads(line)["hits"]]
            rank = next((i for i, x in enumerate(ids) if x in q["relevant"]), None)
            recall5 += rank is not None and rank < 5
            rr += 0 if rank is None else 1 / (rank + 1)
        result[mode] = (recall5 / len(queries), rr / len(queries))
    print("\nretrieval on WordNet noun.state (%d passages, %d queries): " % (n, len(queries)) +
          "; ".join(f"{m}: recall@5 {r:.3f}, MRR@10 {mrr:.3f}" for m, (r, mrr) in result.items()))
    # floors a little under the figures in BENCHMARKS.md
    # (measured: bm25 0.660 / 0.526, dense 0.820 / 0.618, hybrid 0.760 / 0.641)
    assert result["bm25"][0] >= 0.60 and result["bm25"][1] >= 0.45
    assert result["dense"][0] >= 0.75 and result["dense"][1] >= 0.55
    assert result["hybrid"][0] >= 0.70 and result["hybrid"][1] >= 0.58


def test_approximate_index_matches_exact_search_and_grows_with_the_kb(medgrain_bin, tmp_path, model_dir):
    """`kb build --ann` (usearch HNSW, f16, memory-mapped at search): on the WordNet glosses the approximate dense
    top 10 holds ≥ 95 % of the exact scan's hits (the build is multi-threaded, so the graph and its misses vary from
    run to run), and a second build that adds passages extends the
    index (it holds every chunk, and the added passages are found)."""
    n = wordnet_corpus(tmp_path / "wordnet.jsonl")
    lines = (tmp_path / "wordnet.jsonl").read_text().splitlines()
    half = len(lines) // 2
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[half:]) + "\n")
    queries = [json.loads(l)["query"] for l in (Path(__file__).parent / "kb_eval_queries.jsonl").read_text().splitlines()]
    (tmp_path / "q.txt").write_text("".join(q + "\n" for q in queries))

    def dense(kb):
        out = run(medgrain_bin, "kb", "search", kb, "--queries", tmp_path / "q.txt", "--json", "--top", 10,
                  "--mode", "dense").stdout.splitlines()
        return [[h["id"] for h in json.loads(l)["hits"]] for l in out]

    exact, ann = tmp_path / "exact", tmp_path / "ann"
    run(medgrain_bin, "kb", "build", "--input", tmp_path / "wordnet.jsonl", "--out", exact)
    chunks = lambda kb: json.loads((kb / "kb.json").read_text())["chunks"]
    r = run(medgrain_bin, "kb", "build", "--input", tmp_path / "a.jsonl", "--out", ann, "--ann")
    first = chunks(ann)
    assert f"approximate index (dense.ann): +{first} vectors" in r.stdout, r.stdout
    r = run(medgrain_bin, "kb", "build", "--input", tmp_path / "b.jsonl", "--out", ann)  # no flag: the KB keeps it
    assert f"approximate index (dense.ann): +{chunks(ann) - first} vectors" in r.stdout, r.stdout
    manifest = json.loads((ann / "kb.json").read_text())
    assert manifest["ann"] is True and manifest["chunks"] == chunks(exact) > first
    want, got = dense(exact), dense(ann)
    hits = sum(len(set(a) & set(b)) for a, b in zip(want, got))
    # recall@10 against the exact scan: #18's floor (0.95); a clean CI run measured 0.974, earlier runs ≥ 0.99
    assert hits / (10 * len(want)) >= 0.95, hits
    print(f"\nANN on WordNet: recall@10 {hits / (10 * len(want)):.3f}")
    assert sum(a[0] == b[0] for a, b in zip(want, got)) >= 0.9 * len(want)  # the best hit, nearly always
    # passages of the second build are found through the index
    second = {json.loads(l)["id"] for l in lines[half:]}
    assert any(i.split("#")[0] in second for row in got for i in row)
    # an index that no longer matches the KB is not used: search falls back to the exact scan (same answers)
    seg = ann / "dense.ann/seg-000000.usearch"
    seg.write_bytes(seg.read_bytes()[:1000])
    r = run(medgrain_bin, "kb", "search", ann, queries[0], "--json", "--top", 10, "--mode", "dense")
    assert [h["id"] for h in json.loads(r.stdout)["hits"]] == want[0]  # the exact scan's answer
    # the next build repairs it
    r = run(medgrain_bin, "kb", "build", "--input", tmp_path / "b.jsonl", "--out", ann)
    assert f"approximate index (dense.ann): +{chunks(ann)} vectors" in r.stdout, r.stdout
