//! A build's shard plan, written by `medgrain plan` to `OUT/plan.json` before any worker starts: every input in plan
//! order with its size, and shards as contiguous ranges of it balanced by work (input bytes), each with its key. The
//! same inputs give the same plan; workers and `merge` read it, so every process agrees on what shard `k` is, and a
//! listing that no longer matches it is refused rather than silently re-sharded.

use crate::engine::fsio::io_err;
use crate::PipelineError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One input of the plan: its source, its path in that source, and its work (bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInput {
    pub source: String,
    pub path: String,
    pub bytes: u64,
}

/// One shard: the inputs `first..first + count`, their bytes, and the shard's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanShard {
    pub first: usize,
    pub count: usize,
    pub bytes: u64,
    pub key: String,
}

/// `OUT/plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub recipe: String,
    /// The config the plan was made from (absolute): `merge DIR` and `status DIR` read it from here.
    pub config_path: std::path::PathBuf,
    pub config_hash: String,
    pub inputs: Vec<PlanInput>,
    pub shards: Vec<PlanShard>,
}

/// Where the plan of an output folder lives.
pub fn plan_path(out: &Path) -> std::path::PathBuf {
    out.join("plan.json")
}

impl Plan {
    /// The plan in `out`, if one was made; a plan file that does not parse is an error, not "no plan".
    pub fn read(out: &Path) -> Result<Option<Plan>, PipelineError> {
        let p = plan_path(out);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| PipelineError::Usage(format!("{}: not a plan medgrain can read: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p, e)),
        }
    }

    /// Writes the plan (streamed: a plan of millions of inputs is not built as one string first) to a temporary
    /// name, synced, then renamed.
    pub fn write(&self, out: &Path) -> Result<(), PipelineError> {
        use std::io::Write;
        let path = plan_path(out);
        let tmp = medgrain_export::temp_path(&path);
        let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer(&mut w, self).map_err(|e| PipelineError::Internal(e.to_string()))?;
        w.write_all(b"\n").map_err(|e| io_err(&tmp, e))?;
        let f = w.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
    }

    /// What differs between the planned inputs and `now` (same order of fields): up to `limit` lines "added …" /
    /// "removed …" / "changed size …". Empty when they agree.
    pub fn input_changes(&self, now: &[PlanInput], limit: usize) -> Vec<String> {
        let key = |i: &PlanInput| (i.source.clone(), i.path.clone());
        let before: std::collections::BTreeMap<_, _> = self.inputs.iter().map(|i| (key(i), i.bytes)).collect();
        let after: std::collections::BTreeMap<_, _> = now.iter().map(|i| (key(i), i.bytes)).collect();
        let mut out = Vec::new();
        for (k, b) in &after {
            match before.get(k) {
                None => out.push(format!("added {}/{}", k.0, k.1)),
                Some(old) if old != b => out.push(format!("changed size {}/{} ({old} → {b} bytes)", k.0, k.1)),
                _ => {}
            }
        }
        for k in before.keys().filter(|k| !after.contains_key(*k)) {
            out.push(format!("removed {}/{}", k.0, k.1));
        }
        out.truncate(limit);
        out
    }
}

/// One planned shard as found on disk, when a valid marker says it is finished.
#[derive(Debug, Clone)]
pub struct ShardState {
    /// Samples (or reports) the shard covered.
    pub samples: u64,
    /// Whether any of them failed.
    pub with_failures: bool,
    /// When its marker was written.
    pub finished_at: std::time::SystemTime,
}

/// What `medgrain status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub recipe: String,
    pub shards: usize,
    pub done: usize,
    pub missing: Vec<usize>,
    /// Finished shards with failed samples.
    pub with_failures: usize,
    pub samples_done: u64,
    pub samples_total: u64,
    /// Samples per second between the first and the last finished marker, when two or more are finished.
    pub rate: Option<f64>,
    pub eta_s: Option<f64>,
}

