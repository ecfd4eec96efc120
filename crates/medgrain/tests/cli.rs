//! End-to-end tests of the `medgrain` binary: synth determinism, demo, build with bad inputs, config errors,
//! resume and --force, inspect.

use medgrain_export::read::triplet_summaries;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn medgrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medgrain"))
        .args(args)
        .env("MEDGRAIN_LOG", "warn")
        .output()
        .expect("run medgrain")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its bytes, keyed by relative path.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn ids(out: &Path) -> Vec<String> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(out.join("triplets"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    parts.sort();
    parts
        .iter()
        .flat_map(|p| triplet_summaries(p).unwrap())
        .map(|r| r.id)
        .collect()
}

fn error_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("errors.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const CONFIG: &str = r#"
[output]
shard_size = 8

[[source]]
name = "synth"
kind = "image-folder"
root = "corpus/2d"
images = "images/*.png"
masks = "masks/{stem}.png"
metadata = "metadata.csv"
"#;

/// A small corpus (28 images) plus a config next to it.
fn small_corpus(dir: &Path) -> PathBuf {
    let o = medgrain(&[
        "synth",
        "--out",
        s(&dir.join("corpus")),
        "--seed",
        "3",
        "--images-per-kind",
        "4",
        "--volumes",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    cfg
}

/// A valid 4×4 greyscale PNG, assembled by hand (signature, IHDR, one stored-deflate IDAT, IEND) so the test
/// does not depend on the encoder under test.
fn png_4x4() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&4u32.to_be_bytes());
    ihdr.extend_from_slice(&4u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    let raw: Vec<u8> = (0..4).flat_map(|_| [0u8, 0, 1, 1, 0]).collect(); // filter byte + 4 pixels per row
    let mut adler = (1u32, 0u32);
    for &b in &raw {
        adler.0 = (adler.0 + b as u32) % 65521;
        adler.1 = (adler.1 + adler.0) % 65521;
    }
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    z.extend_from_slice(&((adler.1 << 16) | adler.0).to_be_bytes());
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn version_is_printed() {
    let o = medgrain(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("medgrain {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn synth_is_byte_identical_for_a_seed() {
    let d = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = d.path().join(name);
        let o = medgrain(&[
            "synth",
            "--out",
            s(&out),
            "--seed",
            seed,
            "--images-per-kind",
            "3",
            "--volumes",
            "2",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        tree(&out)
    };
    let (a, b, c) = (run("a", "9"), run("b", "9"), run("c", "10"));
    assert_eq!(a.len(), b.len());
    assert!(
        a.len() > 21 + 21 + 2 + 2,
        "expected images, masks, volumes and masks; got {}",
        a.len()
    );
    for (k, v) in &a {
        assert!(
            b.get(k) == Some(v),
            "{} differs between runs of the same seed",
            k.display()
        );
    }
    assert_ne!(
        a.get(Path::new("2d/images/ct_chest_0000.png")),
        c.get(Path::new("2d/images/ct_chest_0000.png"))
    );
    for required in [
        "2d/metadata.csv",
        "2d/ground_truth.jsonl",
        "3d/reports.csv",
        "3d/ground_truth.jsonl",
        "3d/volumes/synth_ct_000.nii.gz",
        "3d/masks/synth_ct_000/heart.nii.gz",
    ] {
        assert!(a.contains_key(Path::new(required)), "{required} missing");
    }
}

#[test]
fn bad_inputs_become_error_lines_and_the_run_finishes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_corpus(d.path());
    let root = d.path().join("corpus/2d");
    // 1. an unreadable image
    std::fs::write(root.join("images/ct_chest_0000.png"), b"not a png at all").unwrap();
    // 2. a mask whose size differs from its image
    std::fs::write(root.join("masks/ct_chest_0001.png"), png_4x4()).unwrap();
    // 3. a metadata row naming a missing file
    let mut meta = std::fs::read_to_string(root.join("metadata.csv")).unwrap();
    meta.push_str("images/missing_0000.png,CT,lung,normal,ghost\n");
    std::fs::write(root.join("metadata.csv"), meta).unwrap();
    // 4. an empty mask file
    std::fs::write(root.join("masks/ct_chest_0002.png"), b"").unwrap();

    let out = d.path().join("out");
    let o = medgrain(&["build", s(&cfg), "--out", s(&out)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let stage_of = |p: &str| {
        errors
            .iter()
            .find(|e| e["source_path"] == p)
            .unwrap_or_else(|| panic!("no error line for {p}: {errors:#?}"))["stage"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(stage_of("images/ct_chest_0000.png"), "image");
    assert_eq!(stage_of("images/ct_chest_0001.png"), "mask");
    assert_eq!(stage_of("images/ct_chest_0002.png"), "mask");
    assert_eq!(stage_of("images/missing_0000.png"), "metadata");
    for e in &errors {
        assert_eq!(e["source"], "synth");
        assert!(!e["error"].as_str().unwrap().is_empty());
    }
    let size_error = errors
        .iter()
        .find(|e| e["source_path"] == "images/ct_chest_0001.png")
        .unwrap();
    assert!(size_error["error"].as_str().unwrap().contains("4×4"), "{size_error}");
    let empty_error = errors
        .iter()
        .find(|e| e["source_path"] == "images/ct_chest_0002.png")
        .unwrap();
    assert!(
        empty_error["error"].as_str().unwrap().contains("empty"),
        "{empty_error}"
    );
    // Every other image was written.
    assert_eq!(ids(&out).len(), 7 * 4 - 3);
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["failed"], 4);
    assert_eq!(stats["rows"], 25);
}

#[test]
fn config_errors_exit_2_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_corpus(d.path());
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("images = ", "imagez = \"x\"\nimages = ")).unwrap();
    let out = d.path().join("out");
    let o = medgrain(&["build", s(&bad), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("imagez") && err.contains("line 9") && err.contains("bad.toml"),
        "{err}"
    );
    assert!(!out.exists(), "nothing may be written for a bad config");
    // A root that does not exist.
    std::fs::write(&bad, CONFIG.replace("corpus/2d", "nowhere")).unwrap();
    let o = medgrain(&["build", s(&bad), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere"));
    // No --out and no [output] dir.
    let o = medgrain(&["build", s(&cfg)]);
    assert_eq!(o.status.code(), Some(2));
    // Missing argument: clap's usage error.
    assert_eq!(medgrain(&["build"]).status.code(), Some(2));
}

#[test]
fn rerun_resumes_and_force_starts_over() {
    let d = tempfile::tempdir().unwrap();
    let cfg = small_corpus(d.path());
    let out = d.path().join("out");
    let o = medgrain(&["build", s(&cfg), "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = ids(&out);
    assert_eq!(first.len(), 28);
    let part0 = out.join("triplets/part-00000.parquet");
    let part1 = out.join("triplets/part-00001.parquet");
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let kept = mtime(&part1);
    // Simulate a crash that lost shard 0.
    std::fs::remove_file(&part0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = medgrain(&["build", s(&cfg), "--out", s(&out)]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("(3 kept from a previous run)") && stdout.contains("8 processed"),
        "{stdout}"
    );
    assert!(part0.exists());
    assert_eq!(mtime(&part1), kept, "a finished shard must not be rewritten");
    assert_eq!(ids(&out), first);
    // A different config into the same folder is refused without --force...
    let other = d.path().join("other.toml");
    std::fs::write(&other, CONFIG.replace("shard_size = 8", "shard_size = 5")).unwrap();
    let o = medgrain(&["build", s(&other), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    // ...and accepted with it: every shard is rebuilt, stale parts removed, ids unchanged.
    let o = medgrain(&["build", s(&other), "--out", s(&out), "--force"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("(0 kept"));
    assert_eq!(std::fs::read_dir(out.join("triplets")).unwrap().count(), 6);
    assert_eq!(ids(&out), first);
}

#[test]
fn demo_runs_offline_and_inspect_summarises_it() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let o = medgrain(&["demo", "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gt = std::fs::read_to_string(out.join("synth/2d/ground_truth.jsonl")).unwrap();
    let gt3 = std::fs::read_to_string(out.join("synth/3d/ground_truth.jsonl")).unwrap();
    let lesions = gt3.matches("\"mask\":\"lesions/").count();
    let first = ids(&out);
    assert!(error_lines(&out).is_empty());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["rows"], first.len());
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    let o = medgrain(&["inspect", s(&out), "--json"]);
    assert!(o.status.success());
    let ins: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ins["rows"], first.len());
    // Every 2D image, and one CT slice per lesion (two lesions may share their largest slice).
    assert_eq!(ins["by_source"]["synth-2d"], gt.lines().count());
    let ct = ins["by_source"]["synth-ct"].as_u64().unwrap() as usize;
    assert!(ct >= 1 && ct <= lesions, "{ct} CT slices for {lesions} lesions");
    assert_eq!(first.len(), gt.lines().count() + ct);
    let modality_total: u64 = ins["by_modality"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(modality_total, first.len() as u64);
    assert!(ins["by_modality"].as_object().unwrap().len() >= 5);
    assert_eq!(ins["samples"].as_array().unwrap().len(), 3);
    let text = medgrain(&["inspect", s(&out)]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("── sample 3"));
    // Running again resumes everything; a second demo into a fresh folder gives the same ids.
    let again = medgrain(&["demo", "--out", s(&out)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 processed"));
    let out2 = d.path().join("demo2");
    assert!(medgrain(&["demo", "--out", s(&out2)]).status.success());
    assert_eq!(ids(&out2), first);
    // inspect on a folder that is not an output.
    assert_eq!(medgrain(&["inspect", s(d.path())]).status.code(), Some(2));
}

/// A `medgrain mock-server` child process; killed on drop.
struct MockChild {
    child: std::process::Child,
    base_url: String,
}

impl MockChild {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medgrain"));
        cmd.args(["mock-server", "--port", "0"])
            .args(extra)
            .stdout(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start mock server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("address line")
            .to_string();
        MockChild { child, base_url }
    }

    fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let addr = self.base_url.trim_start_matches("http://").trim_end_matches("/v1");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }
}

impl Drop for MockChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn demo_with_a_model_server_survives_faults_and_resumes_without_repeating_requests() {
    let key = "sk-medgrain-test-SECRET-9931";
    let mock = MockChild::start(
        &["--faults", "--stall-ms", "300", "--require-key-env", "MOCK_KEY"],
        &[("MOCK_KEY", key)],
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_medgrain"))
            .args([
                "demo",
                "--out",
                s(&out),
                "--generator-url",
                &mock.base_url,
                "--model",
                "mock-model",
            ])
            .env("OPENAI_API_KEY", key)
            .env("MEDGRAIN_LOG", "debug")
            .output()
            .unwrap()
    };
    let o = run();
    // Truncated answers (one fault class) end in errors.jsonl; the run finishes with status 1.
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = ids(&out).len();
    let errors = error_lines(&out);
    assert!(!errors.is_empty() && rows > 150, "rows {rows}, errors {}", errors.len());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let samples = manifest["counts"]["samples"].as_u64().unwrap() as usize;
    assert!(samples > 252);
    assert_eq!(
        rows + errors.len(),
        samples,
        "every sample is written or listed in errors.jsonl"
    );
    for e in &errors {
        assert_eq!(e["stage"], "generate");
        assert!(e["error"].as_str().unwrap().contains("length"), "{e}");
    }
    let stats = mock.stats();
    assert_eq!(stats["max_successes_per_prompt"], 1);
    assert!(stats["peak_inflight"].as_u64().unwrap() <= 32, "{stats}");
    assert_eq!(manifest["generator"]["kind"], "openai");
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    assert!(st["prompt_tokens"].as_u64().unwrap() > 0 && st["completion_tokens"].as_u64().unwrap() > 0);
    // The key appears in no output file and in no log line, even at debug level.
    assert!(files_containing(&out, key.as_bytes()).is_empty());
    assert!(!String::from_utf8_lossy(&o.stderr).contains(key) && !String::from_utf8_lossy(&o.stdout).contains(key));
    // Rerun: only the failed samples are asked again (original + one repair each); answered ones come from the cache.
    let before = mock.stats()["requests"].as_u64().unwrap();
    let o2 = run();
    assert_eq!(o2.status.code(), Some(1));
    let after = mock.stats()["requests"].as_u64().unwrap();
    assert_eq!(
        after - before - 1,
        2 * errors.len() as u64,
        "one /stats request is counted too"
    );
    assert_eq!(ids(&out).len(), rows);
    assert_eq!(mock.stats()["max_successes_per_prompt"], 1);
}
