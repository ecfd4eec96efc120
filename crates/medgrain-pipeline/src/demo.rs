//! `medgrain demo`: writes the synthetic corpus into `OUT/synth` (kept when it already matches the seed), writes
//! the embedded demo config to `OUT/demo.toml`, and builds it into `OUT` — offline, no model server.

use crate::config::{self, LoadedConfig};
use crate::engine::fsio::{io_err, write_atomic};
use crate::recipes::triplets::{build, BuildOptions, BuildSummary};
use crate::PipelineError;
use medgrain_synth::{write_corpus, SynthOptions, SynthSummary};
use std::path::Path;

/// The embedded demo config.
pub const DEMO_CONFIG: &str = include_str!("../demo.toml");

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub synth: SynthSummary,
    pub synth_reused: bool,
    pub triplets: BuildSummary,
    pub reports: crate::recipes::grounded_reports::ReportsSummary,
    /// One CT report (findings section) and the structured findings measured on its masks, shown side by side.
    pub example: Option<(String, String, String)>,
}

/// A model server to write the demo's descriptions instead of the template writer.
#[derive(Debug, Clone)]
pub struct DemoGenerator {
    pub base_url: String,
    pub model: String,
}

/// Runs the demo into `out` with corpus seed `seed`.
pub fn demo(
    out: &Path,
    seed: u64,
    opts: &BuildOptions,
    remote: Option<&DemoGenerator>,
) -> Result<DemoSummary, PipelineError> {
    let cfg_path = out.join("demo.toml");
    let mut loaded: LoadedConfig = config::parse(DEMO_CONFIG, &cfg_path)?;
    let cfg_text = match remote {
        None => DEMO_CONFIG.to_string(),
        Some(r) => {
            let g = &mut loaded.config.generator;
            g.kind = "openai".into();
            g.base_url = Some(config::BaseUrls::One(r.base_url.clone()));
            g.model = Some(r.model.clone());
            config::validate_generator(g, &cfg_path)?;
            let text = toml::to_string(&loaded.config).map_err(|e| PipelineError::Internal(e.to_string()))?;
            let header =
                "# The config `medgrain demo --generator-url ... --model ...` ran (API key from OPENAI_API_KEY).\n";
            format!("{header}{text}")
        }
    };
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let synth_dir = out.join("synth");
    let marker = synth_dir.join(".medgrain-synth.json");
    let synth_opts = SynthOptions {
        seed,
        ..Default::default()
    };
    let expected = serde_json::json!({
        "seed": seed,
        "version": env!("CARGO_PKG_VERSION"),
        "images_per_kind": synth_opts.images_per_kind,
        "volumes": synth_opts.volumes,
    });
    let previous: Option<SynthSummary> = if opts.force {
        None
    } else {
        std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|v| v.get("synth") == Some(&expected))
            .and_then(|v| {
                let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
                Some(SynthSummary {
                    images: n("images")?,
                    volumes: n("volumes")?,
                })
            })
    };
    let reuse = previous.is_some();
    let synth = match previous {
        Some(s) => {
            tracing::info!("reusing the synthetic corpus in {}", synth_dir.display());
            s
        }
        None => {
            if synth_dir.exists() {
                std::fs::remove_dir_all(&synth_dir).map_err(|e| io_err(&synth_dir, e))?;
            }
            tracing::info!("writing the synthetic corpus to {}", synth_dir.display());
            let s = write_corpus(&synth_dir, &synth_opts)?;
            let body = serde_json::json!({"synth": expected, "images": s.images, "volumes": s.volumes});
            let bytes = serde_json::to_vec_pretty(&body).map_err(|e| PipelineError::Internal(e.to_string()))?;
            write_atomic(&marker, &bytes)?;
            s
        }
    };
    write_atomic(&cfg_path, cfg_text.as_bytes())?;
    build_starter_kb(out)?;
    let triplets = build(&loaded, out, opts)?;
    let job = crate::recipes::grounded_reports::ReportsJob {
        splits: None,
        csv: synth_dir.join("3d/reports.csv"),
        root: synth_dir.join("3d"),
        masks: "masks".into(),
        lesions: Some("lesions".into()),
        volumes: Some("volumes".into()),
        shard_volumes: 4,
        top_level_files: false,
        deid: false,
    };
    let reports = crate::recipes::grounded_reports::build_grounded_reports(&job, out)?;
    let example = example_volume(&job, out);
    Ok(DemoSummary {
        synth,
        synth_reused: reuse,
        triplets,
        reports,
        example,
    })
}

/// The starter knowledge base shipped with medgrain (`source: "medgrain-starter"`).
pub const STARTER_KB: &str = include_str!("../../medgrain-knowledge/data/starter_kb.jsonl");

/// Writes the starter corpus to `OUT/kb-corpus/` and builds `OUT/kb` from it, fresh each time (it is small): with
/// the embedding model when `MEDGRAIN_EMBED_MODEL` names it, else BM25 only.
fn build_starter_kb(out: &Path) -> Result<(), PipelineError> {
    let corpus = out.join("kb-corpus");
    std::fs::create_dir_all(&corpus).map_err(|e| io_err(&corpus, e))?;
    let file = corpus.join("starter_kb.jsonl");
    write_atomic(&file, STARTER_KB.as_bytes())?;
    let kb = out.join("kb");
    if kb.exists() {
        std::fs::remove_dir_all(&kb).map_err(|e| io_err(&kb, e))?;
    }
    let s = medgrain_knowledge::build(&[file], &kb, &Default::default(), &mut |_, _, _| {})?;
    tracing::info!(chunks = s.chunks, dense = s.dense, "starter knowledge base built");
    Ok(())
}

/// The first volume that has measured lesions: (volume, its findings text, its structured findings block).
fn example_volume(job: &crate::recipes::grounded_reports::ReportsJob, out: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string(out.join("structured_findings/part-00000.jsonl")).ok()?;
    let block = text.lines().find_map(|l| {
        let v: medgrain_records::VolumeFindings = serde_json::from_str(l).ok()?;
        v.organs.iter().any(|o| !o.lesions.is_empty()).then_some(v)
    })?;
    let mut report = None;
    medgrain_reports::read_reports(&job.csv, &mut |r| {
        if r.volume_id == block.volume_id && report.is_none() {
            report = Some(r.findings);
        }
    })
    .ok()?;
    Some((block.volume_id, report?, block.summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let c = config::parse(DEMO_CONFIG, Path::new("/o/demo.toml")).unwrap();
        assert_eq!(c.config.sources[0].root, Path::new("synth/2d"));
    }
}
