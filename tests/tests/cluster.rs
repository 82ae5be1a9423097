//! Cluster mode on a real 3-node NATS JetStream cluster (R3) with real `tickforge-server`
//! nodes as child processes, all on loopback:
//! - placement and redirect: matches land on both game nodes, each node lists all of them,
//!   and a player sent to the wrong node ends up in its match;
//! - the failover loop: the node that owns a match is killed with SIGKILL, another takes the
//!   match over, its players resume there, every command acknowledged in a tick the stream
//!   had acknowledged is in the match's records, and the replay (from the stream, and the new
//!   owner's file) verifies. `TICKFORGE_CLUSTER_KILLS=50` for the full run (CI runs 8);
//! - the relay's read models: its projector (one durable consumer of the whole stream) follows
//!   a match across its owner's failover with no gap, and its summary equals a rebuild from
//!   the match exported from the stream;
//! - the partition: the link between a game node and the NATS server it talks to goes silent
//!   (a proxy that drops every byte); the cut-off node stops its match and tells its players,
//!   and the other node takes it over.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickforge_client::Session;
use tickforge_protocol::{Cause, Command, MatchId, ServerMessage};
use tickforge_server::auth::{Authority, Role};
use tickforge_tests::blackhole::Blackhole;
use tickforge_tests::nats::NatsCluster;

const SECRET: &str = "a cluster secret of the tests";

type Shared<T> = Arc<std::sync::Mutex<T>>;

fn token(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    Authority::new(Some(SECRET), Duration::from_secs(3600))
        .issue(Role::Player, name, now)
        .0
}

struct GameNode {
    name: String,
    url: String,
    child: tokio::process::Child,
}

/// A game node; its empty matches end after `idle_secs`.
async fn start_node(name: &str, nats: &str, dir: &Path, idle_secs: &str) -> GameNode {
    let (child, url) = tickforge_tests::start_binary(
        dir,
        &[
            "--nats",
            nats,
            "--nats-replicas",
            "3",
            "--node",
            name,
            "--auth-secret",
            SECRET,
            "--lease-ms",
            "1500",
            "--idle-match-secs",
            idle_secs,
            "--resume-grace-secs",
            "30",
            "--game",
            "arena",
        ],
    )
    .await;
    GameNode {
        name: name.to_string(),
        url,
        child,
    }
}

async fn match_info(url: &str, id: MatchId) -> Option<serde_json::Value> {
    tickforge_client::get_json(url, &format!("/matches/{}", id.0))
        .await
        .ok()
}

