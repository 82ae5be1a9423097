//! Tag's rules in the engine alone (no server): tagging, tag-backs, leaving, the end of the
//! round; determinism (two worlds fed the same commands agree, a restored world continues the
//! same); and a recorded match verifies with the stock replay tools.

use tickforge_example_tag::{NAME, Run, Runner, Spot, TagSettings, games};
use tickforge_protocol::{
    Command, CommandId, EntityId, EventKind, GameConfig, GameValue, MatchId, PlayerId, Rule,
};
use tickforge_server::sim::{CommandInput, MatchSetup, Sim};

fn setup(settings: TagSettings) -> MatchSetup {
    MatchSetup {
        match_id: MatchId(1),
        seed: 1,
        tick_rate_hz: 60,
        game: GameConfig::Game(Box::new(
            GameValue::new(NAME, &settings).expect("settings encode"),
        )),
    }
}

fn join(player: u32) -> CommandInput {
    CommandInput {
        player: PlayerId(player),
        id: CommandId(0),
        command: Command::Join {
            name: format!("p{player}"),
        },
    }
}

fn run(player: u32, id: u32, entity: EntityId, dx: i32, dy: i32) -> CommandInput {
    CommandInput {
        player: PlayerId(player),
        id: CommandId(id),
        command: Run { entity, dx, dy }.command(),
    }
}

fn component<C: tickforge_server::sim::SimComponent>(sim: &Sim, entity: EntityId) -> C {
    let world = sim.world();
    let e = tickforge_server::sim::world::lookup(world, entity).expect("the entity exists");
    world.get::<C>(e).cloned().expect("the component exists")
}