impl Status {
    /// The status of `plan` given the state of each of its shards (in shard order).
    pub fn of(plan: &Plan, done: &[Option<ShardState>]) -> Status {
        let samples_done: u64 = done.iter().flatten().map(|d| d.samples).sum();
        let samples_total = plan.inputs.len() as u64;
        let times: Vec<std::time::SystemTime> = done.iter().flatten().map(|d| d.finished_at).collect();
        let rate = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) if times.len() >= 2 => b
                .duration_since(*a)
                .ok()
                .map(|d| d.as_secs_f64())
                .filter(|&s| s > 0.0)
                .map(|s| samples_done as f64 / s),
            _ => None,
        };
        Status {
            recipe: plan.recipe.clone(),
            shards: plan.shards.len(),
            done: done.iter().filter(|d| d.is_some()).count(),
            missing: unfinished(done),
            with_failures: done.iter().flatten().filter(|d| d.with_failures).count(),
            samples_done,
            samples_total,
            rate,
            eta_s: rate.map(|r| samples_total.saturating_sub(samples_done) as f64 / r),
        }
    }
}

/// The shards without a valid marker.
pub fn unfinished<T>(done: &[Option<T>]) -> Vec<usize> {
    done.iter()
        .enumerate()
        .filter(|(_, d)| d.is_none())
        .map(|(k, _)| k)
        .collect()
}

/// The error `merge` gives when shards are missing: how many, and which (the first 20).
pub fn incomplete(plan: &Plan, missing: &[usize], out: &Path) -> PipelineError {
    let list: Vec<String> = missing.iter().take(20).map(|k| k.to_string()).collect();
    PipelineError::Incomplete(format!(
        "{} of {} shards are not finished in {} (shards {}{}); rerun the workers that own them, or a plain `medgrain build`",
        missing.len(),
        plan.shards.len(),
        out.display(),
        list.join(", "),
        if missing.len() > 20 { ", …" } else { "" }
    ))
}

impl Plan {
    /// A new plan over `inputs` (in order): `count` contiguous shards balanced by the inputs' bytes, each keyed by
    /// `key(first, count)`.
    pub fn balanced(
        recipe: &str,
        config_path: &Path,
        config_hash: String,
        inputs: Vec<PlanInput>,
        count: usize,
        key: impl Fn(usize, usize) -> String,
    ) -> Plan {
        let work: Vec<u64> = inputs.iter().map(|i| i.bytes).collect();
        let shards = balanced_ranges(&work, count.max(1))
            .into_iter()
            .map(|(first, count)| PlanShard {
                first,
                count,
                bytes: work[first..first + count].iter().sum(),
                key: key(first, count),
            })
            .collect();
        Plan {
            recipe: recipe.into(),
            config_path: std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf()),
            config_hash,
            inputs,
            shards,
        }
    }

    /// A build or `plan` refuses a plan made for another config (`what` says what the hash covers).
    pub fn refuse_for_other_config(&self, chash: &str, what: &str, out: &Path) -> Result<(), PipelineError> {
        if self.config_hash == chash {
            return Ok(());
        }
        Err(PipelineError::Usage(format!(
            "the plan in {} was made for another {what} (hash {} ≠ {}); rerun `medgrain plan` with --force",
            out.display(),
            &self.config_hash[..12.min(self.config_hash.len())],
            &chash[..12.min(chash.len())]
        )))
    }

    /// The error for inputs that changed since planning (`changes` names them), if any.
    pub fn refuse_changes(changes: &[String], out: &Path) -> Result<(), PipelineError> {
        if changes.is_empty() {
            return Ok(());
        }
        Err(PipelineError::Usage(format!(
            "the inputs changed since the plan in {} was made: {}; rerun `medgrain plan` with --force to plan them again",
            out.display(),
            changes.join("; ")
        )))
    }

    /// `merge` refuses shards planned for another config than the one the plan names now hashes to (naming both).
    pub fn refuse_other_config(&self, chash: &str, out: &Path) -> Result<(), PipelineError> {
        if self.config_hash == chash {
            return Ok(());
        }
        Err(PipelineError::Usage(format!(
            "the shards in {} were planned for config hash {}, but {} now hashes to {}: merge refuses shards of two configs",
            out.display(),
            &self.config_hash[..12.min(self.config_hash.len())],
            self.config_path.display(),
            &chash[..12.min(chash.len())]
        )))
    }

    /// The markers of every shard in shard order, or the error naming the shards without one.
    pub fn all_finished<M, S>(&self, done: Vec<Option<(M, S)>>, out: &Path) -> Result<Vec<M>, PipelineError> {
        let missing = unfinished(&done);
        if !missing.is_empty() {
            return Err(incomplete(self, &missing, out));
        }
        Ok(done.into_iter().flatten().map(|(m, _)| m).collect())
    }
}

