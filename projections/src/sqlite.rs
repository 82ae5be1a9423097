//! The embedded database: one SQLite file (in the data directory by default), in WAL mode, so
//! queries read while the projector writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};

use crate::sql::{Cell, Database, DbError, Row, Value};
use crate::store::StoreError;

/// A connection to a SQLite file.
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    describe: String,
    conn: Connection,
}

fn db_error(e: &rusqlite::Error) -> DbError {
    // Busy, locked, a full disk or a failing device may pass: tried again later.
    let transient = matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
        )
    );
    DbError {
        message: e.to_string(),
        transient,
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(v),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

impl Sqlite {
    /// Open (creating if need be) the file at `path` to write.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path).map_err(|e| opening(path, &e))?;
        Sqlite::configure(path, conn, true)
    }

    /// Open the file at `path` for queries only (it must exist).
    pub fn open_read_only(path: &Path) -> Result<Sqlite, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| opening(path, &e))?;
        Sqlite::configure(path, conn, false)
    }

    /// `writer`: the connection that writes sets the file's journal (a reader takes it as the
    /// file has it: a bulk load leaves a rollback journal until the next writer opens it).
    fn configure(path: &Path, conn: Connection, writer: bool) -> Result<Sqlite, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| opening(path, &e))?;
        conn.set_prepared_statement_cache_capacity(64);
        // WAL: readers never wait for the writer. NORMAL: a commit survives the process's
        // death (kill -9); after a power loss the last commits may be gone, and are
        // projected again from the log, checkpoint and rows together.
        if writer {
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .map_err(|e| opening(path, &e))?;
        }
        Ok(Sqlite {
            path: path.to_path_buf(),
            describe: path.display().to_string(),
            conn,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn opening(path: &Path, e: &rusqlite::Error) -> StoreError {
    let e = db_error(e);
    StoreError::new(
        format!("opening {}", path.display()),
        e.message,
        e.transient,
    )
}

impl Database for Sqlite {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(|e| db_error(&e))
    }

    fn begin(&mut self) -> Result<(), DbError> {
        // IMMEDIATE: the write lock is taken now, waiting (busy_timeout) for another writer,
        // rather than failing at the first write.
        self.batch("BEGIN IMMEDIATE")
    }

    /// A rollback journal instead of the WAL (new pages are written once, not to the WAL and
    /// then again into the file; the next writer to open the file, such as the server, puts
    /// it back in WAL mode), no fsync (a commit is in the operating system's cache when the
    /// process dies, so a kill -9 loses nothing; a power loss may take the last commits, and
    /// the load is run again), and a larger page cache.
    fn bulk(&mut self) -> Result<(), DbError> {
        self.batch(
            "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;",
        )
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| db_error(&e))?;
        let n = stmt
            .execute(params_from_iter(params.iter()))
            .map_err(|e| db_error(&e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| db_error(&e))?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(params.iter()))
            .map_err(|e| db_error(&e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| db_error(&e))? {
            let mut cells = Vec::with_capacity(columns);
            for k in 0..columns {
                cells.push(match row.get_ref(k).map_err(|e| db_error(&e))? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    // The tables hold no reals or blobs; a real (an aggregate) is truncated.
                    ValueRef::Real(v) => Cell::Int(v as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Cell::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{SCHEMA, STANDING, SqlStore, Target};

    /// The standings' recompute reads its index by player and game, not a scan of every
    /// ended line (which made each match's end cost as much as all the matches before it).
    #[test]
    fn standings_recompute_reads_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite");
        drop(SqlStore::open(&Target::Sqlite(path.clone())).expect("opens"));
        let conn = Connection::open(&path).expect("opens");
        conn.execute_batch(SCHEMA).expect("schema");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {STANDING}"))
            .expect("prepares")
            .query_map(rusqlite::params!["arena", "all", 0, "ann", 10], |r| {
                r.get::<_, String>(3)
            })
            .expect("runs")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert!(
            plan.iter()
                .any(|step| step.contains("INDEX match_players_standing")),
            "{plan:?}"
        );
    }
}