/// The kinds of the game's own events in `events`.
fn kinds(events: &[tickforge_protocol::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Game(g) => Some(g.kind.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn it_tags_the_nearest_runner_who_cannot_tag_back_at_once() {
    let settings = TagSettings {
        width_mm: 5_000,
        height_mm: 5_000,
        tag_back_ticks: 30,
        ..TagSettings::default()
    };
    let mut sim = games().sim(&setup(settings)).expect("tag builds");
    sim.run_tick(vec![join(1), join(2)]);
    let (a, b) = (
        sim.player_entity(PlayerId(1)).expect("joined"),
        sim.player_entity(PlayerId(2)).expect("joined"),
    );
    assert!(component::<Runner>(&sim, a).it, "the first runner in is it");
    assert!(!component::<Runner>(&sim, b).it);
    // Walk a towards b until b is tagged.
    let mut tagged_at = None;
    for n in 1..200u32 {
        let (pa, pb) = (component::<Spot>(&sim, a), component::<Spot>(&sim, b));
        let step = |from: i32, to: i32| (to - from).clamp(-300, 300);
        let report = sim.run_tick(vec![run(1, n, a, step(pa.x, pb.x), step(pa.y, pb.y))]);
        if kinds(&report.events).contains(&"runner_tagged".to_string()) {
            tagged_at = Some(report.tick);
            break;
        }
    }
    let tagged_at = tagged_at.expect("a walks up to b and tags them");
    assert!(component::<Runner>(&sim, b).it, "b is it now");
    let tagger = component::<Runner>(&sim, a);
    assert!(!tagger.it);
    assert_eq!(tagger.tags, 1);
    // b is right there but a is safe for 30 ticks, then tagged back.
    let mut back = None;
    for n in 0..60u32 {
        let report = sim.run_tick(vec![run(2, 1000 + n, b, 0, 0)]);
        if kinds(&report.events).contains(&"runner_tagged".to_string()) {
            back = Some(report.tick);
            break;
        }
    }
    let back = back.expect("a is tagged back once safe");
    assert!(
        back.0 >= tagged_at.0 + 30,
        "no tag-back within 30 ticks: tagged at {tagged_at}, back at {back}"
    );
}

#[test]
fn commands_are_checked_and_the_engine_handles_joins() {
    let mut sim = games()
        .sim(&setup(TagSettings {
            max_players: 2,
            ..TagSettings::default()
        }))
        .expect("tag builds");
    let report = sim.run_tick(vec![join(1), join(2), join(3)]);
    assert_eq!(report.rejections[0].rule, Rule::MatchFull, "two slots");
    let a = sim.player_entity(PlayerId(1)).expect("joined");
    let b = sim.player_entity(PlayerId(2)).expect("joined");
    let report = sim.run_tick(vec![
        run(1, 1, b, 10, 0),
        run(1, 2, a, 10_000, 0),
        CommandInput {
            player: PlayerId(1),
            id: CommandId(3),
            command: Command::Move {
                entity: a,
                vx: 1,
                vy: 1,
            },
        },
    ]);
    let rules: Vec<Rule> = report.rejections.iter().map(|r| r.rule).collect();
    assert_eq!(
        rules,
        vec![Rule::NotYourEntity, Rule::SpeedLimit, Rule::WrongGame],
        "someone else's runner, too far, another game's command"
    );
    // When it leaves, the lowest remaining id is it.
    let report = sim.run_tick(vec![CommandInput {
        player: PlayerId(1),
        id: CommandId(4),
        command: Command::Leave,
    }]);
    assert!(report.rejections.is_empty());
    assert!(component::<Runner>(&sim, b).it, "b is it once a has left");
}

#[test]
fn the_round_ends_with_the_most_tags_winning() {
    let mut sim = games()
        .sim(&setup(TagSettings {
            round_ticks: 20,
            ..TagSettings::default()
        }))
        .expect("tag builds");
    sim.run_tick(vec![join(1), join(2)]);
    let mut ended = None;
    for _ in 0..30 {
        let report = sim.run_tick(Vec::new());
        if let Some(e) = report
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::MatchEnded { .. }))
        {
            ended = Some(e.clone());
            break;
        }
    }
    let ended = ended.expect("the round ends at tick 20");
    assert_eq!(ended.tick.0, 20);
    // Nobody tagged; player 2 was never it, so spent fewer ticks as it.
    assert!(
        matches!(
            ended.kind,
            EventKind::MatchEnded {
                winner: Some(PlayerId(2)),
                ..
            }
        ),
        "{:?}",
        ended.kind
    );
    assert!(sim.is_over());
    let report = sim.run_tick(vec![join(3)]);
    assert_eq!(report.rejections[0].rule, Rule::MatchEnded);
}

/// Tick `n` of a scripted match: four runners join, then each chases the next one's spot.
fn chase(sim: &Sim, n: u32) -> Vec<CommandInput> {
    if n == 0 {
        return (1..=4).map(join).collect();
    }
    (1..=4u32)
        .map(|p| {
            let me = sim.player_entity(PlayerId(p)).expect("joined");
            let other = sim.player_entity(PlayerId(p % 4 + 1)).expect("joined");
            let (a, b) = (component::<Spot>(sim, me), component::<Spot>(sim, other));
            let step = |from: i32, to: i32| (to - from).clamp(-250, 250);
            run(p, n, me, step(a.x, b.x), step(a.y, b.y))
        })
        .collect()
}

fn play(sim: &mut Sim, ticks: u32) -> Vec<tickforge_server::TickReport> {
    (0..ticks)
        .map(|n| {
            let inputs = chase(sim, n);
            sim.run_tick(inputs)
        })
        .collect()
}

#[test]
fn the_same_commands_give_the_same_match_and_a_restored_one_continues_it() {
    let s = setup(TagSettings::default());
    let (mut a, mut b) = (
        games().sim(&s).expect("builds"),
        games().sim(&s).expect("builds"),
    );
    let (ra, rb) = (play(&mut a, 300), play(&mut b, 300));
    assert_eq!(
        ra, rb,
        "two worlds fed the same commands agree, tick by tick"
    );
    assert!(
        ra.iter()
            .any(|r| kinds(&r.events).contains(&"runner_tagged".to_string())),
        "the chase tags someone"
    );
    let snapshot = a.snapshot();
    let mut restored = games().restore(&s, &snapshot).expect("restores");
    assert_eq!(
        restored.state_hash(),
        a.state_hash(),
        "the restored world hashes the same"
    );
    assert_eq!(restored.snapshot(), snapshot);
}

#[test]
fn a_recorded_match_verifies_with_the_stock_replay_tools() {
    use tickforge_server::log::{FsyncPolicy, LogConfig, LogWriter, TickBatch};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tag.tfr");
    let s = setup(TagSettings::default());
    let mut sim = games().sim(&s).expect("builds");
    let header = tickforge_server::headless::header_for(&sim, 0, 100);
    let writer = LogWriter::create(
        &path,
        &header,
        LogConfig {
            fsync: FsyncPolicy::Never,
            snapshot_every_ticks: 100,
            ..LogConfig::default()
        },
    )
    .expect("creates");
    for n in 0..250 {
        let inputs = chase(&sim, n);
        let report = sim.run_tick(inputs);
        let snapshot = writer.snapshot_due(report.tick).then(|| sim.snapshot());
        writer
            .append_blocking(TickBatch::from_report(report, snapshot))
            .expect("appends");
    }
    writer.close().expect("closes");
    let verified = tickforge_replay::verify_with(&path, &games(), |_, _| {})
        .expect("readable")
        .expect("every tick's hash matches");
    assert_eq!(verified.ticks, 250);
    assert_eq!(verified.snapshots_checked, 2);
    let world =
        tickforge_replay::seek_with(&path, tickforge_protocol::Tick(150), &games()).expect("seeks");
    assert_eq!(world.tick.0, 150);
    // Without tag in its catalogue, a tool says which game it lacks.
    let err = tickforge_replay::verify(&path, |_, _| {}).expect_err("arena and drift only");
    assert!(err.to_string().contains("tag"), "{err}");
}
