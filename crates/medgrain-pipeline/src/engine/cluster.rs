//! Job descriptions for running a plan's workers on a cluster. Kubernetes: an Indexed Job whose pod `i` runs
//! `medgrain build … --worker k8s/N` (the index comes from `JOB_COMPLETION_INDEX`), with a pod failure policy that
//! fails an index on exit 2 (unusable config: retrying cannot help), retries it on exit 3 (a cause worth retrying)
//! within `backoffLimitPerIndex`, and does not count pre-emption; and a merge Job that runs `medgrain merge`.
//! Exit 1 (finished, some samples failed: they are lines of `errors.jsonl`) counts as done.

use serde_json::{json, Value};

/// What `medgrain k8s` was asked for. Paths are as the pods see them (on the volume mounted at `mount`).
#[derive(Debug, Clone)]
pub struct K8sJob {
    pub name: String,
    pub image: String,
    pub config: String,
    pub out: String,
    pub workers: usize,
    pub parallelism: usize,
    pub backoff_per_index: usize,
    pub pvc: String,
    pub mount: String,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl K8sJob {
    /// The worker's shell command: exit 1 (some samples failed, recorded) is a finished index.
    pub fn worker_command(&self) -> String {
        format!(
            "medgrain build {} --out {} --worker k8s/{}; code=$?; [ $code -eq 1 ] && exit 0; exit $code",
            shell_quote(&self.config),
            shell_quote(&self.out),
            self.workers
        )
    }

    pub fn merge_command(&self) -> String {
        format!("medgrain merge {}", shell_quote(&self.out))
    }

    fn pod(&self, command: String) -> Value {
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "medgrain",
                "image": self.image,
                "command": ["sh", "-c", command],
                "volumeMounts": [{"name": "out", "mountPath": self.mount}],
            }],
            "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": self.pvc}}],
        })
    }

    /// The Indexed Job of the workers.
    pub fn workers_job(&self) -> Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": format!("{}-workers", self.name), "labels": {"app": "medgrain"}},
            "spec": {
                "completionMode": "Indexed",
                "completions": self.workers,
                "parallelism": self.parallelism,
                "backoffLimitPerIndex": self.backoff_per_index,
                "podFailurePolicy": {"rules": [
                    {"action": "FailIndex", "onExitCodes": {"containerName": "medgrain", "operator": "In", "values": [2]}},
                    {"action": "Count", "onExitCodes": {"containerName": "medgrain", "operator": "In", "values": [3]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]},
                "template": {"metadata": {"labels": {"app": "medgrain"}}, "spec": self.pod(self.worker_command())},
            },
        })
    }

    /// The Job that merges what the workers wrote (apply it once the workers' Job is complete).
    pub fn merge_job(&self) -> Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": format!("{}-merge", self.name), "labels": {"app": "medgrain"}},
            "spec": {
                "completions": 1,
                "backoffLimit": self.backoff_per_index,
                "template": {"metadata": {"labels": {"app": "medgrain"}}, "spec": self.pod(self.merge_command())},
            },
        })
    }
}

/// What `medgrain slurm` was asked for.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    /// The `medgrain` executable the nodes run (absolute).
    pub exe: String,
    pub config: String,
    pub out: String,
    /// Array tasks (workers); at most the cluster's MaxArraySize.
    pub tasks: usize,
    pub throttle: Option<usize>,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus: Option<usize>,
    pub mem: Option<String>,
}

impl SlurmJob {
    fn options(&self, name: &str) -> String {
        let mut o = format!("#SBATCH --job-name=medgrain-{name}\n");
        for (flag, v) in [
            ("partition", self.partition.clone()),
            ("time", self.time.clone()),
            ("cpus-per-task", self.cpus.map(|c| c.to_string())),
            ("mem", self.mem.clone()),
        ] {
            if let Some(v) = v {
                o.push_str(&format!("#SBATCH --{flag}={v}\n"));
            }
        }
        o
    }

