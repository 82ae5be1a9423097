//! The projector on each database, a real SQLite file and a real PostgreSQL server
//! (`tickforge_tests::postgres`): a poison event lands in the dead-letter table with its reason
//! and seq while the events after it are projected; a batch delivered twice, or again by a new
//! projector after a restart, changes nothing; a database that goes down and comes back loses
//! nothing and counts nothing twice; another schema version is refused with what to do.

use tickforge_projections::query::Period;
use tickforge_projections::{Applied, Projector, Queries, SqlStore, Store, Target};
use tickforge_protocol::{
    Cause, EVENT_SCHEMA_VERSION, EndReason, EntityId, Event, EventKind, GameConfig, GameValue,
    MatchId, PlayerId, ReplayHeader, Seq, Tick,
};
use tickforge_tests::postgres::PgServer;

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

fn feed(projector: &mut Projector<SqlStore>, id: u64) -> Vec<Applied> {
    projector.open(&header(id)).expect("opens");
    ticks(id)
        .iter()
        .map(|(tick, events)| projector.tick(id, *tick, events, &[]).expect("open"))
        .collect()
}

/// Where a scenario runs: a new database of each kind. PostgreSQL is skipped, with the
/// reason printed, only where it cannot run.
struct Databases {
    _dir: tempfile::TempDir,
    sqlite: Target,
    postgres: Option<(PgServer, Target)>,
}

impl Databases {
    fn new() -> Databases {
        let dir = tempfile::tempdir().expect("dir");
        let sqlite = Target::Sqlite(dir.path().join("read.sqlite"));
        let postgres = match PgServer::start() {
            Ok(pg) => {
                pg.create_db("reads");
                let target = Target::parse(&pg.url("reads"));
                Some((pg, target))
            }
            Err(reason) => {
                eprintln!("skipping PostgreSQL: {reason}");
                None
            }
        };
        Databases {
            _dir: dir,
            sqlite,
            postgres,
        }
    }

    fn targets(&self) -> Vec<&Target> {
        let mut all = vec![&self.sqlite];
        all.extend(self.postgres.as_ref().map(|(_, t)| t));
        all
    }
}

fn open(target: &Target) -> SqlStore {
    SqlStore::open(target).unwrap_or_else(|e| panic!("opens {target}: {e}"))
}

fn reader(target: &Target) -> SqlStore {
    SqlStore::open_for_queries(target).unwrap_or_else(|e| panic!("opens {target}: {e}"))
}

#[test]
fn a_poison_event_is_dead_lettered_and_projection_continues() {
    let dbs = Databases::new();
    for target in dbs.targets() {
        let mut projector = Projector::new(open(target));
        feed(&mut projector, 7);
        let done = projector.commit().expect("commits");
        assert_eq!(done.dead_letters, 1);

        let mut db = reader(target);
        let dead = db.dead_letters(None, 10, 0).expect("reads");
        assert_eq!(dead.items.len(), 1, "{target}");
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
        assert_eq!((ann.totals.kills, ann.totals.wins), (1, 1), "{target}");
        assert_eq!(ann.recent.len(), 1);
        assert!(ann.recent[0].won && ann.recent[0].ended);
    }
}

#[test]
fn delivering_the_same_ticks_again_changes_nothing() {
    let dbs = Databases::new();
    for target in dbs.targets() {
        let mut projector = Projector::new(open(target));
        feed(&mut projector, 1);
        // Twice in one batch: the second time every tick is at or before the checkpoint.
        assert!(
            feed(&mut projector, 1)
                .iter()
                .all(|a| *a == Applied::Duplicate)
        );
        projector.commit().expect("commits");
        let before = reader(target).summary(1).expect("reads");
        // And by a new projector, as after a restart: it starts from the committed checkpoint.
        drop(projector);
        let mut projector = Projector::new(open(target));
        assert!(
            feed(&mut projector, 1)
                .iter()
                .all(|a| *a == Applied::Duplicate)
        );
        projector.commit().expect("commits");
        let mut db = reader(target);
        assert_eq!(db.summary(1).expect("reads"), before);
        assert_leaderboard(&mut db, target);
        assert_eq!(db.dead_letters(None, 10, 0).expect("reads").items.len(), 1);
    }
}

fn assert_leaderboard(db: &mut SqlStore, target: &Target) {
    let board = db
        .leaderboard("arena", Period::All, 0, 10, 0)
        .expect("reads");
    let names: Vec<(&str, u64, u64)> = board
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.wins, e.kills))
        .collect();
    assert_eq!(names, [("ann", 1, 1), ("bob", 0, 0)], "{target}");
}

/// PostgreSQL stopped between two commits, and while a commit is tried: the commit fails as
/// transient and is kept; once the server is back the same projector commits it, and the
/// rows are those of a run without the outage.
#[test]
fn a_database_that_goes_down_and_comes_back_loses_nothing() {
    let dbs = Databases::new();
    let Some((pg, target)) = &dbs.postgres else {
        return;
    };
    let mut projector = Projector::new(open(target));
    let all = ticks(3);
    projector.open(&header(3)).expect("opens");
    let (first, rest) = all.split_at(2);
    for (tick, events) in first {
        projector.tick(3, *tick, events, &[]).expect("open");
    }
    projector.commit().expect("commits");
    pg.stop();
    for (tick, events) in rest {
        projector.tick(3, *tick, events, &[]).expect("open");
    }
    for _ in 0..3 {
        let e = projector.commit().expect_err("the database is down");
        assert!(e.transient, "{e}");
        assert!(
            e.to_string()
                .contains("PostgreSQL database reads at 127.0.0.1"),
            "{e}"
        );
    }
    assert!(projector.pending_rows() > 0, "the batch is kept");
    pg.start_again();
    projector
        .commit()
        .expect("commits once the database is back");
    // And the checkpoint came with the rows: feeding every tick again changes nothing.
    assert!(
        feed(&mut projector, 3)
            .iter()
            .all(|a| *a == Applied::Duplicate)
    );
    projector.commit().expect("commits");

    let mut db = reader(target);
    let s = db.summary(3).expect("reads").expect("projected");
    assert_eq!((s.state, s.events), ("ended", 4));
    assert_eq!((s.projected_tick, s.projected_seq), (5, 5));
    assert_leaderboard(&mut db, target);
    assert_eq!(db.dead_letters(None, 10, 0).expect("reads").items.len(), 1);
}
#[test]
fn a_schema_of_another_version_is_refused_with_what_to_do() {
    let dbs = Databases::new();
    for target in dbs.targets() {
        let mut store = open(target);
        store.reset().expect("resets");
        store
            .database()
            .execute("UPDATE tf_schema SET version = 99", &[])
            .expect("updates");
        drop(store);
        let e = SqlStore::open(target).expect_err("refused");
        assert!(e.to_string().contains("--rebuild"), "{e}");
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }
}