/// Create a match through `url`; returns its id and the node it was placed on.
async fn create(url: &str, seed: u64) -> (MatchId, String) {
    let info = tickforge_client::create_match(url, &token("maker"), "arena", None, Some(seed))
        .await
        .expect("POST /matches");
    let id = MatchId(info["id"].as_u64().expect("an id"));
    let node = info["node"].as_str().expect("a node").to_string();
    (id, node)
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_spread_over_the_nodes_and_players_are_redirected() {
    let nats = NatsCluster::start(3).await;
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start_node("a", &nats.urls(), da.path(), "60").await;
    let b = start_node("b", &nats.urls(), db.path(), "60").await;
    // Each node sees the other's entry within a renewal round or two.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut placed: BTreeMap<MatchId, String> = BTreeMap::new();
    for seed in 0..4 {
        let (id, node) = create(&a.url, seed).await;
        placed.insert(id, node);
        // Let the directory hear of the new count before the next placement.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let on_b = placed.values().filter(|n| *n == "b").count();
    assert!(
        (1..=3).contains(&on_b),
        "POST /matches on a places matches on both nodes: {placed:?}"
    );
    for node in [&a, &b] {
        let url = node.url.clone();
        let ids: Vec<MatchId> = placed.keys().copied().collect();
        wait_until(
            &format!("GET /matches on {} lists every match", node.name),
            Duration::from_secs(5),
            || {
                let (url, ids) = (url.clone(), ids.clone());
                async move {
                    let Ok(list) = tickforge_client::get_json(&url, "/matches").await else {
                        return false;
                    };
                    let listed: Vec<u64> = list
                        .as_array()
                        .map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect())
                        .unwrap_or_default();
                    ids.iter().all(|id| listed.contains(&id.0))
                }
            },
        )
        .await;
    }
    // A player asking node a for a match on node b ends up in it, on b.
    let (&on_b, _) = placed.iter().find(|(_, n)| *n == "b").expect("one on b");
    let session = Session::join(&a.url, &token("p1"), Some(on_b), "p1")
        .await
        .expect("joins through a redirect");
    assert_eq!(session.match_id(), on_b);
    assert!(
        session.url().contains(tickforge_tests::authority(&b.url)),
        "the session followed the redirect to b: {}",
        session.url()
    );
    // Node a says where the match is, with 4011 and the address, to a client that does not
    // follow redirects.
    let mut raw = tickforge_client::Connection::connect(&a.url, &token("p2"))
        .await
        .expect("connects");
    raw.send(&tickforge_protocol::ClientMessage::Join {
        match_id: Some(on_b),
        name: "p2".into(),
    })
    .await
    .expect("sends");
    match raw.recv().await.expect("an answer") {
        ServerMessage::Error { code, reason } => {
            assert_eq!(code, 4011);
            assert_eq!(
                reason,
                format!(
                    "match {} is on ws://{}/play",
                    on_b.0,
                    tickforge_tests::authority(&b.url)
                )
            );
        }
        other => panic!("expected Error 4011, got {other:?}"),
    }
    drop((a.child, b.child));
}

/// What one player saw: the commands acknowledged, with the tick of each ack.
#[derive(Default, Debug)]
struct Seen {
    acked: Vec<(u32, u64)>,
    /// How the player's connections ended, as the client saw it.
    closes: Vec<String>,
    resumes: u32,
    ticks_after_resume: u64,
    failures: Vec<String>,
}

/// A player that moves every tick and, when its node goes away, resumes on any node.
fn play(
    mut session: Session,
    nodes: Shared<Vec<String>>,
    seen: Shared<Seen>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Session> {
    tokio::spawn(async move {
        let me = session.entity();
        let mut turn = 0i32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let received = tokio::time::timeout(Duration::from_millis(500), session.recv()).await;
            match received {
                Err(_) => continue,
                Ok(Ok(ServerMessage::Tick(frame))) => {
                    {
                        let mut s = seen.lock().expect("lock");
                        for id in &frame.acks {
                            s.acked.push((id.0, frame.tick.0));
                        }
                        if s.resumes > 0 {
                            s.ticks_after_resume += 1;
                        }
                    }
                    turn = (turn + 7) % 120;
                    let command = Command::Move {
                        entity: me,
                        vx: turn - 60,
                        vy: 30 - turn / 2,
                    };
                    let _ = session.send(command).await;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    seen.lock().expect("lock").closes.push(e.to_string());
                    // The node is gone or moved the match: resume, on whichever node answers.
                    let deadline = Instant::now() + Duration::from_secs(20);
                    let mut resumed = false;
                    let mut attempt = 0usize;
                    while Instant::now() < deadline && !resumed {
                        let urls = nodes.lock().expect("lock").clone();
                        session.set_url(&urls[attempt % urls.len()]);
                        attempt += 1;
                        match session.reconnect().await {
                            Ok(()) => resumed = true,
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                    let gave_up = {
                        let mut s = seen.lock().expect("lock");
                        if resumed {
                            s.resumes += 1;
                        } else {
                            s.failures.push("did not resume within 20 s".into());
                        }
                        !resumed
                    };
                    if gave_up {
                        return session;
                    }
                }
            }
        }
        session
    })
}

/// Wait until the player behind `seen` has resumed and played `ticks` ticks since.
async fn resumed_and_playing(seen: &Shared<Seen>, ticks: u64, what: &str) {
    let seen = seen.clone();
    wait_until(what, Duration::from_secs(30), || {
        let seen = seen.clone();
        async move {
            let s = seen.lock().expect("lock");
            assert!(s.failures.is_empty(), "{what}: {:?}", s.failures);
            s.resumes >= 1 && s.ticks_after_resume >= ticks
        }
    })
    .await;
}

/// Stop the players' loops, and each leaves the match.
async fn leave_all(
    stop: &std::sync::atomic::AtomicBool,
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<Session>>,
) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        let session = task.await.expect("the player's task");
        let _ = tokio::time::timeout(Duration::from_secs(5), session.leave()).await;
    }
}

/// The percentile `p` (0..=100) of `values`, in the same unit.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted.get(at).copied().unwrap_or(0.0)
}

