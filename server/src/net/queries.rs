//! The query API over the read models (docs/QUERIES.md): `/players/{name}`, `/leaderboard`,
//! `/matches/{id}/summary`, `/matches/{id}/timeline`, `/rejections`,
//! `/projections/dead-letters`. Every parameter is checked, and a bad one is answered 400
//! with its name; the database is read off the async threads.

#![expect(
    clippy::disallowed_methods,
    reason = "a leaderboard period is of the wall clock; this is I/O, not the simulation"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tickforge_projections::query::{self, BadQuery, DEFAULT_FRAMES, Period, RejectionFilter};
use tickforge_projections::{Queries, SqlStore, StoreError};

use super::AppState;
use super::http::{Body, error, json_response};

/// The longest player name or rule a query may name.
const MAX_NAME_BYTES: usize = 256;
/// Frames a timeline page may hold.
const MAX_FRAMES: u32 = 1000;

type Job = Box<dyn FnOnce(&mut SqlStore) -> Result<Option<Value>, StoreError> + Send>;

/// Percent-decoding of a path segment or query value (`+` is a space in a query).
fn decode(raw: &str, plus_is_space: bool) -> Result<String, BadQuery> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = hex else {
                    return Err(BadQuery(format!(
                        "{raw:?}: a % must be followed by two hex digits"
                    )));
                };
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| BadQuery(format!("{raw:?} is not UTF-8 once decoded")))
}

