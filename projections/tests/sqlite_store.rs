//! The projector on a real SQLite file: a poison event lands in the dead-letter table with
//! its reason and seq while the events after it are projected; a batch delivered twice, or
//! again by a new projector after a restart, changes nothing; a commit is all or nothing.

use tickforge_projections::query::Period;
use tickforge_projections::{Applied, Projector, Queries, Sqlite, Store};
use tickforge_protocol::{
    Cause, EVENT_SCHEMA_VERSION, EndReason, EntityId, Event, EventKind, GameConfig, GameValue,
    MatchId, PlayerId, ReplayHeader, Seq, Tick,
};

fn header(id: u64) -> ReplayHeader {
    ReplayHeader {
        format_version: 1,
        protocol_version: 2,
        game: "arena".into(),
        rules_version: 1,
        match_id: MatchId(id),
        seed: 1,
        tick_rate_hz: 60,
        config: GameConfig::default_for("arena").expect("arena"),
        created_at_unix_ms: 1_796_209_200_000,
        snapshot_every_ticks: 0,
        hash_parts: vec![],
    }
}

fn event(id: u64, seq: u64, tick: u64, kind: EventKind) -> Event {
    Event {
        match_id: MatchId(id),
        seq: Seq(seq),
        tick: Tick(tick),
        v: EVENT_SCHEMA_VERSION,
        cause: Cause::Rules,
        kind,
    }
}

/// A short match: two players join, ann kills bob, a newer server's event in between, the
/// match ends with ann the winner.
fn ticks(id: u64) -> Vec<(u64, Vec<Event>)> {
    let joined = |seq, player: u32, entity: u32, name: &str| {
        event(
            id,
            seq,
            1,
            EventKind::PlayerJoined {
                player: PlayerId(player),
                entity: EntityId(entity),
                name: name.into(),
            },
        )
    };
    let poison = EventKind::Game(Box::new(GameValue {
        kind: "teleported".into(),
        value: serde_json::json!({ "entity": 10, "x": 5 }),
    }));
    vec![
        (1, vec![joined(1, 1, 10, "ann"), joined(2, 2, 11, "bob")]),
        (2, vec![event(id, 3, 2, poison)]),
        (
            3,
            vec![event(
                id,
                4,
                3,
                EventKind::PlayerKilled {
                    victim: EntityId(11),
                    killer: Some(EntityId(10)),
                    respawn_at: Tick(100),
                },
            )],
        ),
        (4, vec![]),
        (
            5,
            vec![event(
                id,
                5,
                5,
                EventKind::MatchEnded {
                    reason: EndReason::ScoreLimit,
                    winner: Some(PlayerId(1)),
                },
            )],
        ),
    ]
}

fn feed(projector: &mut Projector<Sqlite>, id: u64) -> Vec<Applied> {
    projector.open(&header(id)).expect("opens");
    ticks(id)
        .iter()
        .map(|(tick, events)| projector.tick(id, *tick, events, &[]).expect("open"))
        .collect()
}

#[test]
fn a_poison_event_is_dead_lettered_and_projection_continues() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("read.sqlite");
    let mut projector = Projector::new(Sqlite::open(&path).expect("opens"));
    feed(&mut projector, 7);
    let done = projector.commit().expect("commits");
    assert_eq!(done.dead_letters, 1);

    let mut db = Sqlite::open_read_only(&path).expect("opens");
    let dead = db.dead_letters(None, 10, 0).expect("reads");
    assert_eq!(dead.items.len(), 1);
    assert_eq!((dead.items[0].match_id, dead.items[0].seq), (7, 3));
    assert!(
        dead.items[0]
            .reason
            .contains("unknown event kind `teleported`")
    );
    // The kill after it counted, and the end.
    let s = db.summary(7).expect("reads").expect("projected");
    assert_eq!(s.state, "ended");
    assert_eq!(s.events, 4, "every event but the poison one");
    assert_eq!((s.projected_tick, s.projected_seq), (5, 5));
    let ann = db.career("ann", 10).expect("reads").expect("ann played");
    assert_eq!((ann.totals.kills, ann.totals.wins), (1, 1));
}

#[test]
fn delivering_the_same_ticks_again_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("read.sqlite");
    let mut projector = Projector::new(Sqlite::open(&path).expect("opens"));
    feed(&mut projector, 1);
    // Twice in one batch: the second time every tick is at or before the checkpoint.
    assert!(
        feed(&mut projector, 1)
            .iter()
            .all(|a| *a == Applied::Duplicate)
    );
    projector.commit().expect("commits");
    let before = Sqlite::open_read_only(&path)
        .expect("opens")
        .summary(1)
        .expect("reads");
    // And by a new projector, as after a restart: it starts from the committed checkpoint.
    drop(projector);
    let mut projector = Projector::new(Sqlite::open(&path).expect("opens"));
    assert!(
        feed(&mut projector, 1)
            .iter()
            .all(|a| *a == Applied::Duplicate)
    );
    projector.commit().expect("commits");
    let mut db = Sqlite::open_read_only(&path).expect("opens");
    assert_eq!(db.summary(1).expect("reads"), before);
    let board = db
        .leaderboard("arena", Period::All, 0, 10, 0)
        .expect("reads");
    let names: Vec<(&str, u64, u64)> = board
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.wins, e.kills))
        .collect();
    assert_eq!(names, [("ann", 1, 1), ("bob", 0, 0)]);
    assert_eq!(db.dead_letters(None, 10, 0).expect("reads").items.len(), 1);
}

#[test]
fn a_schema_of_another_version_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("read.sqlite");
    let mut store = Sqlite::open(&path).expect("opens");
    store.reset().expect("resets");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("opens");
    conn.execute("UPDATE tf_schema SET version = 99", [])
        .expect("updates");
    drop(conn);
    let e = Sqlite::open(&path).expect_err("refused");
    assert!(e.to_string().contains("--rebuild"), "{e}");
}
