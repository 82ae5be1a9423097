//! Resuming: a dropped client comes back with its token and ends with exactly the state of a
//! client that never dropped; a resent command id is acknowledged but not applied twice; a gap
//! beyond the server's window is bridged with a snapshot; a lost delta is detected and
//! resynced; a player who does not come back within the grace period is gone.

use serde_json::json;
use std::time::Duration;
use tickforge_client::{ClientError, Session};
use tickforge_protocol::{Command, EventKind, ServerMessage, Tick};
use tickforge_tests::{TestServer, read_until};

/// Both players drift for `ticks` deltas (B's commands stop while it is away).
async fn drift(a: &mut Session, b: Option<&mut Session>, ticks: usize) {
    let (ea, mut b) = (a.entity(), b);
    for n in 0..ticks {
        let Ok(ServerMessage::Tick(_)) = a.recv().await else {
            continue;
        };
        a.send(Command::Drift {
            entity: ea,
            dx: 5,
            dy: (n % 7) as i32 - 3,
        })
        .await
        .expect("sends");
        if let Some(b) = b.as_deref_mut() {
            let eb = b.entity();
            b.send(Command::Drift {
                entity: eb,
                dx: -4,
                dy: 2,
            })
            .await
            .expect("sends");
            let _ = b.recv().await.expect("b holds");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_resumes_to_the_same_state_and_duplicates_apply_once() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3 }), 1)
        .await;
    let mut a = server.join(id, "steady").await;
    let mut b = server.join(id, "flaky").await;
    drift(&mut a, Some(&mut b), 40).await;

    // B drops without a word, misses half a second, and comes back.
    b.drop_connection();
    drift(&mut a, None, 30).await;
    b.reconnect().await.expect("resumes with its token");
    let eb = b.entity();

    // A command, then the same id again: acknowledged twice, applied once.
    let id_k = b
        .send(Command::Drift {
            entity: eb,
            dx: 100,
            dy: 100,
        })
        .await
        .expect("sends");
    let mut acks = Vec::new();
    let answers = |m: ServerMessage| match m {
        ServerMessage::Tick(t) => t
            .acks
            .iter()
            .map(|id| (*id, false))
            .chain(t.duplicates.iter().map(|d| (d.id, true)))
            .collect(),
        _ => Vec::new(),
    };
    while acks.is_empty() {
        acks.extend(answers(b.recv().await.expect("holds")));
    }
    b.send_with_id(
        id_k,
        Command::Drift {
            entity: eb,
            dx: 100,
            dy: 100,
        },
    )
    .await
    .expect("resends");
    while acks.len() < 2 {
        acks.extend(answers(b.recv().await.expect("holds")));
    }
    assert_eq!(
        acks,
        vec![(id_k, false), (id_k, true)],
        "the resent id is acknowledged as a duplicate"
    );

    // Both read up to the same tick: their worlds must be identical.
    let target = Tick(a.mirror().tick().0.max(b.mirror().tick().0) + 10);
    read_until(&mut a, target).await;
    read_until(&mut b, target).await;
    assert_eq!(
        a.mirror(),
        b.mirror(),
        "after resuming, B's world should equal A's at tick {}",
        target.0
    );

    let path = server.replay_path(id);
    drop((a, b));
    let _dir = server.stop().await;
    let mut reader = tickforge_server::log::ReplayReader::open(&path).expect("opens");
    let applied = reader
        .ticks()
        .expect("reads")
        .map(|t| t.expect("tick"))
        .flat_map(|t| t.events)
        .filter(|e| matches!(e.kind, EventKind::PlayerDrifted { entity, input, .. } if entity == eb && input == id_k))
        .count();
    assert_eq!(
        applied, 1,
        "command {} should have been applied exactly once",
        id_k.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_beyond_the_window_is_bridged_with_a_snapshot() {
    let server = TestServer::start(|c| c.resume_window_ticks = 10).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3 }), 2)
        .await;
    let mut a = server.join(id, "steady").await;
    let mut b = server.join(id, "flaky").await;
    drift(&mut a, Some(&mut b), 20).await;
    b.drop_connection();
    drift(&mut a, None, 60).await;
    b.reconnect().await.expect("resumes");
    let first = tokio::time::timeout(Duration::from_secs(5), b.recv())
        .await
        .expect("a message")
        .expect("holds");
    assert!(
        matches!(first, ServerMessage::Snapshot(_)),
        "60 ticks away with a 10-tick window: a snapshot, got {first:?}"
    );
    let target = Tick(a.mirror().tick().0.max(b.mirror().tick().0) + 5);
    read_until(&mut a, target).await;
    read_until(&mut b, target).await;
    assert_eq!(a.mirror(), b.mirror(), "the snapshot brings B level with A");
    drop((a, b));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delta_is_detected_and_resynced() {
    let server = TestServer::start(|_| {}).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3 }), 3)
        .await;
    let mut a = server.join(id, "steady").await;
    let mut b = server.join(id, "lossy").await;
    drift(&mut a, Some(&mut b), 10).await;
    // Lose one delta on B's side.
    loop {
        if let ServerMessage::Tick(_) = b.recv_unapplied().await.expect("holds") {
            break;
        }
    }
    let gap = loop {
        match b.recv().await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(gap, ClientError::Gap(_)),
        "the next delta should reveal the gap, got {gap:?}"
    );
    assert!(gap.needs_resume());
    b.reconnect().await.expect("resyncs by resuming");
    let target = Tick(a.mirror().tick().0.max(b.mirror().tick().0) + 5);
    read_until(&mut a, target).await;
    read_until(&mut b, target).await;
    assert_eq!(a.mirror(), b.mirror(), "after the resync B equals A");
    drop((a, b));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_gone_past_the_grace_period_cannot_resume() {
    let server = TestServer::start(|c| c.resume_grace = Duration::from_secs(1)).await;
    let id = server
        .create_match("drift", json!({ "max_players": 3 }), 4)
        .await;
    let mut a = server.join(id, "steady").await;
    let mut b = server.join(id, "gone").await;
    let eb = b.entity();
    let soon = Tick(b.mirror().tick().0 + 3);
    read_until(&mut b, soon).await;
    b.drop_connection();
    // Watch B's entity leave through A's eyes, then try to resume.
    let left = loop {
        if let ServerMessage::Tick(d) = a.recv().await.expect("holds")
            && a.last_delta()
                .is_some_and(|delta| delta.removed.contains(&eb))
        {
            break d.tick;
        }
    };
    assert!(
        left.0 > 60,
        "the entity should stay for the 1 s grace period first (left at tick {})",
        left.0
    );
    let err = b.reconnect().await.expect_err("the seat is gone");
    assert_eq!(err.close_code(), Some(4008), "resume_failed: {err}");
    drop((a, b));
    server.stop().await;
}
