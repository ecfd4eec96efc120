//! `DIR/review.sqlite`: every decision as one row (reviewer, time, the sections before and after), in WAL mode with a
//! busy timeout, so several servers and reviewers can write at once and a killed server leaves a consistent file.

use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::Path;

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS decisions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                sample_id TEXT NOT NULL,
                decision TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected', 'edited')),
                reviewer TEXT NOT NULL,
                time_unix REAL NOT NULL,
                before TEXT,
                after TEXT
            );
            CREATE INDEX IF NOT EXISTS decisions_sample ON decisions (sample_id);",
        )?;
        Ok(Store { conn })
    }

    /// Records one decision in its own transaction.
    pub fn decide(
        &mut self,
        sample: &str,
        decision: &str,
        reviewer: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> rusqlite::Result<()> {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO decisions (sample_id, decision, reviewer, time_unix, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![sample, decision, reviewer, t, before, after],
        )?;
        tx.commit()
    }

    /// The latest decision per sample, with the edited sections when the latest is an edit.
    pub fn latest(&self) -> rusqlite::Result<HashMap<String, (String, Option<String>)>> {
        let mut st = self.conn.prepare(
            "SELECT sample_id, decision, after FROM decisions WHERE seq IN (SELECT MAX(seq) FROM decisions GROUP BY sample_id)",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get(2)?)))
        })?;
        rows.collect()
    }
}
