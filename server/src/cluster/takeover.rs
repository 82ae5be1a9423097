//! Reading a match back from the stream, and taking it over.
//!
//! A takeover claims the match in the directory, reads every message of its subject (the
//! header, then its ticks), re-applies the ticks through the match core (every hash is
//! checked, the resume window and the seats are rebuilt), writes them to a local replay file,
//! and runs the match from the next tick, appending after the last sequence it read. If the
//! old owner appended after that read, the stream refuses the new owner's first append and
//! the takeover fails rather than fork the match.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use tickforge_protocol::{MatchId, ReplayHeader};

use super::{Cluster, ClusterError, records, subject};
use crate::log::TickRecords;
use crate::log::format::DEFAULT_MAX_RECORD_BYTES;
use crate::matches::Registry;

/// How long reading one match's records may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A match as the stream holds it.
#[derive(Debug)]
pub struct Recorded {
    pub header: ReplayHeader,
    pub ticks: Vec<TickRecords>,
    /// The stream sequence of its last message.
    pub last_seq: u64,
}

/// The stream, and the match directory, as a tool sees them.
#[derive(Debug)]
pub struct StreamReader {
    pub stream: async_nats::jetstream::stream::Stream,
    directory: Option<async_nats::jetstream::kv::Store>,
}

impl StreamReader {
    /// Connect to NATS at `url` and open the stream (and the directory, if there is one).
    pub async fn connect(url: &str) -> Result<StreamReader, ClusterError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(super::server_addrs(url)?)
            .await
            .map_err(|e| ClusterError::Connect {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        let js = async_nats::jetstream::new(client);
        let stream = js
            .get_stream(super::STREAM)
            .await
            .map_err(|e| ClusterError::Setup {
                what: format!("stream {}", super::STREAM),
                detail: e.to_string(),
            })?;
        let directory = js.get_key_value(super::DIRECTORY).await.ok();
        Ok(StreamReader { stream, directory })
    }

    /// Every match with messages in the stream, in id order.
    pub async fn match_ids(&self) -> Result<Vec<MatchId>, ClusterError> {
        let fail = |e: &dyn std::fmt::Display| ClusterError::Setup {
            what: format!("the subjects of stream {}", super::STREAM),
            detail: e.to_string(),
        };
        let mut subjects = self
            .stream
            .info_with_subjects("tickforge.match.*")
            .await
            .map_err(|e| fail(&e))?;
        let mut ids = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(|e| fail(&e))?;
            ids.extend(super::match_of(&subject));
        }
        ids.sort();
        Ok(ids)
    }

    /// Whether the directory says match `id` has ended (a match that ended idle has no
    /// record in the stream that says so).
    pub async fn ended(&self, id: MatchId) -> bool {
        let Some(directory) = &self.directory else {
            return false;
        };
        let Ok(Some(bytes)) = directory.get(super::directory::match_key(id)).await else {
            return false;
        };
        serde_json::from_slice::<super::MatchEntry>(&bytes).is_ok_and(|e| e.state == "ended")
    }
}

/// Connect to NATS at `url` and read match `id` from the stream (for tools: an export of a
/// match that moved between nodes).
pub async fn fetch_match(url: &str, id: MatchId) -> Result<Recorded, ClusterError> {
    read_match(&StreamReader::connect(url).await?.stream, id).await
}

/// What a stream message holds (its [`records::KIND`] header), or `""`.
pub(crate) fn kind_of(message: &async_nats::jetstream::Message) -> &str {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(records::KIND))
        .map_or("", |v| v.as_str())
}

/// Every message of match `id`'s subject from its first, in order, as they come (an ordered
/// consumer: it re-creates itself after a gap, and never delivers one twice).
pub(crate) async fn follow(
    stream: &async_nats::jetstream::stream::Stream,
    id: MatchId,
) -> Result<pull::Ordered, ClusterError> {
    let fail = |e: &dyn std::fmt::Display| ClusterError::Records {
        id,
        detail: format!("following its subject: {e}"),
    };
    stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject(id),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| fail(&e))?
        .messages()
        .await
        .map_err(|e| fail(&e))
}

