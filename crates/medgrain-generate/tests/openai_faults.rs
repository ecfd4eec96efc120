//! The `openai` generator against the in-process mock server with injected faults: every sample ends either
//! described or with an error, no prompt is answered twice (the cache), the concurrency limit holds, wrong model
//! and bad key fail fast without retries, and the API key never appears in an error.

use image::ImageEncoder;
use medgrain_generate::openai::mock::{fault_class, prompt_hash, MockOptions, MockServer};
use medgrain_generate::openai::{OpenAiConfig, OpenAiGenerator};
use medgrain_generate::{Generator, SampleFacts};
use medgrain_records::RoiRecord;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Sample {
    id: String,
    png: Vec<u8>,
    rois: Vec<RoiRecord>,
    diseases: Vec<String>,
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|k| {
            let (w, h) = (48usize, 40usize);
            let x0 = 5 + k % 20;
            let mask: Vec<bool> = (0..w * h)
                .map(|i| (x0..x0 + 10).contains(&(i % w)) && (10..20).contains(&(i / w)))
                .collect();
            let px: Vec<u8> = mask.iter().map(|&m| if m { 200 } else { 40 + k as u8 }).collect();
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&px, w as u32, h as u32, image::ExtendedColorType::L8)
                .unwrap();
            let roi = RoiRecord {
                label: "nodule".into(),
                label_id: Some(1),
                bbox_xyxy: [x0 as i32, 10, x0 as i32 + 10, 20],
                mask_rle: medgrain_roi::rle::encode(h, w, &mask),
                area_px: 100,
                area_fraction: 100.0 / (w * h) as f64,
                centroid_xy: [x0 as f32 + 4.5, 14.5],
                position: "center-left, middle".into(),
                side: Some("left".into()),
                side_frame: "image".into(),
                origin: "annotation".into(),
                score: None,
                measurements: None,
                appearance: None,
                organ_context: None,
                patient_position: None,
            };
            Sample {
                id: format!("s{k}"),
                png,
                rois: vec![roi],
                diseases: vec!["pulmonary nodule".into()],
            }
        })
        .collect()
}

fn facts(s: &Sample) -> SampleFacts<'_> {
    SampleFacts {
        id: &s.id,
        modality: Some("CT"),
        organ: Some("lung"),
        diseases: &s.diseases,
        width: 48,
        height: 40,
        colour: false,
        foreground_fraction: None,
        rois: &s.rois,
        knowledge: &[],
        coarse_caption: "Computed tomography (CT) image of the lung showing pulmonary nodule.",
        image: Some(&s.png),
    }
}

fn config(url: String, model: &str, key_env: &str, cache: &Path) -> OpenAiConfig {
    OpenAiConfig {
        base_urls: vec![url],
        model: model.into(),
        api_key_env: key_env.into(),
        max_concurrency: 4,
        adaptive_concurrency: false,
        timeout: Duration::from_millis(700),
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        temperature: Some(0.0),
        max_tokens: Some(512),
        seed: Some(1),
        response_format: "json_schema".into(),
        max_image_side: 1024,
        repair_attempts: 1,
        cache_path: cache.to_path_buf(),
        offline: false,
    }
}

#[test]
fn faults_end_written_or_failed_and_nothing_is_answered_twice() {
    let server = MockServer::start(MockOptions {
        faults: true,
        stall: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("requests.sqlite");
    let data = samples(40);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    let gen = OpenAiGenerator::new(config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_NO_KEY_1",
        &cache,
    ))
    .unwrap();
    let classes: Vec<u8> = all
        .iter()
        .map(|f| fault_class(&prompt_hash(&gen.request_body(f).unwrap().0)))
        .collect();
    for c in 0..6u8 {
        assert!(
            classes.contains(&c),
            "the sample set should exercise fault class {c}: {classes:?}"
        );
    }
    let results = gen.generate_batch(&all);
    assert_eq!(results.len(), all.len());
    for (r, c) in results.iter().zip(&classes) {
        match (c, r) {
            (4, Err(e)) => assert!(e.to_string().contains("length"), "{e}"),
            (4, Ok(_)) => panic!("a truncated answer must not be accepted"),
            (_, Ok(g)) => {
                assert_eq!(g.generator.kind, "openai");
                assert_eq!(g.generator.model.as_deref(), Some("mock-model"));
                assert!(g.generator.prompt_tokens.unwrap_or(0) > 0);
                assert!(!g.sections.roi_analysis.is_empty());
            }
            (_, Err(e)) => panic!("class {c} should recover: {e}"),
        }
    }
    assert_eq!(server.stats.max_successes_per_prompt(), 1);
    // The client's own count of requests in flight. (The server's count can briefly include a stalled request the
    // client already abandoned; the CLI test, where no request times out, checks the server's count.)
    let peak = gen.usage_json()["peak_inflight"].as_u64().unwrap();
    assert!(
        (1..=4).contains(&peak),
        "{peak} concurrent requests with max_concurrency = 4"
    );
    let first_requests = server.stats.requests.load(Ordering::SeqCst);

    // A second run on the same cache sends requests only for the samples that failed.
    let gen2 = OpenAiGenerator::new(config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_NO_KEY_1",
        &cache,
    ))
    .unwrap();
    let again = gen2.generate_batch(&all);
    let failed = classes.iter().filter(|&&c| c == 4).count() as u64;
    assert_eq!(
        server.stats.requests.load(Ordering::SeqCst) - first_requests,
        failed * 2,
        "original + one repair each"
    );
    for ((a, b), c) in results.iter().zip(&again).zip(&classes) {
        if *c != 4 {
            assert_eq!(a.as_ref().unwrap().description, b.as_ref().unwrap().description);
        }
    }
    assert_eq!(server.stats.max_successes_per_prompt(), 1);
    assert_eq!(gen2.usage_json()["cache_hits"], all.len() as u64 - failed);
}

