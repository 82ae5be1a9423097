//! Determinism: the same setup and the same command stream give the same events and the same
//! hash every tick; a snapshot restored into a fresh sim continues exactly like the original;
//! deltas applied to a snapshot rebuild the public state.

use proptest::prelude::*;
use std::collections::BTreeMap;
use tickforge_protocol::*;
use tickforge_server::sim::{CommandInput, MatchSetup, Sim};

/// Which entity a generated command names: the sender's own (resolved when it is sent), or a
/// raw id (often someone else's, often nobody's).
#[derive(Clone, Debug)]
enum Target {
    Own,
    Raw(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Join,
    Leave,
    Move(Target, i32, i32),
    Fire(Target, i32, i32),
    Drift(Target, i32, i32),
}

fn arb_target() -> impl Strategy<Value = Target> {
    prop_oneof![4 => Just(Target::Own), 1 => (0u32..24).prop_map(Target::Raw)]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Join),
        1 => Just(Op::Leave),
        6 => (arb_target(), -150i32..150, -150i32..150).prop_map(|(t, a, b)| Op::Move(t, a, b)),
        4 => (arb_target(), -5i32..5, -5i32..5).prop_map(|(t, a, b)| Op::Fire(t, a, b)),
        6 => (arb_target(), -1200i32..1200, -1200i32..1200).prop_map(|(t, a, b)| Op::Drift(t, a, b)),
    ]
}

/// Ticks of (player, op) commands; players 1..=6 so that joins, full matches and strangers occur.
fn arb_stream(max_ticks: usize) -> impl Strategy<Value = Vec<Vec<(u32, Op)>>> {
    proptest::collection::vec(
        proptest::collection::vec((1u32..7, arb_op()), 0..6),
        1..max_ticks,
    )
}

fn setup(game: &str, seed: u64) -> MatchSetup {
    let mut game = GameConfig::default_for(game).expect("known game");
    if let GameConfig::Arena(rules) = &mut game {
        // Small and crowded, so hits, kills, pickups and respawns happen within a short stream.
        rules.width_mm = 6_000;
        rules.height_mm = 6_000;
        rules.max_players = 5;
        rules.respawn_delay_ticks = 20;
        rules.pickup_interval_ticks = 15;
        rules.score_limit = 6;
    }
    MatchSetup {
        match_id: MatchId(seed),
        seed,
        tick_rate_hz: 60,
        game,
    }
}

fn resolve(sim: &Sim, player: u32, op: &Op, id: u32) -> CommandInput {
    let player = PlayerId(player);
    let entity = |t: &Target| match t {
        Target::Own => sim.player_entity(player).unwrap_or(EntityId(999)),
        Target::Raw(raw) => EntityId(*raw),
    };
    let command = match op {
        Op::Join => Command::Join {
            name: format!("p{}", player.0),
        },
        Op::Leave => Command::Leave,
        Op::Move(t, a, b) => Command::Move {
            entity: entity(t),
            vx: *a,
            vy: *b,
        },
        Op::Fire(t, a, b) => Command::Fire {
            entity: entity(t),
            dx: *a,
            dy: *b,
        },
        Op::Drift(t, a, b) => Command::Drift {
            entity: entity(t),
            dx: *a,
            dy: *b,
        },
    };
    CommandInput {
        player,
        id: CommandId(id),
        command,
    }
}

/// Everything a run produced, tick by tick.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    events: Vec<Event>,
    rejections: Vec<RejectedCommand>,
    hashes: Vec<(Tick, StateHash)>,
}

fn run(sim: &mut Sim, stream: &[Vec<(u32, Op)>]) -> Trace {
    let mut trace = Trace {
        events: vec![],
        rejections: vec![],
        hashes: vec![],
    };
    let mut next_id = 1;
    for tick in stream {
        let inputs: Vec<_> = tick
            .iter()
            .map(|(p, op)| {
                next_id += 1;
                resolve(sim, *p, op, next_id)
            })
            .collect();
        let report = sim.run_tick(inputs);
        trace.events.extend(report.events);
        trace.rejections.extend(report.rejections);
        trace.hashes.push((report.tick, report.hash));
    }
    trace
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn same_commands_give_same_events_and_hashes(
        game in prop_oneof![Just("arena"), Just("drift")],
        seed in any::<u64>(),
        stream in arb_stream(150),
    ) {
        let setup = setup(game, seed);
        let a = run(&mut tickforge_server::game::builtin().sim(&setup).expect("sim builds"), &stream);
        let b = run(&mut tickforge_server::game::builtin().sim(&setup).expect("sim builds"), &stream);
        prop_assert_eq!(&a, &b, "two fresh sims fed the same commands should agree on everything");
        let seqs: Vec<u64> = a.events.iter().map(|e| e.seq.0).collect();
        let expected: Vec<u64> = (1..=a.events.len() as u64).collect();
        prop_assert_eq!(seqs, expected, "seqs should run 1, 2, 3 … with no gap");
    }

    #[test]
    fn restored_snapshot_continues_like_the_original(
        game in prop_oneof![Just("arena"), Just("drift")],
        seed in any::<u64>(),
        stream in arb_stream(150),
        cut in any::<prop::sample::Index>(),
    ) {
        let setup = setup(game, seed);
        let cut = cut.index(stream.len());
        let (before, after) = stream.split_at(cut);

        let mut original = tickforge_server::game::builtin().sim(&setup).expect("sim builds");
        run(&mut original, before);
        let snapshot = original.snapshot();
        // Through the codec, as the log stores it.
        let bytes = encode(&snapshot).expect("snapshot encodes");
        let snapshot: SimSnapshot = decode_with(&bytes, DecodeLimits::TRUSTED).expect("snapshot decodes");
        let mut restored = tickforge_server::game::builtin().restore(&setup, &snapshot).expect("snapshot restores");
        prop_assert_eq!(restored.hash_report(), original.hash_report(), "a restored sim should hash like the original");

        let a = run(&mut original, after);
        let b = run(&mut restored, after);
        prop_assert_eq!(a, b, "after a restore at tick {}, both sims should produce the same ticks", cut);
    }
}