async fn verify(file: &Path) {
    let out = tokio::process::Command::new(tickforge_tests::binary("tickforge-replay"))
        .arg("verify")
        .arg(file)
        .output()
        .await
        .expect("tickforge-replay runs");
    assert!(
        out.status.success(),
        "{} verifies: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn fetch(nats: &str, id: MatchId, out: &Path) {
    let status = tokio::process::Command::new(tickforge_tests::binary("tickforge-replay"))
        .args([
            "fetch",
            "--nats",
            nats,
            "--match",
            &id.0.to_string(),
            "--out",
        ])
        .arg(out)
        .output()
        .await
        .expect("tickforge-replay runs");
    assert!(
        status.status.success(),
        "match {id} is fetched from the stream: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Every command acknowledged in a tick at or before `durable` (the stream had it) is in the
/// replay `file`, as an event or a rejection of that player.
fn assert_acked_are_recorded(file: &Path, player: u32, acked: &[(u32, u64)], durable: u64) {
    let mut reader = tickforge_server::log::ReplayReader::open(file).expect("opens");
    let mut recorded = std::collections::BTreeSet::new();
    for t in reader.ticks().expect("ticks") {
        let t = t.expect("a whole tick");
        for e in &t.events {
            if let Cause::Command { player: p, id } = e.cause
                && p.0 == player
            {
                recorded.insert(id.0);
            }
        }
        for r in &t.rejections {
            if r.player.0 == player {
                recorded.insert(r.id.0);
            }
        }
    }
    let lost: Vec<&(u32, u64)> = acked
        .iter()
        .filter(|(id, tick)| *tick <= durable && !recorded.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "player {player}: commands acknowledged in ticks the stream had are missing: {lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_matches_continue_on_another_node() {
    let kills: usize = std::env::var("TICKFORGE_CLUSTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let nats = NatsCluster::start(3).await;
    let dirs: BTreeMap<&str, tempfile::TempDir> = [
        ("a", tempfile::tempdir().expect("dir")),
        ("b", tempfile::tempdir().expect("dir")),
    ]
    .into_iter()
    .collect();
    let mut nodes: BTreeMap<String, GameNode> = BTreeMap::new();
    for name in ["a", "b"] {
        nodes.insert(
            name.into(),
            start_node(name, &nats.urls(), dirs[name].path(), "2").await,
        );
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let fetched = tempfile::tempdir().expect("dir");
    let mut failovers: Vec<f64> = Vec::new();
    for round in 0..kills {
        let urls: Shared<Vec<String>> = Arc::new(std::sync::Mutex::new(
            nodes.values().map(|n| n.url.clone()).collect(),
        ));
        let any = urls.lock().expect("lock")[round % 2].clone();
        let (id, owner) = create(&any, round as u64).await;
        // The players join through the node that does not own the match.
        let other = nodes
            .keys()
            .find(|n| **n != owner)
            .expect("two nodes")
            .clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut players = Vec::new();
        for p in 0..2 {
            let name = format!("r{round}p{p}");
            let session = Session::join(&nodes[&other].url, &token(&name), Some(id), &name)
                .await
                .expect("joins");
            let seen: Shared<Seen> = Arc::default();
            let player = session.player().0;
            players.push((
                player,
                seen.clone(),
                play(session, urls.clone(), seen, stop.clone()),
            ));
        }
        // Play a little, then kill the owner, knowing what the stream had acknowledged.
        let owner_url = nodes[&owner].url.clone();
        let mut durable = 0u64;
        let play_for = Duration::from_millis(600 + (round as u64 * 137) % 700);
        let until = Instant::now() + play_for;
        while Instant::now() < until {
            if let Some(info) = match_info(&owner_url, id).await {
                durable = durable.max(info["stream_tick"].as_u64().unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut dead = nodes.remove(&owner).expect("the owner");
        dead.child.kill().await.expect("kill -9");
        let killed = Instant::now();
        urls.lock().expect("lock").retain(|u| *u != dead.url);
        let survivor = nodes.values().next().expect("a survivor");
        // Failover: from the kill to the first tick the new owner runs.
        let mut first_tick: Option<u64> = None;
        let deadline = killed + Duration::from_secs(15);
        let took = loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: match {id} continues on {} within 15 s",
                survivor.name
            );
            if let Some(info) = match_info(&survivor.url, id).await
                && info["node"] == survivor.name.as_str()
                && info["state"] == "running"
            {
                let tick = info["tick"].as_u64().unwrap_or(0);
                match first_tick {
                    None => first_tick = Some(tick),
                    Some(first) if tick > first => break killed.elapsed(),
                    Some(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        failovers.push(took.as_secs_f64());
        assert!(
            first_tick.unwrap_or(0) >= durable,
            "round {round}: the new owner continues from tick {first_tick:?}, before tick {durable} the stream had acknowledged"
        );
        // The players resume on the survivor and play on.
        for (player, seen, _) in &players {
            let what = format!("round {round}: player {player} resumes and plays 30 ticks");
            resumed_and_playing(seen, 30, &what).await;
        }
        // The killed node comes back (a new process on the same data directory).
        let name = dead.name.clone();
        drop(dead);
        let back = start_node(&name, &nats.urls(), dirs[name.as_str()].path(), "2").await;
        nodes.insert(name, back);
        // The players leave; the empty match ends and closes its file.
        let mut acked = Vec::new();
        let mut tasks = Vec::new();
        for (player, seen, task) in players {
            tasks.push(task);
            acked.push((player, seen));
        }
        leave_all(&stop, tasks).await;
        let acked: Vec<(u32, Vec<(u32, u64)>)> = acked
            .into_iter()
            .map(|(player, seen)| (player, seen.lock().expect("lock").acked.clone()))
            .collect();
        let survivor = nodes
            .values()
            .find(|n| n.name != owner)
            .expect("the survivor");
        let survivor_url = survivor.url.clone();
        wait_until(
            &format!("round {round}: match {id} ends once empty"),
            Duration::from_secs(15),
            || {
                let url = survivor_url.clone();
                async move {
                    match_info(&url, id)
                        .await
                        .is_some_and(|i| i["state"] == "ended")
                }
            },
        )
        .await;
        // Its replay, from the stream and from the new owner's file, verifies, and holds every
        // command acknowledged in a tick the stream had acknowledged before the kill.
        let from_stream = fetched.path().join(format!("match-{}.tfr", id.0));
        fetch(&nats.url(), id, &from_stream).await;
        verify(&from_stream).await;
        let local = dirs[survivor.name.as_str()]
            .path()
            .join("replays")
            .join(format!("match-{:06}.tfr", id.0));
        verify(&local).await;
        for (player, acked) in &acked {
            assert_acked_are_recorded(&from_stream, *player, acked, durable);
        }
        println!(
            "round {round}: match {id} moved {owner} -> {}: {:.0} ms from the kill to the first tick, stream tick {durable} before it",
            survivor.name,
            took.as_secs_f64() * 1000.0
        );
    }
    println!(
        "failover over {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (lease 1500 ms, 60 Hz)",
        failovers.len(),
        percentile(&failovers, 50.0) * 1000.0,
        percentile(&failovers, 99.0) * 1000.0,
        percentile(&failovers, 100.0) * 1000.0
    );
}

/// What a spectator saw: every tick's seqs in order, and where Live and Ended came.
#[derive(Default, Debug)]
struct Watched {
    seqs: Vec<u64>,
    ticks: Vec<u64>,
    live_at: Vec<usize>,
    ended: Option<u64>,
    error: Option<String>,
}

fn watch(url: String, id: MatchId, from: &str, format: &str) -> tokio::task::JoinHandle<Watched> {
    let path = format!(
        "ws://{}/spectate/{}?from={from}&format={format}",
        tickforge_tests::authority(&url),
        id.0
    );
    tokio::spawn(async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let token = Authority::new(Some(SECRET), Duration::from_secs(3600))
            .issue(Role::Spectator, "watcher", now)
            .0;
        let mut w = Watched::default();
        let mut conn = match tickforge_client::Connection::open(&path, &token).await {
            Ok(c) => c,
            Err(e) => {
                w.error = Some(e.to_string());
                return w;
            }
        };
        loop {
            match tokio::time::timeout(Duration::from_secs(60), conn.recv_spectator()).await {
                Ok(Ok(tickforge_protocol::SpectatorMessage::Tick { tick, events, .. })) => {
                    w.ticks.push(tick.0);
                    w.seqs.extend(events.iter().map(|e| e.seq.0));
                }
                Ok(Ok(tickforge_protocol::SpectatorMessage::Live { .. })) => {
                    w.live_at.push(w.seqs.len())
                }
                Ok(Ok(tickforge_protocol::SpectatorMessage::Ended { last_seq })) => {
                    w.ended = Some(last_seq.0);
                    return w;
                }
                Ok(Err(e)) => {
                    w.error = Some(e.to_string());
                    return w;
                }
                Err(_) => {
                    w.error = Some("nothing for 60 s".into());
                    return w;
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_serves_every_seq_across_a_failover() {
    let nats = NatsCluster::start(3).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut nodes: BTreeMap<String, GameNode> = BTreeMap::new();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        nodes.insert(
            name.into(),
            start_node(name, &nats.urls(), dirs[i].path(), "2").await,
        );
    }
    let (_relay, relay_url) = tickforge_tests::start_binary(
        dirs[2].path(),
        &[
            "--relay",
            "--nats",
            &nats.urls(),
            "--auth-secret",
            SECRET,
            "--node",
            "relay",
        ],
    )
    .await;
    let relay_url = relay_url.replace("ws://", "http://");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (id, owner) = create(&nodes["a"].url, 77).await;
    let other = nodes
        .keys()
        .find(|n| **n != owner)
        .expect("two nodes")
        .clone();
    let urls: Shared<Vec<String>> = Arc::new(std::sync::Mutex::new(
        nodes.values().map(|n| n.url.clone()).collect(),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut players = Vec::new();
    for p in 0..2 {
        let name = format!("w{p}");
        let session = Session::join(&nodes[&other].url, &token(&name), Some(id), &name)
            .await
            .expect("joins");
        let seen: Shared<Seen> = Arc::default();
        players.push((
            seen.clone(),
            play(session, urls.clone(), seen, stop.clone()),
        ));
    }
    // One spectator from the first event in JSON, one from live in MessagePack, both on the
    // relay; a relay runs no match itself, and places those asked of it on a game node.
    let from_start = watch(relay_url.clone(), id, "0", "json");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let from_live = watch(relay_url.clone(), id, "live", "msgpack");
    let placed = tickforge_client::create_match(&relay_url, &token("x"), "arena", None, None)
        .await
        .expect("POST /matches on a relay");
    assert!(
        placed["node"] == "a" || placed["node"] == "b",
        "a relay places new matches on a game node: {placed}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut dead = nodes.remove(&owner).expect("owner");
    dead.child.kill().await.expect("kill -9");
    urls.lock().expect("lock").retain(|u| *u != dead.url);
    for (seen, _) in &players {
        resumed_and_playing(seen, 40, "the players resume on the other node").await;
    }
    leave_all(&stop, players.into_iter().map(|(_, task)| task)).await;
    let watched = [
        from_start.await.expect("the spectator's task"),
        from_live.await.expect("the spectator's task"),
    ];
    let file = tempfile::tempdir().expect("dir");
    let fetched = file.path().join("m.tfr");
    fetch(&nats.url(), id, &fetched).await;
    let last_seq = tickforge_server::log::ReplayReader::open(&fetched)
        .expect("opens")
        .index()
        .last_seq
        .0;
    for (which, w) in ["from 0 (json)", "from live (msgpack)"]
        .iter()
        .zip(&watched)
    {
        assert_eq!(w.error, None, "spectator {which}: {w:?}");
        assert_eq!(
            w.ended,
            Some(last_seq),
            "spectator {which} is told the match ended at its last seq"
        );
        let first = *w.seqs.first().expect("some events");
        if *which == "from 0 (json)" {
            assert_eq!(first, 1, "spectator {which} starts at seq 1");
        }
        let expected: Vec<u64> = (first..=last_seq).collect();
        assert_eq!(
            w.seqs, expected,
            "spectator {which}: every seq once, in order"
        );
        assert!(
            w.ticks.windows(2).all(|t| t[1] == t[0] + 1),
            "spectator {which}: ticks one by one"
        );
        assert_eq!(
            w.live_at.len(),
            1,
            "spectator {which} is told once that it is live"
        );
    }
    relay_projected_the_match(&relay_url, id, &nats.url()).await;
    drop(dead);
}

/// The relay's read models hold match `id` whole once it has ended: its summary says so
/// (`ended`, or `closed` for a match that ended idle, which the relay learns from the
/// directory), it is projected up to the stream's last seq, it has no dead letter (a gap would
/// be one, `missing`), and its summary equals a rebuild from the match exported from the
/// stream (which is fetched once the relay has closed the match: the stream then holds it all).
async fn relay_projected_the_match(relay_url: &str, id: MatchId, nats: &str) {
    use tickforge_projections::{Projector, Queries, SqlStore, Target};
    let summary_path = format!("/matches/{}/summary", id.0);
    let until = Instant::now() + Duration::from_secs(30);
    let summary = loop {
        let got = tickforge_client::http::request(relay_url, "GET", &summary_path, None, None)
            .await
            .ok()
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok());
        if let Some(s) = got.filter(|s| s["state"] != "running") {
            break s;
        }
        assert!(
            Instant::now() < until,
            "the relay projects match {id} to its end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dir = tempfile::tempdir().expect("dir");
    let exported = dir.path().join("m.tfr");
    fetch(nats, id, &exported).await;
    let last_seq = tickforge_server::log::ReplayReader::open(&exported)
        .expect("opens")
        .index()
        .last_seq
        .0;
    assert_eq!(
        summary["projected_seq"], last_seq,
        "projected to the last seq: {summary}"
    );
    let dead = tickforge_client::http::get_json(
        relay_url,
        &format!("/projections/dead-letters?match={}", id.0),
    )
    .await
    .expect("dead letters");
    assert_eq!(
        dead["items"],
        serde_json::json!([]),
        "no gap, nothing dead-lettered"
    );
    let db = Target::Sqlite(dir.path().join("rebuilt.sqlite"));
    let mut projector = Projector::new(SqlStore::open(&db).expect("opens"));
    tickforge_server::projection::project_file(&mut projector, &exported, None, &mut |_| {})
        .expect("projects");
    projector.commit().expect("commits");
    let rebuilt = projector
        .store()
        .summary(id.0)
        .expect("reads")
        .expect("the match");
    assert_eq!(
        summary,
        serde_json::to_value(&rebuilt).expect("JSON"),
        "the relay's read models equal a rebuild from the stream"
    );
    // And `tickforge-replay project --nats`, which reads every match of the stream itself.
    let from_stream = dir.path().join("from-stream.sqlite");
    let out = tokio::process::Command::new(tickforge_tests::binary("tickforge-replay"))
        .args(["project", "--nats", nats, "--db"])
        .arg(&from_stream)
        .arg("--json")
        .output()
        .await
        .expect("tickforge-replay runs");
    assert!(
        out.status.success(),
        "project --nats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = SqlStore::open_for_queries(&Target::Sqlite(from_stream))
        .expect("opens")
        .summary(id.0)
        .expect("reads")
        .expect("the match");
    assert_eq!(
        summary,
        serde_json::to_value(&again).expect("JSON"),
        "the relay's read models equal `project --nats`'s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_cluster_stops_its_match_and_the_other_side_takes_it() {
    let nats = NatsCluster::start(3).await;
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    // Node a reaches NATS server 0 through a link the test can cut; node b talks to servers 1
    // and 2. The JetStream cluster itself stays whole.
    let link = Blackhole::start(([127, 0, 0, 1], nats.nodes[0].client_port).into()).await;
    let a_nats = format!("nats://127.0.0.1:{}", link.port);
    let a = start_node("a", &a_nats, da.path(), "60").await;
    let b_nats = format!("{},{}", nats.url_of(1), nats.url_of(2));
    let b = start_node("b", &b_nats, db.path(), "60").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (id, owner) = create(&a.url, 5).await;
    assert_eq!(
        owner, "a",
        "with equal room, a match is placed on the node asked"
    );
    let urls: Shared<Vec<String>> = Arc::new(std::sync::Mutex::new(vec![b.url.clone()]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut players = Vec::new();
    for p in 0..2 {
        let name = format!("q{p}");
        let session = Session::join(&b.url, &token(&name), Some(id), &name)
            .await
            .expect("joins through b's redirect");
        let seen: Shared<Seen> = Arc::default();
        players.push((
            seen.clone(),
            play(session, urls.clone(), seen, stop.clone()),
        ));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Cut a off: nothing it sends reaches NATS, and nothing comes back.
    link.cut();
    for (seen, _) in &players {
        resumed_and_playing(
            seen,
            30,
            "the cut-off node closes its players, who resume on b",
        )
        .await;
        let s = seen.lock().expect("lock");
        assert!(
            s.closes
                .iter()
                .any(|c| c.contains("4011") && c.contains("cut off from the cluster")),
            "the player was told why: {:?}",
            s.closes
        );
    }
    let info = match_info(&b.url, id).await.expect("b lists the match");
    assert_eq!(info["node"], "b");
    assert_eq!(info["state"], "running");
    // a comes back: it knows it lost the match and appends nothing more.
    link.heal();
    let a_url = a.url.clone();
    wait_until(
        "a counts the lease it lost",
        Duration::from_secs(10),
        || {
            let url = a_url.clone();
            async move {
                let Ok((200, body)) =
                    tickforge_client::http::request(&url, "GET", "/metrics", None, None).await
                else {
                    return false;
                };
                String::from_utf8_lossy(&body)
                    .lines()
                    .any(|l| l.starts_with("tickforge_leases_lost_total") && !l.ends_with(" 0"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    leave_all(&stop, players.into_iter().map(|(_, task)| task)).await;
    // The stream holds one match, tick after tick, whichever node wrote it.
    let dir = tempfile::tempdir().expect("dir");
    let fetched = dir.path().join("m.tfr");
    fetch(&nats.url_of(1), id, &fetched).await;
    verify(&fetched).await;
    drop((a.child, b.child));
}

/// The relay's projector killed with SIGKILL three times while a match plays, and started
/// again on the same data directory (the same durable consumer), the last time with its
/// database deleted: afterwards its read models hold the match whole, with no gap and nothing
/// counted twice (a rebuild from the stream has the same summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_s_projector_killed_midway_resumes_from_its_durable_consumer() {
    let nats = NatsCluster::start(3).await;
    let node_dir = tempfile::tempdir().expect("dir");
    let relay_dir = tempfile::tempdir().expect("dir");
    let node = start_node("a", &nats.urls(), node_dir.path(), "2").await;
    let relay_args = [
        "--relay",
        "--nats",
        &nats.urls(),
        "--auth-secret",
        SECRET,
        "--node",
        "relay",
        "--projection-batch-ms",
        "50",
    ];
    let (mut relay, mut relay_url) =
        tickforge_tests::start_binary(relay_dir.path(), &relay_args).await;
    let (id, _) = create(&node.url, 91).await;
    let urls: Shared<Vec<String>> = Arc::new(std::sync::Mutex::new(vec![node.url.clone()]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut players = Vec::new();
    for p in 0..2 {
        let name = format!("p{p}");
        let session = Session::join(&node.url, &token(&name), Some(id), &name)
            .await
            .expect("joins");
        players.push(play(session, urls.clone(), Arc::default(), stop.clone()));
    }
    let summary_path = format!("/matches/{}/summary", id.0);
    let mut projected_before_kill = Vec::new();
    for round in 0..3 {
        // Some more of the match is projected, then the relay dies mid-stream.
        let http = relay_url.replace("ws://", "http://");
        let seen = projected_before_kill.last().copied().unwrap_or(0);
        wait_until(
            "the relay projects more of the match",
            Duration::from_secs(30),
            || {
                let (http, path) = (http.clone(), summary_path.clone());
                async move {
                    tickforge_client::http::get_json(&http, &path)
                        .await
                        .ok()
                        .and_then(|s| s["projected_tick"].as_u64())
                        .is_some_and(|t| t > seen + 30)
                }
            },
        )
        .await;
        let s = tickforge_client::http::get_json(&http, &summary_path)
            .await
            .expect("summary");
        projected_before_kill.push(s["projected_tick"].as_u64().expect("a tick"));
        relay.kill().await.expect("kill -9");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round == 2 {
            // The last time, its database is deleted too (to be rebuilt): the relay projects
            // the stream again from its first message.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(
                    relay_dir.path().join(format!("read-models.sqlite{suffix}")),
                );
            }
        }
        (relay, relay_url) = tickforge_tests::start_binary(relay_dir.path(), &relay_args).await;
    }
    leave_all(&stop, players).await;
    println!("the relay was killed at projected ticks {projected_before_kill:?}");
    relay_projected_the_match(&relay_url.replace("ws://", "http://"), id, &nats.url()).await;
    drop(relay);
}
