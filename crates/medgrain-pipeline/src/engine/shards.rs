//! Shard completion markers, shared by every recipe: a shard's parts are written first (each to a temporary name,
//! synced, renamed), then its marker, so a marker on disk means the shard is finished. A marker that does not parse
//! (truncated, corrupt) or whose recipe-specific check fails is ignored and its shard is redone, never trusted.
//! Markers live in `OUT/.medgrain/shards/{prefix}-NNNNN.json`.
//!
//! [`run_shards`] is the one sharded runner every recipe uses: shards come from the recipe (planned up front or
//! streamed from a file), finished ones are kept, pending ones are processed in parallel as they come (at most one
//! shard per worker in memory), each writes its parts and then its marker, and markers of an earlier, longer plan are
//! removed with their parts. The recipe assembles its dataset from the markers it gets back.

use crate::engine::fsio::{io_err, write_atomic};
use crate::PipelineError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The markers of one recipe's shards in one output folder.
#[derive(Debug, Clone)]
pub struct MarkerStore {
    dir: PathBuf,
    prefix: &'static str,
}

impl MarkerStore {
    /// The store for `prefix` under `out`, creating its folder.
    pub fn open(out: &Path, prefix: &'static str) -> Result<Self, PipelineError> {
        let dir = out.join(".medgrain").join("shards");
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(MarkerStore { dir, prefix })
    }

    /// Where shard `k`'s marker lives.
    pub fn path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("{}-{k:05}.json", self.prefix))
    }

    /// Shard `k`'s marker when it parses and `valid` accepts it; `None` means the shard is to be (re)done.
    pub fn read<T: DeserializeOwned>(&self, k: usize, valid: impl FnOnce(&T) -> bool) -> Option<T> {
        let bytes = std::fs::read(self.path(k)).ok()?;
        let m: T = serde_json::from_slice(&bytes).ok()?;
        valid(&m).then_some(m)
    }

    /// Writes shard `k`'s marker (atomically, after its parts).
    pub fn write<T: Serialize>(&self, k: usize, marker: &T) -> Result<(), PipelineError> {
        let bytes = serde_json::to_vec(marker).map_err(|e| PipelineError::Internal(e.to_string()))?;
        write_atomic(&self.path(k), &bytes)
    }

    /// When shard `k`'s marker was written (the epoch when that cannot be read).
    pub fn modified(&self, k: usize) -> std::time::SystemTime {
        std::fs::metadata(self.path(k))
            .and_then(|md| md.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    }

    /// For each shard of `plan`, its marker and state when `valid(k, planned key, marker)` accepts it, else `None`
    /// (`merge` and `status` of every recipe; `state` gives the samples covered and whether any failed).
    pub fn finished<M: DeserializeOwned>(
        &self,
        plan: &crate::engine::plan::Plan,
        valid: impl Fn(usize, &str, &M) -> bool,
        state: impl Fn(&M) -> (u64, bool),
    ) -> Vec<Option<(M, crate::engine::plan::ShardState)>> {
        plan.shards
            .iter()
            .enumerate()
            .map(|(k, s)| {
                self.read(k, |m: &M| valid(k, &s.key, m)).map(|m| {
                    let (samples, with_failures) = state(&m);
                    let st = crate::engine::plan::ShardState {
                        samples,
                        with_failures,
                        finished_at: self.modified(k),
                    };
                    (m, st)
                })
            })
            .collect()
    }

    /// Removes the markers of shards `from..` left by an earlier, longer plan; returns their shard numbers so the
    /// recipe can remove their parts.
    pub fn remove_from(&self, from: usize) -> Result<Vec<usize>, PipelineError> {
        let mut removed = Vec::new();
        let mut k = from;
        while self.path(k).exists() {
            let p = self.path(k);
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            removed.push(k);
            k += 1;
        }
        Ok(removed)
    }
}