/// A request's query parameters, decoded, with only `allowed` names accepted.
fn params(req: &Request<Incoming>, allowed: &[&str]) -> Result<BTreeMap<String, String>, BadQuery> {
    let mut out = BTreeMap::new();
    let Some(q) = req.uri().query() else {
        return Ok(out);
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k, true)?;
        if !allowed.contains(&k.as_str()) {
            return Err(BadQuery(format!(
                "unknown parameter {k:?}: this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        let v = decode(v, true)?;
        if v.len() > MAX_NAME_BYTES {
            return Err(BadQuery(format!(
                "{k} is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn match_id(raw: &str) -> Result<u64, BadQuery> {
    super::http::parse_id(raw)
        .map(|id| id.0)
        .ok_or_else(|| BadQuery(format!("{raw:?} is not a match id")))
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The job that answers a query, from its path and parameters.
fn job(req: &Request<Incoming>, segments: &[&str]) -> Result<(Job, String), BadQuery> {
    let get = |p: &BTreeMap<String, String>, k: &str| p.get(k).cloned();
    match segments {
        ["players", name] => {
            params(req, &[])?;
            let name = decode(name, false)?;
            let missing = format!("no player called {name:?} has played a projected match");
            Ok((
                Box::new(move |db: &mut SqlStore| Ok(db.career(&name, 10)?.map(|c| to_json(&c)))),
                missing,
            ))
        }
        ["leaderboard"] => {
            let p = params(req, &["game", "period", "limit", "offset", "at"])?;
            let game = get(&p, "game")
                .ok_or_else(|| BadQuery("game is required: /leaderboard?game=arena".to_string()))?;
            let period = Period::parse(p.get("period").map(String::as_str))?;
            let limit = query::limit(p.get("limit").map(String::as_str))?;
            let offset = query::number("offset", p.get("offset").map(String::as_str))?.unwrap_or(0);
            let at = query::number("at", p.get("at").map(String::as_str))?.unwrap_or_else(now_ms);
            Ok((
                Box::new(move |db: &mut SqlStore| {
                    Ok(Some(to_json(
                        &db.leaderboard(&game, period, at, limit, offset)?,
                    )))
                }),
                String::new(),
            ))
        }
        ["matches", id, "summary"] => {
            params(req, &[])?;
            let id = match_id(id)?;
            Ok((
                Box::new(move |db: &mut SqlStore| Ok(db.summary(id)?.map(|s| to_json(&s)))),
                format!("match {id} is not in the read models (yet)"),
            ))
        }
        ["matches", id, "timeline"] => {
            let p = params(req, &["interval_ticks", "from_tick", "frames"])?;
            let id = match_id(id)?;
            let interval = query::number(
                "interval_ticks",
                p.get("interval_ticks").map(String::as_str),
            )?;
            if interval == Some(0) {
                return Err(BadQuery("interval_ticks must be at least 1".into()));
            }
            let from =
                query::number("from_tick", p.get("from_tick").map(String::as_str))?.unwrap_or(0);
            let frames = match query::number("frames", p.get("frames").map(String::as_str))? {
                None => DEFAULT_FRAMES,
                Some(n) if (1..=u64::from(MAX_FRAMES)).contains(&n) => n as u32,
                Some(n) => {
                    return Err(BadQuery(format!(
                        "frames must be from 1 to {MAX_FRAMES}, not {n}"
                    )));
                }
            };
            Ok((
                Box::new(move |db: &mut SqlStore| {
                    // One frame a second unless told: the match's own tick rate.
                    let interval = match interval {
                        Some(n) => n,
                        None => match db.summary(id)? {
                            Some(s) => u64::from(s.tick_rate_hz),
                            None => return Ok(None),
                        },
                    };
                    Ok(db
                        .timeline(id, interval, from, frames)?
                        .map(|t| to_json(&t)))
                }),
                format!("match {id} is not in the read models (yet)"),
            ))
        }
        ["rejections"] => {
            let p = params(
                req,
                &[
                    "player", "rule", "match", "from_ms", "to_ms", "limit", "offset",
                ],
            )?;
            let filter = RejectionFilter {
                player: get(&p, "player"),
                rule: get(&p, "rule"),
                match_id: p.get("match").map(|m| match_id(m)).transpose()?,
                from_unix_ms: query::number("from_ms", p.get("from_ms").map(String::as_str))?,
                to_unix_ms: query::number("to_ms", p.get("to_ms").map(String::as_str))?,
                limit: query::limit(p.get("limit").map(String::as_str))?,
                offset: query::number("offset", p.get("offset").map(String::as_str))?.unwrap_or(0),
            };
            Ok((
                Box::new(move |db: &mut SqlStore| Ok(Some(to_json(&db.rejections(&filter)?)))),
                String::new(),
            ))
        }
        ["projections", "dead-letters"] => {
            let p = params(req, &["match", "limit", "offset"])?;
            let id = p.get("match").map(|m| match_id(m)).transpose()?;
            let limit = query::limit(p.get("limit").map(String::as_str))?;
            let offset = query::number("offset", p.get("offset").map(String::as_str))?.unwrap_or(0);
            Ok((
                Box::new(move |db: &mut SqlStore| {
                    Ok(Some(to_json(&db.dead_letters(id, limit, offset)?)))
                }),
                String::new(),
            ))
        }
        _ => Err(BadQuery("no such query".into())),
    }
}

/// Answer a query of the read models.
pub(super) async fn answer(
    req: &Request<Incoming>,
    segments: &[&str],
    state: &Arc<AppState>,
) -> Response<Body> {
    let Some(models) = state.read_models.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no_read_models",
            "this server keeps no read models (it was started with --read-db off)",
        );
    };
    let (job, missing) = match job(req, segments) {
        Ok(found) => found,
        Err(bad) => return error(StatusCode::BAD_REQUEST, "bad_query", bad),
    };
    let result = tokio::task::spawn_blocking(move || models.query(job)).await;
    match result {
        Ok(Ok(Some(value))) => json_response(StatusCode::OK, &value),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "not_found", missing),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a read model query failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "read_models_unavailable",
                format!(
                    "the read models could not be read ({}); try again",
                    state.config.redact(&e.message)
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "a read model query panicked");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the query failed; the cause is in the server's log",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn names_are_percent_decoded_and_bad_escapes_refused() {
        assert_eq!(decode("ann%20b", false).as_deref(), Ok("ann b"));
        assert_eq!(decode("a+b", true).as_deref(), Ok("a b"));
        assert_eq!(decode("a+b", false).as_deref(), Ok("a+b"));
        assert!(decode("%zz", false).is_err());
        assert!(decode("%e9", false).is_err());
        assert!(decode("%", false).is_err());
    }
}