#[test]
fn wrong_model_fails_fast_without_retries() {
    let server = MockServer::start(MockOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = samples(6);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    let gen = OpenAiGenerator::new(config(
        server.base_url(),
        "no-such-model",
        "MEDGRAIN_TEST_NO_KEY_2",
        &dir.path().join("c.sqlite"),
    ))
    .unwrap();
    for r in gen.generate_batch(&all) {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("404") && e.contains("model"), "{e}");
    }
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 6);
}

#[test]
fn bad_key_fails_fast_and_the_key_is_never_shown() {
    let server = MockServer::start(MockOptions {
        api_key: Some("sk-right-key".into()),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = samples(5);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    std::env::set_var("MEDGRAIN_TEST_KEY_WRONG", "sk-wrong-SECRET-4711");
    let gen = OpenAiGenerator::new(config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_KEY_WRONG",
        &dir.path().join("c.sqlite"),
    ))
    .unwrap();
    for r in gen.generate_batch(&all) {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("401"), "{e}");
        assert!(!e.contains("SECRET-4711"), "the key leaked into an error: {e}");
    }
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 5);
    std::env::set_var("MEDGRAIN_TEST_KEY_RIGHT", "sk-right-key");
    let gen = OpenAiGenerator::new(config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_KEY_RIGHT",
        &dir.path().join("c2.sqlite"),
    ))
    .unwrap();
    assert!(gen.generate_batch(&all).iter().all(Result::is_ok));
    assert!(server
        .stats
        .auth_seen
        .lock()
        .unwrap()
        .iter()
        .any(|a| a == "Bearer sk-right-key"));
}

#[test]
fn unreachable_server_gives_up_after_the_retries() {
    // Bind and drop a listener to get a port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let data = samples(2);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    let gen = OpenAiGenerator::new(config(
        format!("http://127.0.0.1:{port}/v1"),
        "m",
        "MEDGRAIN_TEST_NO_KEY_3",
        &dir.path().join("c.sqlite"),
    ))
    .unwrap();
    for r in gen.generate_batch(&all) {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("gave up after 4 attempts") && e.contains(&port.to_string()),
            "{e}"
        );
    }
}

#[test]
fn offline_mode_answers_only_from_the_cache() {
    let server = MockServer::start(MockOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.sqlite");
    let data = samples(3);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    let gen = OpenAiGenerator::new(config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_NO_KEY_4",
        &cache,
    ))
    .unwrap();
    assert!(gen.generate_batch(&all[..2]).iter().all(Result::is_ok));
    let mut cfg = config(server.base_url(), "mock-model", "MEDGRAIN_TEST_NO_KEY_4", &cache);
    cfg.offline = true;
    let before = server.stats.requests.load(Ordering::SeqCst);
    let offline = OpenAiGenerator::new(cfg).unwrap().generate_batch(&all);
    assert!(offline[0].is_ok() && offline[1].is_ok());
    assert!(offline[2].as_ref().unwrap_err().to_string().contains("offline"));
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), before);
}

#[test]
fn a_dead_endpoint_is_routed_around() {
    let server = MockServer::start(MockOptions::default()).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let data = samples(30);
    let all: Vec<SampleFacts<'_>> = data.iter().map(facts).collect();
    let mut cfg = config(
        server.base_url(),
        "mock-model",
        "MEDGRAIN_TEST_NO_KEY_5",
        &dir.path().join("c.sqlite"),
    );
    cfg.base_urls.insert(0, format!("http://127.0.0.1:{dead}/v1"));
    cfg.max_retries = 6;
    let gen = OpenAiGenerator::new(cfg).unwrap();
    let results = gen.generate_batch(&all);
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    // Round robin sent some requests to the dead endpoint; once its breaker opened (5 failures), none went there.
    let sent = gen.usage_json()["requests_sent"].as_u64().unwrap();
    let served = server.stats.requests.load(Ordering::SeqCst);
    assert_eq!(served, 30);
    assert!(
        sent - served <= 5 + 4,
        "dead endpoint got {} requests; the breaker should stop them",
        sent - served
    );
}