/// A recipe's shard work, as [`run_shards`] runs it.
pub trait ShardWork: Sync {
    /// One shard's inputs.
    type Input: Send;
    /// What a finished shard records: its key, counts, errors, the parts it wrote.
    type Marker: Serialize + DeserializeOwned + Send;
    /// The marker file prefix (`triplets`, `reports`).
    fn prefix(&self) -> &'static str;
    /// The shard's key: a hash of its inputs (and settings); a marker made for another key is redone.
    fn key(&self, k: usize, input: &Self::Input) -> Result<String, PipelineError>;
    /// Whether a marker read from disk still stands for this key (its parts are there, nothing is worth retrying).
    fn keep(&self, k: usize, key: &str, marker: &Self::Marker) -> bool;
    /// Processes shard `k` and writes its parts atomically; the runner writes the marker after.
    fn process(&self, k: usize, input: Self::Input, key: String) -> Result<Self::Marker, PipelineError>;
    /// Removes shard `k`'s parts (a shard of an earlier, longer plan).
    fn remove_parts(&self, k: usize) -> Result<(), PipelineError>;
    /// Called once per shard kept from an earlier run (progress display).
    fn kept(&self, _k: usize, _input: &Self::Input) {}
}

/// What [`run_shards`] did: the markers of the shards it ran, in shard order, which were kept from an earlier run,
/// and their shard numbers (every shard, unless the run was limited to some).
#[derive(Debug)]
pub struct ShardRun<M> {
    pub markers: Vec<M>,
    pub kept: Vec<bool>,
    pub shards: Vec<usize>,
}

impl<M> ShardRun<M> {
    /// How many shards were kept from an earlier run.
    pub fn resumed(&self) -> usize {
        self.kept.iter().filter(|&&k| k).count()
    }
}

/// Runs every shard `shards` yields (see the module docs) on `pool` (the global pool when `None`).
pub fn run_shards<W, I>(
    work: &W,
    out: &Path,
    shards: I,
    pool: Option<&rayon::ThreadPool>,
) -> Result<ShardRun<W::Marker>, PipelineError>
where
    W: ShardWork,
    I: Iterator<Item = Result<W::Input, PipelineError>> + Send,
{
    run_some_shards(work, out, shards, pool, ShardLimits::default())
}

/// A bound on how long one shard may run: when a shard has run for `limit`, `on_expiry(prefix, shard, elapsed)` is
/// called once for it (from a watchdog thread; the binary stops the worker with exit 3 so that its scheduler
/// retries it — finished shards are kept, and the straggler's parts were never renamed into place).
#[derive(Debug, Clone, Copy)]
pub struct ShardTimeout {
    pub limit: std::time::Duration,
    pub on_expiry: fn(&str, usize, std::time::Duration),
}

/// What limits a run: the shards it owns (one worker of many on a shared OUT) and how long a shard may take.
#[derive(Default, Clone, Copy)]
pub struct ShardLimits<'a> {
    /// Run only the shards this accepts; the others are left alone, and markers beyond the plan are not removed
    /// (another worker's run is not this one's to tidy).
    pub mine: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
    pub timeout: Option<ShardTimeout>,
}

