//! PostgreSQL, for installations that outgrow one machine: `--read-db postgres://…`.
//!
//! One connection, reconnected when it is lost: a database that is down makes every call fail
//! with a transient error (the projector waits and tries again), and the first call after it
//! is back connects again. Statements are prepared once per connection.
//!
//! The driver is the blocking `postgres` crate, which runs a small runtime of its own: use it
//! from a thread of its own or a blocking task (`spawn_blocking`), never from inside an async
//! task.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};

use crate::sql::{Cell, Database, DbError, Row, Value};
use crate::store::StoreError;

/// Statements kept prepared on a connection at most.
const MAX_STATEMENTS: usize = 256;

/// How long a connection attempt may take before the database counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a PostgreSQL database.
pub struct Postgres {
    config: Config,
    describe: String,
    client: Option<Client>,
    /// Statements prepared on `client`, by their SQL.
    statements: HashMap<String, Statement>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("db", &self.describe)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

/// `url` for messages: the database, host and port, never the password.
pub fn redacted(url: &str) -> String {
    match url.parse::<Config>() {
        Ok(config) => describe(&config),
        Err(_) => "a PostgreSQL URL that does not parse".to_string(),
    }
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(dir)) => dir.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL database {db} at {host}:{port}")
}

/// A parameter whose value does not fit its column: a bug of the store, never transient.
#[derive(Debug)]
struct Mismatch(String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Mismatch {}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (*self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Value::Int(v), &Type::INT4) => i32::try_from(v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT2) => i16::try_from(v)?.to_sql(ty, out),
            (Value::Text(t), &Type::TEXT | &Type::VARCHAR) => t.to_sql(ty, out),
            (value, ty) => Err(Box::new(Mismatch(format!(
                "{value:?} given for a parameter of type {ty}"
            )))),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::TEXT | Type::VARCHAR
        )
    }

    to_sql_checked!();
}

/// Whether an error may pass: the connection is gone or refused, the server is shutting
/// down or starting, out of resources, or a transaction lost a race.
fn transient(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let class = &code.code()[..2];
            class == "08"
                || class == "53"
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(code)
        }
        // No SQL state: the connection, not the statement (unless a value did not fit).
        None => !e.source().is_some_and(|s| s.is::<Mismatch>()),
    }
}

fn db_error(e: &postgres::Error) -> DbError {
    // The server's own message, with its detail, says more than the driver's summary.
    let message = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    };
    DbError {
        message,
        transient: transient(e),
    }
}

/// `?N` parameters spelt as PostgreSQL's `$N` (the SQL holds no `?` of its own).
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl Postgres {
    /// Connect to the database of `url`. A URL that does not parse is refused; a database
    /// that cannot be reached is a transient error (the projector tries again).
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::new(
                "reading the PostgreSQL URL",
                format!("{e}: give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"),
                false,
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.application_name("tickforge read models");
        // The server's notices ("table … does not exist, skipping" of a rebuild's drops) are
        // not errors, and say nothing an operator needs.
        config.notice_callback(|_| {});
        let mut db = Postgres {
            describe: describe(&config),
            config,
            client: None,
            statements: HashMap::new(),
        };
        match db.client() {
            Ok(_) => Ok(db),
            Err(e) => Err(StoreError::new(
                format!("connecting to {}", db.describe),
                e.message,
                e.transient,
            )),
        }
    }

    /// The connection, connecting again if it was lost.
    fn client(&mut self) -> Result<&mut Client, DbError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            self.statements.clear();
            let client = self.config.connect(NoTls).map_err(|e| db_error(&e))?;
            self.client = Some(client);
        }
        Ok(self.connected())
    }

    /// A failed call: a lost connection is dropped, to be made again by the next call.
    fn failed(&mut self, e: &postgres::Error) -> DbError {
        if e.is_closed() || self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        db_error(e)
    }

    /// The connection (made again if it was lost) and `sql` prepared on it.
    fn prepared(&mut self, sql: &str) -> Result<(&mut Client, Statement), DbError> {
        self.client()?;
        let stmt = match self.statements.get(sql) {
            Some(stmt) => stmt.clone(),
            None => {
                let prepared = self.connected().prepare(&dollars(sql));
                let stmt = prepared.map_err(|e| self.failed(&e))?;
                if self.statements.len() >= MAX_STATEMENTS {
                    // Multi-row inserts of every length: keep the server's memory bounded.
                    self.statements.clear();
                }
                self.statements.insert(sql.to_string(), stmt.clone());
                stmt
            }
        };
        Ok((self.connected(), stmt))
    }

    /// The connection [`Postgres::client`] made sure of.
    fn connected(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("connected first"))
    }
}

fn refs<'a>(params: &'a [Value<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn cells(row: &postgres::Row) -> Result<Row, postgres::Error> {
    let mut cells = Vec::with_capacity(row.len());
    for (k, column) in row.columns().iter().enumerate() {
        let int = |v: Option<i64>| v.map_or(Cell::Null, Cell::Int);
        cells.push(match *column.type_() {
            Type::INT8 => int(row.try_get::<_, Option<i64>>(k)?),
            Type::INT4 => int(row.try_get::<_, Option<i32>>(k)?.map(i64::from)),
            Type::INT2 => int(row.try_get::<_, Option<i16>>(k)?.map(i64::from)),
            Type::BOOL => int(row.try_get::<_, Option<bool>>(k)?.map(i64::from)),
            // Text, and anything else as its text (try_get names the column if it is not).
            _ => row
                .try_get::<_, Option<String>>(k)?
                .map_or(Cell::Null, Cell::Text),
        });
    }
    Ok(Row(cells))
}

impl Database for Postgres {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let done = self.client()?.batch_execute(sql);
        done.map_err(|e| self.failed(&e))
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.batch("BEGIN")
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, DbError> {
        let (client, stmt) = self.prepared(sql)?;
        let done = client.execute(&stmt, &refs(params));
        done.map_err(|e| self.failed(&e))
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let (client, stmt) = self.prepared(sql)?;
        let rows = client.query(&stmt, &refs(params));
        let rows = rows.map_err(|e| self.failed(&e))?;
        rows.iter()
            .map(cells)
            .collect::<Result<_, _>>()
            .map_err(|e| self.failed(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_spelt_with_dollars() {
        assert_eq!(
            dollars("SELECT a FROM t WHERE b = ?1 AND c = ?12 OR 'x?' = ?2"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 OR 'x?' = $2"
        );
    }

    #[test]
    fn messages_never_show_the_password() {
        let shown = redacted("postgres://tf:hunter2@127.0.0.1:6543/reads");
        assert_eq!(shown, "PostgreSQL database reads at 127.0.0.1:6543");
        assert!(!shown.contains("hunter2"));
        assert_eq!(
            redacted("postgres://[nonsense"),
            "a PostgreSQL URL that does not parse"
        );
    }
}