/// Contiguous shards over `work` (one entry per input, in order) balanced by work: `count` shards (at least one input
/// each, fewer when there are fewer inputs), cut where the running total passes each multiple of total / count.
pub fn balanced_ranges(work: &[u64], count: usize) -> Vec<(usize, usize)> {
    let n = work.len();
    let count = count.clamp(1, n.max(1));
    if n == 0 {
        return vec![(0, 0)];
    }
    let total: u128 = work.iter().map(|&w| w.max(1) as u128).sum();
    let mut out = Vec::with_capacity(count);
    let (mut first, mut acc) = (0usize, 0u128);
    for (i, &w) in work.iter().enumerate() {
        let w = w.max(1) as u128;
        let shards_left = count - out.len();
        let target = total * (out.len() as u128 + 1) / count as u128;
        // cut before this input when stopping short of the target is closer than passing it, or when every
        // remaining shard needs one of the remaining inputs
        let inputs_left = n - i;
        let closer_before = acc + w > target && target.saturating_sub(acc) < acc + w - target;
        if shards_left > 1 && i > first && (closer_before || inputs_left < shards_left) {
            out.push((first, i - first));
            first = i;
        }
        acc += w;
    }
    out.push((first, n - first));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_and_balance_bytes() {
        let work = [10, 10, 10, 10, 100, 10, 10, 10, 10, 10];
        let r = balanced_ranges(&work, 3);
        assert_eq!(r.iter().map(|r| r.1).sum::<usize>(), work.len());
        assert_eq!(r.len(), 3);
        let mut next = 0;
        for &(first, count) in &r {
            assert_eq!(first, next);
            assert!(count > 0);
            next = first + count;
        }
        // the 100-byte input makes its shard short: [10, 10, 10, 10, 100] is more than a third of 220
        assert_eq!(r[0], (0, 4));
        assert_eq!(balanced_ranges(&[5, 5], 8), vec![(0, 1), (1, 1)]);
        assert_eq!(balanced_ranges(&[], 4), vec![(0, 0)]);
        assert_eq!(balanced_ranges(&[1, 1, 1, 1], 2), vec![(0, 2), (2, 2)]);
    }

    #[test]
    fn input_changes_name_the_files() {
        let i = |p: &str, b| PlanInput {
            source: "s".into(),
            path: p.into(),
            bytes: b,
        };
        let plan = Plan {
            recipe: "triplets".into(),
            config_path: "c.toml".into(),
            config_hash: "h".into(),
            inputs: vec![i("a.png", 1), i("b.png", 2)],
            shards: vec![],
        };
        assert!(plan.input_changes(&[i("a.png", 1), i("b.png", 2)], 10).is_empty());
        let c = plan.input_changes(&[i("a.png", 3), i("c.png", 2)], 10);
        assert_eq!(
            c,
            ["changed size s/a.png (1 → 3 bytes)", "added s/c.png", "removed s/b.png"]
        );
    }
}