    /// The job array of the workers: task `i` runs `--worker slurm/TASKS`; exit 1 (some samples failed, recorded)
    /// is a finished task.
    pub fn workers_script(&self) -> String {
        let array = match self.throttle {
            Some(t) => format!("0-{}%{t}", self.tasks - 1),
            None => format!("0-{}", self.tasks - 1),
        };
        format!(
            "#!/bin/sh\n{}#SBATCH --array={array}\n#SBATCH --output={}/slurm/worker-%a.log\n\n{} build {} --out {} --worker slurm/{}\ncode=$?\n[ $code -eq 1 ] && exit 0\nexit $code\n",
            self.options("workers"),
            shell_quote(&self.out).trim_matches('\''),
            shell_quote(&self.exe),
            shell_quote(&self.config),
            shell_quote(&self.out),
            self.tasks
        )
    }

    /// The merge job (submitted with `--dependency=afterany:<workers>`).
    pub fn merge_script(&self) -> String {
        format!(
            "#!/bin/sh\n{}#SBATCH --output={}/slurm/merge.log\n\n{} merge {}\n",
            self.options("merge"),
            shell_quote(&self.out).trim_matches('\''),
            shell_quote(&self.exe),
            shell_quote(&self.out)
        )
    }
}

/// The cluster's MaxArraySize from `scontrol show config` output, if it says.
pub fn max_array_size(scontrol_config: &str) -> Option<usize> {
    scontrol_config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok()).flatten()
    })
}

/// YAML (block style) for a JSON value; strings are written as JSON strings, which YAML reads as double-quoted
/// scalars, so no value can change meaning.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if is_block(x) {
                    out.push_str(&format!("{pad}{k}:\n"));
                    emit(x, indent + 2, out);
                } else {
                    out.push_str(&format!(
                        "{pad}{k}: {}\n",
                        if x.is_object() {
                            "{}".into()
                        } else if x.is_array() {
                            "[]".into()
                        } else {
                            scalar(x)
                        }
                    ));
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                if is_block(x) {
                    // the first line of the item goes after "- ", the rest indented under it
                    let mut item = String::new();
                    emit(x, indent + 2, &mut item);
                    let item = item.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {item}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(x)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_of_nested_values() {
        let v = json!({"a": {"b": [1, "x: y", {"c": true, "d": []}]}, "e": "it's"});
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "a:\n  b:\n    - 1\n    - \"x: y\"\n    - c: true\n      d: []\ne: \"it's\"\n"
        );
    }

    #[test]
    fn slurm_scripts_and_max_array_size() {
        let j = SlurmJob {
            exe: "/opt/medgrain".into(),
            config: "/d/c.toml".into(),
            out: "/d/out".into(),
            tasks: 4,
            throttle: Some(2),
            partition: Some("cpu".into()),
            time: None,
            cpus: Some(2),
            mem: None,
        };
        let w = j.workers_script();
        assert!(w.contains("#SBATCH --array=0-3%2\n") && w.contains("#SBATCH --partition=cpu\n"));
        assert!(w.contains("#SBATCH --cpus-per-task=2\n") && !w.contains("--mem"));
        assert!(w.contains("'/opt/medgrain' build '/d/c.toml' --out '/d/out' --worker slurm/4\n"));
        assert!(j.merge_script().contains("'/opt/medgrain' merge '/d/out'\n"));
        assert_eq!(
            max_array_size("Foo = 1\nMaxArraySize            = 40001\n"),
            Some(40001)
        );
        assert_eq!(max_array_size("Foo = 1\n"), None);
    }

    #[test]
    fn commands_quote_paths() {
        let j = K8sJob {
            name: "n".into(),
            image: "i".into(),
            config: "/data/my config.toml".into(),
            out: "/data/o'ut".into(),
            workers: 4,
            parallelism: 2,
            backoff_per_index: 3,
            pvc: "p".into(),
            mount: "/data".into(),
        };
        assert!(j
            .worker_command()
            .starts_with("medgrain build '/data/my config.toml' --out '/data/o'\\''ut' --worker k8s/4;"));
        assert_eq!(j.workers_job()["spec"]["completions"], 4);
    }
}
