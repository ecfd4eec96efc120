//! The request cache: SQLite in WAL mode, keyed by a SHA-256 of everything that determines an answer (model,
//! prompt version, rendered messages including the image, sampling parameters). Only answers that parsed are
//! stored, so a rerun — or a resumed run after a crash — sends no request whose answer is already known.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub content: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub finish_reason: Option<String>,
}

pub struct RequestCache {
    conn: Mutex<Connection>,
}

/// The cache key of a request body (the JSON sent, minus nothing: it already holds model and messages) and the
/// prompt version.
pub fn cache_key(prompt_version: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(b"medgrain-request-v1\0");
    h.update(prompt_version.as_bytes());
    h.update(b"\0");
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl RequestCache {
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| e.to_string())?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS answers (
                key TEXT PRIMARY KEY,
                model TEXT NOT NULL,
                prompt_version TEXT NOT NULL,
                content TEXT NOT NULL,
                prompt_tokens INTEGER,
                completion_tokens INTEGER,
                finish_reason TEXT,
                created_unix INTEGER NOT NULL
            );",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(RequestCache { conn: Mutex::new(conn) })
    }

    pub fn get(&self, key: &str) -> Result<Option<CachedAnswer>, String> {
        let conn = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        conn.query_row(
            "SELECT content, prompt_tokens, completion_tokens, finish_reason FROM answers WHERE key = ?1",
            params![key],
            |r| {
                Ok(CachedAnswer {
                    content: r.get(0)?,
                    prompt_tokens: r.get(1)?,
                    completion_tokens: r.get(2)?,
                    finish_reason: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(|e| e.to_string())
    }

    pub fn put(&self, key: &str, model: &str, prompt_version: &str, a: &CachedAnswer) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let conn = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        conn.execute(
            "INSERT OR REPLACE INTO answers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                key,
                model,
                prompt_version,
                a.content,
                a.prompt_tokens,
                a.completion_tokens,
                a.finish_reason,
                now
            ],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub fn len(&self) -> Result<u64, String> {
        let conn = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        conn.query_row("SELECT COUNT(*) FROM answers", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    pub fn is_empty(&self) -> Result<bool, String> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c/requests.sqlite");
        let a = CachedAnswer {
            content: "{}".into(),
            prompt_tokens: Some(5),
            completion_tokens: None,
            finish_reason: Some("stop".into()),
        };
        {
            let c = RequestCache::open(&p).unwrap();
            assert!(c.is_empty().unwrap());
            assert_eq!(c.get("k").unwrap(), None);
            c.put("k", "m", "v", &a).unwrap();
        }
        let c = RequestCache::open(&p).unwrap();
        assert_eq!(c.get("k").unwrap(), Some(a));
        assert_eq!(c.len().unwrap(), 1);
    }

    #[test]
    fn key_depends_on_body_and_version() {
        let b1 = serde_json::json!({"model": "a", "messages": []});
        let b2 = serde_json::json!({"model": "b", "messages": []});
        assert_ne!(cache_key("v1", &b1), cache_key("v1", &b2));
        assert_ne!(cache_key("v1", &b1), cache_key("v2", &b1));
        assert_eq!(cache_key("v1", &b1), cache_key("v1", &b1.clone()));
    }
}