/// Every record of match `id`, in order, checked: the header first, ticks contiguous from
/// tick 1, each message whole.
pub async fn read_match(
    stream: &async_nats::jetstream::stream::Stream,
    id: MatchId,
) -> Result<Recorded, ClusterError> {
    let fail = |detail: String| ClusterError::Records { id, detail };
    let subject = subject(id);
    let last_seq = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => m.sequence,
        Err(e) => return Err(fail(format!("no messages: {e}"))),
    };
    let mut messages = follow(stream, id).await?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut header: Option<ReplayHeader> = None;
    let mut ticks: Vec<TickRecords> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, messages.next())
            .await
            .map_err(|_| fail(format!("not read within {} s", READ_TIMEOUT.as_secs())))?;
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(fail(format!("reading: {e}"))),
            None => return Err(fail("the stream ended early".into())),
        };
        let seq = message
            .info()
            .map_err(|e| fail(format!("a message without its stream sequence: {e}")))?
            .stream_sequence;
        match (kind_of(&message), &header) {
            (records::KIND_HEADER, None) => {
                let h = records::decode_header(&message.payload)
                    .map_err(|e| fail(format!("the header at stream seq {seq}: {e}")))?;
                if h.match_id != id {
                    return Err(fail(format!(
                        "the header at stream seq {seq} is match {}'s",
                        h.match_id.0
                    )));
                }
                header = Some(h);
            }
            (records::KIND_TICKS, Some(_)) => {
                let batch = records::decode_ticks(&message.payload, DEFAULT_MAX_RECORD_BYTES)
                    .map_err(|e| fail(format!("the message at stream seq {seq}: {e}")))?;
                for t in batch {
                    let expected = ticks.last().map_or(1, |p| p.tick.0 + 1);
                    if t.tick.0 != expected {
                        return Err(fail(format!(
                            "the message at stream seq {seq} has tick {} where tick {expected} was expected",
                            t.tick.0
                        )));
                    }
                    ticks.push(t);
                }
            }
            (other, _) => {
                return Err(fail(format!(
                    "a message of kind {other:?} at stream seq {seq} out of place"
                )));
            }
        }
        if seq >= last_seq {
            break;
        }
    }
    let header = header.ok_or_else(|| fail("no header".into()))?;
    Ok(Recorded {
        header,
        ticks,
        last_seq,
    })
}

impl Cluster {
    /// [`read_match`] on this node's stream.
    pub async fn read_match(&self, id: MatchId) -> Result<Recorded, ClusterError> {
        read_match(&self.stream, id).await
    }

    /// Claim match `id` (whose entry was seen at `revision`), read it back, and run it here.
    pub(crate) async fn take_over(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        id: MatchId,
        revision: u64,
    ) -> Result<(), ClusterError> {
        let started = Instant::now();
        if !self.claim(id, revision).await? {
            return Ok(());
        }
        let recorded = match self.read_match(id).await {
            Ok(r) => r,
            Err(e) => {
                self.release(id);
                return Err(e);
            }
        };
        let over = recorded.ticks.iter().any(|t| {
            t.events
                .iter()
                .any(|e| matches!(e.kind, tickforge_protocol::EventKind::MatchEnded { .. }))
        });
        if over {
            // Its owner died after the last tick: there is nothing to run, only to record.
            self.mark_ended(id).await;
            self.release(id);
            return Ok(());
        }
        let last_tick = recorded.ticks.last().map_or(0, |t| t.tick.0);
        let ticks = recorded.ticks.len();
        match registry
            .adopt(recorded.header, recorded.ticks, recorded.last_seq)
            .await
        {
            Ok(_) => {
                self.metrics.takeovers.inc();
                tracing::info!(
                    match_id = id.0,
                    from_tick = last_tick,
                    ticks,
                    took_ms = started.elapsed().as_millis() as u64,
                    "match taken over"
                );
                Ok(())
            }
            Err(e) => {
                self.release(id);
                Err(ClusterError::Records {
                    id,
                    detail: e.to_string(),
                })
            }
        }
    }
}
