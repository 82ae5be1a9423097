//! A sink the server was built with sees every tick of every match, in order, and the match's
//! end, without any change to match code: the seam a publisher of the event stream (or a read
//! model) plugs into. What it receives is what the replay file holds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tickforge_client::Session;
use tickforge_protocol::{Command, Event, MatchId, ServerMessage, Tick};
use tickforge_server::matches::core::TickOutput;
use tickforge_server::matches::{MatchInfo, MatchShared, TickSink};
use tickforge_server::net::Server;
use tickforge_tests::TestServer;

/// What one match's recording sink received.
#[derive(Debug, Default)]
struct Received {
    ticks: Vec<Tick>,
    events: Vec<Event>,
    rejections: usize,
    hashes: Vec<u64>,
    finished: Option<MatchInfo>,
}

struct Recorder(Arc<Mutex<Received>>);

/// Every match's recording, by match, in the order the server created them.
type Recordings = Arc<Mutex<Vec<(MatchId, Arc<Mutex<Received>>)>>>;

/// The recording of match `id`.
fn recording(seen: &Recordings, id: MatchId) -> Arc<Mutex<Received>> {
    let recorded = seen.lock().expect("not poisoned");
    let (_, received) = recorded
        .iter()
        .find(|(m, _)| *m == id)
        .expect("a sink per match");
    received.clone()
}

impl TickSink for Recorder {
    fn tick(&mut self, output: &TickOutput) {
        let mut r = self.0.lock().expect("not poisoned");
        r.ticks.push(output.tick);
        r.events.extend(output.records.events.iter().cloned());
        r.rejections += output.records.rejections.len();
        r.hashes.push(output.records.hash.0);
    }

    fn finished(&mut self, summary: &MatchInfo) {
        self.0.lock().expect("not poisoned").finished = Some(summary.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_of_the_servers_receives_every_tick_and_the_end() {
    let seen: Recordings = Arc::default();
    let builder = {
        let seen = seen.clone();
        Server::builder().sink(Arc::new(move |shared: &Arc<MatchShared>| {
            let received = Arc::new(Mutex::new(Received::default()));
            seen.lock()
                .expect("not poisoned")
                .push((shared.id, received.clone()));
            Box::new(Recorder(received)) as Box<dyn TickSink>
        }))
    };
    let server = TestServer::start_with(builder, |_| {}).await;
    let id = server
        .create_match(
            "arena",
            json!({ "max_players": 2, "width_mm": 8000, "height_mm": 8000, "time_limit_ticks": 180 }),
            3,
        )
        .await;
    let token = server.token("p").await;
    let mut s = Session::join(&server.url, &token, Some(id), "p")
        .await
        .expect("joins");
    let me = s.entity();
    let mut n = 0;
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), s.recv()).await {
        match message {
            ServerMessage::Tick(_) => {
                n += 1;
                // A steer every tick, and now and then one too fast (rejected).
                let vx = if n % 10 == 0 { 5000 } else { 50 };
                s.send(Command::Move {
                    entity: me,
                    vx,
                    vy: 0,
                })
                .await
                .expect("sends");
            }
            ServerMessage::MatchEnded { .. } => break,
            _ => {}
        }
    }
    // The match has ended: its task finishes and tells the sink.
    let mut summary = None;
    let received = recording(&seen, id);
    for _ in 0..200 {
        if let Some(s) = received.lock().expect("not poisoned").finished.clone() {
            summary = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let summary = summary.expect("the sink is told the match finished");
    assert_eq!(summary.end_reason, Some("over"));
    let path = server.replay_path(id);
    let received = std::mem::take(&mut *received.lock().expect("not poisoned"));
    let expected: Vec<Tick> = (1..=180).map(Tick).collect();
    assert_eq!(received.ticks, expected, "every tick, once, in order");
    assert!(received.rejections > 0, "rejections are in the records");
    // Exactly what the log holds.
    let mut reader = tickforge_server::log::ReplayReader::open(&path).expect("the replay opens");
    let mut events = Vec::new();
    let mut hashes = Vec::new();
    for t in reader.ticks().expect("reads") {
        let t = t.expect("a whole tick");
        events.extend(t.events);
        hashes.push(t.end.hash.0);
    }
    assert_eq!(received.events, events, "the sink's events are the log's");
    assert_eq!(received.hashes, hashes, "and so are its tick hashes");
    server.stop().await;
}