/// [`run_shards`] within `limits`.
pub fn run_some_shards<W, I>(
    work: &W,
    out: &Path,
    shards: I,
    pool: Option<&rayon::ThreadPool>,
    limits: ShardLimits<'_>,
) -> Result<ShardRun<W::Marker>, PipelineError>
where
    W: ShardWork,
    I: Iterator<Item = Result<W::Input, PipelineError>> + Send,
{
    use rayon::iter::{ParallelBridge, ParallelIterator};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let store = MarkerStore::open(out, work.prefix())?;
    let mine = limits.mine;
    // shards being processed now, with their start (the watchdog's view)
    let running: Mutex<std::collections::BTreeMap<usize, Instant>> = Mutex::default();
    let set_running = |k: usize, on: bool| {
        if let Ok(mut r) = running.lock() {
            if on {
                r.insert(k, Instant::now());
            } else {
                r.remove(&k);
            }
        }
    };
    // (shard, marker, kept from an earlier run)
    type Done<M> = Result<(usize, M, bool), PipelineError>;
    let go = || -> Vec<Done<W::Marker>> {
        shards
            .enumerate()
            .filter(|(k, _)| mine.is_none_or(|f| f(*k)))
            .par_bridge()
            .map(|(k, input)| {
                let input = input?;
                let key = work.key(k, &input)?;
                if let Some(m) = store.read(k, |m: &W::Marker| work.keep(k, &key, m)) {
                    work.kept(k, &input);
                    return Ok((k, m, true));
                }
                set_running(k, true);
                let marker = work.process(k, input, key);
                set_running(k, false);
                let marker = marker?;
                store.write(k, &marker)?;
                Ok((k, marker, false))
            })
            .collect()
    };
    let finished = AtomicBool::new(false);
    let results = std::thread::scope(|scope| {
        if let Some(t) = limits.timeout {
            let (running, finished) = (&running, &finished);
            let prefix = work.prefix();
            scope.spawn(move || {
                let tick = (t.limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
                let mut fired = std::collections::BTreeSet::new();
                while !finished.load(Ordering::Acquire) {
                    let late: Vec<(usize, Duration)> = running
                        .lock()
                        .map(|r| {
                            r.iter()
                                .map(|(&k, t0)| (k, t0.elapsed()))
                                .filter(|(k, e)| *e >= t.limit && !fired.contains(k))
                                .collect()
                        })
                        .unwrap_or_default();
                    for (k, elapsed) in late {
                        fired.insert(k);
                        (t.on_expiry)(prefix, k, elapsed);
                    }
                    std::thread::sleep(tick);
                }
            });
        }
        let results = match pool {
            Some(p) => p.install(go),
            None => go(),
        };
        finished.store(true, Ordering::Release);
        results
    });
    let mut done = Vec::with_capacity(results.len());
    for r in results {
        done.push(r?);
    }
    done.sort_by_key(|(k, _, _)| *k);
    if mine.is_none() {
        for k in store.remove_from(done.len())? {
            work.remove_parts(k)?;
        }
    }
    let kept = done.iter().map(|(_, _, kept)| *kept).collect();
    let shards = done.iter().map(|(k, _, _)| *k).collect();
    Ok(ShardRun {
        markers: done.into_iter().map(|(_, m, _)| m).collect(),
        kept,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct M {
        key: String,
    }

    #[test]
    fn corrupt_or_rejected_markers_are_redone_and_stale_ones_removed() {
        let d = tempfile::tempdir().unwrap();
        let s = MarkerStore::open(d.path(), "t").unwrap();
        assert_eq!(s.read::<M>(0, |_| true), None);
        s.write(0, &M { key: "a".into() }).unwrap();
        assert_eq!(s.read::<M>(0, |m| m.key == "a"), Some(M { key: "a".into() }));
        assert_eq!(s.read::<M>(0, |m| m.key == "b"), None);
        // a truncated marker is never trusted
        std::fs::write(s.path(1), br#"{"key": "#).unwrap();
        assert_eq!(s.read::<M>(1, |_| true), None);
        s.write(2, &M { key: "c".into() }).unwrap();
        std::fs::write(s.path(1), br#"{"key": "b"}"#).unwrap();
        assert_eq!(s.remove_from(1).unwrap(), vec![1, 2]);
        assert!(!s.path(2).exists() && s.path(0).exists());
        let left: Vec<_> = std::fs::read_dir(d.path().join(".medgrain/shards"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.iter().all(|e| !e.path().to_string_lossy().ends_with(".tmp")));
    }

    /// Shards are numbers; a shard's "part" is a file holding its square.
    struct Squares<'a> {
        out: &'a Path,
        processed: std::sync::atomic::AtomicUsize,
    }

    impl ShardWork for Squares<'_> {
        type Input = u64;
        type Marker = M;
        fn prefix(&self) -> &'static str {
            "sq"
        }
        fn key(&self, _k: usize, input: &u64) -> Result<String, PipelineError> {
            Ok(input.to_string())
        }
        fn keep(&self, k: usize, key: &str, m: &M) -> bool {
            m.key == key && self.out.join(format!("{k}.part")).is_file()
        }
        fn process(&self, k: usize, input: u64, key: String) -> Result<M, PipelineError> {
            self.processed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            write_atomic(
                &self.out.join(format!("{k}.part")),
                (input * input).to_string().as_bytes(),
            )?;
            Ok(M { key })
        }
        fn remove_parts(&self, k: usize) -> Result<(), PipelineError> {
            let p = self.out.join(format!("{k}.part"));
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))
        }
    }

    #[test]
    fn the_runner_keeps_finished_shards_redoes_changed_ones_and_drops_stale_ones() {
        let d = tempfile::tempdir().unwrap();
        let w = Squares {
            out: d.path(),
            processed: Default::default(),
        };
        let n = |w: &Squares| w.processed.load(std::sync::atomic::Ordering::SeqCst);
        let r = run_shards(&w, d.path(), (1..=5u64).map(Ok), None).unwrap();
        assert_eq!((r.resumed(), n(&w)), (0, 5));
        assert_eq!(
            r.markers.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3", "4", "5"]
        );
        // shard 2 changes, the plan gets shorter, and shard 0's part is lost: 0 and 2 are redone, 4 dropped
        std::fs::remove_file(d.path().join("0.part")).unwrap();
        let r = run_shards(&w, d.path(), [1u64, 2, 9, 4].into_iter().map(Ok), None).unwrap();
        assert_eq!((r.resumed(), n(&w)), (2, 7));
        assert_eq!(r.kept, [false, true, false, true]);
        assert_eq!(std::fs::read_to_string(d.path().join("2.part")).unwrap(), "81");
        assert!(!d.path().join("4.part").exists());
        // an error from the shard source stops the run
        let e = run_shards(
            &w,
            d.path(),
            [Ok(1u64), Err(PipelineError::Usage("bad".into()))].into_iter(),
            None,
        );
        assert!(e.is_err());
    }

    static EXPIRED: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

    fn record_expiry(prefix: &str, k: usize, elapsed: std::time::Duration) {
        assert!(elapsed >= std::time::Duration::from_millis(100));
        EXPIRED.lock().unwrap().push((prefix.to_string(), k));
    }

    /// Shard 2 sleeps past the limit; the others are quick.
    struct Slow;

    impl ShardWork for Slow {
        type Input = u64;
        type Marker = M;
        fn prefix(&self) -> &'static str {
            "slow"
        }
        fn key(&self, _k: usize, input: &u64) -> Result<String, PipelineError> {
            Ok(input.to_string())
        }
        fn keep(&self, _k: usize, _key: &str, _m: &M) -> bool {
            false
        }
        fn process(&self, k: usize, _input: u64, key: String) -> Result<M, PipelineError> {
            if k == 2 {
                std::thread::sleep(std::time::Duration::from_millis(400));
            }
            Ok(M { key })
        }
        fn remove_parts(&self, _k: usize) -> Result<(), PipelineError> {
            Ok(())
        }
    }

    #[test]
    fn a_shard_past_its_time_limit_is_reported_once_and_only_it() {
        let d = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            mine: None,
            timeout: Some(ShardTimeout {
                limit: std::time::Duration::from_millis(100),
                on_expiry: record_expiry,
            }),
        };
        let r = run_some_shards(&Slow, d.path(), (0..4u64).map(Ok), None, limits).unwrap();
        assert_eq!(r.markers.len(), 4);
        assert_eq!(*EXPIRED.lock().unwrap(), vec![("slow".to_string(), 2)]);
    }
}