/// Apply a delta to a client-side mirror (entity → component name → value).
fn apply_delta(mirror: &mut BTreeMap<EntityId, BTreeMap<String, ComponentValue>>, delta: &Delta) {
    for entity in &delta.changed {
        let slot = mirror.entry(entity.id).or_default();
        for value in &entity.components {
            slot.insert(value.name().to_string(), value.clone());
        }
    }
    for id in &delta.removed {
        mirror.remove(id);
    }
}

fn mirror_of(snapshot: &Snapshot) -> BTreeMap<EntityId, BTreeMap<String, ComponentValue>> {
    snapshot
        .entities
        .iter()
        .map(|e| {
            (
                e.id,
                e.components
                    .iter()
                    .map(|c| (c.name().to_string(), c.clone()))
                    .collect(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn deltas_rebuild_the_public_state(
        game in prop_oneof![Just("arena"), Just("drift")],
        seed in any::<u64>(),
        stream in arb_stream(120),
        join_at in any::<prop::sample::Index>(),
    ) {
        let setup = setup(game, seed);
        let mut sim = tickforge_server::game::builtin().sim(&setup).expect("sim builds");
        let join_at = join_at.index(stream.len());
        let (before, after) = stream.split_at(join_at);
        run(&mut sim, before);
        sim.take_delta();
        // A client joins here: it gets a snapshot, then one delta per tick.
        let mut mirror = mirror_of(&sim.client_snapshot());
        for tick in after {
            run(&mut sim, std::slice::from_ref(tick));
            let delta = sim.take_delta();
            prop_assert_eq!(delta.tick, sim.last_tick());
            apply_delta(&mut mirror, &delta);
        }
        prop_assert_eq!(mirror, mirror_of(&sim.client_snapshot()), "snapshot + deltas should equal the server's state");
    }
}

#[test]
fn private_components_stay_out_of_client_views() {
    let mut sim = tickforge_server::game::builtin()
        .sim(&setup("arena", 3))
        .expect("sim builds");
    run(
        &mut sim,
        &[vec![(1, Op::Join)], vec![(1, Op::Fire(Target::Own, 1, 0))]],
    );
    let snapshot = sim.client_snapshot();
    let names: Vec<&str> = snapshot
        .entities
        .iter()
        .flat_map(|e| e.components.iter().map(|c| c.name()))
        .collect();
    assert!(
        names.contains(&"pos") && names.contains(&"projectile"),
        "public components should be sent: {names:?}"
    );
    assert!(
        !names.contains(&"cooldown") && !names.contains(&"pickup_timer"),
        "private ones should not: {names:?}"
    );
    let full = sim.snapshot();
    assert!(
        full.entities.iter().any(|e| e.get("cooldown").is_some()),
        "the full snapshot keeps private state"
    );
}

#[test]
fn a_known_match_keeps_its_hash() {
    // Pins the rules and the hash function: if this changes, old replays no longer verify.
    // Bump the game's rules_version (and keep the old rules for old files) before updating it.
    let spec = tickforge_server::headless::HeadlessMatch {
        setup: setup("arena", 42),
        players: 4,
        ticks: 600,
        bot_seed: 7,
    };
    let run = tickforge_server::headless::play(&spec).expect("match plays");
    let kinds: std::collections::BTreeSet<&str> =
        run.events.iter().map(|e| e.kind.name()).collect();
    for kind in [
        "player_spawned",
        "projectile_fired",
        "player_hit",
        "player_killed",
        "pickup_spawned",
    ] {
        assert!(
            kinds.contains(kind),
            "a 600-tick crowded match should include {kind}: {kinds:?}"
        );
    }
    let (tick, hash) = *run.hashes.last().expect("ticks ran");
    assert_eq!(
        (tick, hash.to_string()),
        (tick, PINNED_ARENA_HASH.to_string()),
        "the arena's tick-{} hash moved",
        tick.0
    );
}

const PINNED_ARENA_HASH: &str = "02fdbd654c7f0a19";

#[test]
fn despawns_leave_no_trace_in_the_world() {
    // Arena despawns projectiles every tick; bevy keeps a record of every removed component
    // until its trackers are cleared. The sim clears them each tick, so the records never hold
    // more than two ticks' worth, however long the match.
    let spec = tickforge_server::headless::HeadlessMatch {
        setup: setup("arena", 5),
        players: 5,
        ticks: 1500,
        bot_seed: 3,
    };
    let mut despawned = 0;
    let sim = tickforge_server::headless::play_with(&spec, |_, report| {
        despawned += report
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::ProjectileExpired { .. } | EventKind::PlayerHit { .. }
                )
            })
            .count();
    })
    .expect("plays");
    let records: usize = sim
        .world()
        .removed_components()
        .iter()
        .map(|(_, messages)| messages.len())
        .sum();
    assert!(
        despawned > 200,
        "the match should despawn many projectiles ({despawned})"
    );
    assert!(
        records < 64,
        "removed-component records should not pile up: {records} after {despawned} despawns"
    );
}
