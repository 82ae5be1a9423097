//! Server-side validation: each illegal command is rejected with the rule it broke, and the
//! world is exactly as if the command had never been sent.

use tickforge_protocol::*;
use tickforge_server::sim::{CommandInput, MatchSetup, Sim};

fn arena() -> MatchSetup {
    MatchSetup {
        match_id: MatchId(1),
        seed: 9,
        tick_rate_hz: 60,
        game: GameConfig::default_for("arena").expect("arena"),
    }
}

fn input(player: u32, id: u32, command: Command) -> CommandInput {
    CommandInput {
        player: PlayerId(player),
        id: CommandId(id),
        command,
    }
}

/// A sim with players 1 and 2 joined and spawned.
fn two_players() -> (Sim, EntityId, EntityId) {
    let mut sim = tickforge_server::game::builtin()
        .sim(&arena())
        .expect("sim builds");
    let report = sim.run_tick(vec![
        input(1, 1, Command::Join { name: "ana".into() }),
        input(2, 1, Command::Join { name: "bo".into() }),
    ]);
    assert!(
        report.rejections.is_empty(),
        "joins should be accepted: {:?}",
        report.rejections
    );
    let a = sim
        .player_entity(PlayerId(1))
        .expect("player 1 has an entity");
    let b = sim
        .player_entity(PlayerId(2))
        .expect("player 2 has an entity");
    (sim, a, b)
}

/// Run `command` in `sim` and the same tick without it in a twin; the command must be rejected
/// for `rule` and both worlds must hash the same afterwards.
fn assert_rejected(mut sim: Sim, mut twin: Sim, command: CommandInput, rule: Rule) {
    let report = sim.run_tick(vec![command.clone()]);
    let untouched = twin.run_tick(vec![]);
    assert_eq!(
        report.rejections.len(),
        1,
        "{:?} should be rejected",
        command.command
    );
    assert_eq!(
        report.rejections[0].rule, rule,
        "{:?} should break {rule}: {}",
        command.command, report.rejections[0].detail
    );
    assert_eq!(
        report.outcomes[0].result.as_ref().map_err(|r| r.rule),
        Err(rule),
        "the sender should be told {rule}"
    );
    assert_eq!(
        report.events, untouched.events,
        "a rejected command should add no events to the tick"
    );
    assert_eq!(
        sim.hash_report(),
        twin.hash_report(),
        "a rejected {:?} should leave the world unchanged",
        command.command
    );
}

fn twins() -> (Sim, Sim, EntityId, EntityId) {
    let (a, ea, eb) = two_players();
    let (b, _, _) = two_players();
    (a, b, ea, eb)
}

#[test]
fn a_forged_entity_is_rejected() {
    let (sim, twin, _, theirs) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            2,
            Command::Move {
                entity: theirs,
                vx: 10,
                vy: 0,
            },
        ),
        Rule::NotYourEntity,
    );
    let (sim, twin, _, theirs) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            2,
            Command::Fire {
                entity: theirs,
                dx: 1,
                dy: 0,
            },
        ),
        Rule::NotYourEntity,
    );
    let (sim, twin, _, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            2,
            Command::Move {
                entity: EntityId(4242),
                vx: 1,
                vy: 0,
            },
        ),
        Rule::UnknownEntity,
    );
}

#[test]
fn a_too_fast_move_is_rejected() {
    let (sim, twin, mine, _) = twins();
    // The limit is 100 mm/tick; (71, 71) is 100.4.
    assert_rejected(
        sim,
        twin,
        input(
            1,
            2,
            Command::Move {
                entity: mine,
                vx: 71,
                vy: 71,
            },
        ),
        Rule::SpeedLimit,
    );
    let (sim, twin, mine, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            2,
            Command::Move {
                entity: mine,
                vx: i32::MIN,
                vy: i32::MAX,
            },
        ),
        Rule::SpeedLimit,
    );
    // Exactly at the limit is fine.
    let (mut sim, _, mine, _) = twins();
    let report = sim.run_tick(vec![input(
        1,
        2,
        Command::Move {
            entity: mine,
            vx: 60,
            vy: 80,
        },
    )]);
    assert!(
        report.rejections.is_empty(),
        "a move at exactly the limit should be accepted"
    );
}

#[test]
fn fire_during_cooldown_is_rejected() {
    let (mut sim, _, mine, _) = twins();
    let report = sim.run_tick(vec![
        input(
            1,
            2,
            Command::Fire {
                entity: mine,
                dx: 1,
                dy: 0,
            },
        ),
        input(
            1,
            3,
            Command::Fire {
                entity: mine,
                dx: 0,
                dy: 1,
            },
        ),
    ]);
    assert_eq!(
        report.rejections.len(),
        1,
        "the second shot in one tick should be refused"
    );
    assert_eq!(report.rejections[0].rule, Rule::Cooldown);
    // Still cooling down on the next tick; compare with a twin that fired once and then idled.
    let (mut twin, _, _, _) = twins();
    twin.run_tick(vec![input(
        1,
        2,
        Command::Fire {
            entity: mine,
            dx: 1,
            dy: 0,
        },
    )]);
    assert_rejected(
        sim,
        twin,
        input(
            1,
            4,
            Command::Fire {
                entity: mine,
                dx: -1,
                dy: 0,
            },
        ),
        Rule::Cooldown,
    );
}

#[test]
fn fire_after_cooldown_is_accepted() {
    let (mut sim, _, mine, _) = twins();
    sim.run_tick(vec![input(
        1,
        2,
        Command::Fire {
            entity: mine,
            dx: 1,
            dy: 0,
        },
    )]);
    for _ in 0..14 {
        sim.run_tick(vec![]);
    }
    let report = sim.run_tick(vec![input(
        1,
        3,
        Command::Fire {
            entity: mine,
            dx: 1,
            dy: 0,
        },
    )]);
    assert!(
        report.rejections.is_empty(),
        "15 ticks later the cooldown should be over: {:?}",
        report.rejections
    );
}

/// Player 2 stands still; player 1 shoots them until they die.
fn kill_player_two(sim: &mut Sim, shooter: EntityId, victim: EntityId) {
    let pos = |sim: &mut Sim, id: EntityId| {
        let snap = sim.client_snapshot();
        match snap
            .entities
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.get("pos"))
        {
            Some(ComponentValue::Position { x, y }) => (*x, *y),
            other => panic!("entity {id} should have a position, got {other:?}"),
        }
    };
    let mut id = 10;
    for _ in 0..600 {
        let (sx, sy) = pos(sim, shooter);
        let (vx, vy) = pos(sim, victim);
        id += 1;
        let report = sim.run_tick(vec![input(
            1,
            id,
            Command::Fire {
                entity: shooter,
                dx: vx - sx,
                dy: vy - sy,
            },
        )]);
        if report
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PlayerKilled { victim: v, .. } if v == victim))
        {
            return;
        }
    }
    panic!("player 2 should have died within 600 ticks of being shot at");
}

#[test]
fn a_dead_player_cannot_act() {
    let (mut sim, a, b) = two_players();
    let (mut twin, _, _) = two_players();
    kill_player_two(&mut sim, a, b);
    kill_player_two(&mut twin, a, b);
    assert_rejected(
        sim,
        twin,
        input(
            2,
            50,
            Command::Move {
                entity: b,
                vx: 1,
                vy: 1,
            },
        ),
        Rule::PlayerDead,
    );
}

#[test]
fn dead_players_respawn_with_full_health_and_the_kill_is_scored() {
    let (mut sim, a, b) = two_players();
    kill_player_two(&mut sim, a, b);
    let mut respawned = false;
    for _ in 0..200 {
        let report = sim.run_tick(vec![]);
        if report
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PlayerSpawned { entity, .. } if entity == b))
        {
            respawned = true;
            break;
        }
    }
    assert!(respawned, "the victim should respawn after the delay");
    let snap = sim.client_snapshot();
    let get = |id: EntityId, name: &str| {
        snap.entities
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.get(name))
            .cloned()
    };
    assert_eq!(
        get(b, "hp"),
        Some(ComponentValue::Health {
            hp: 100,
            respawn_at: None
        })
    );
    assert_eq!(
        get(a, "score"),
        Some(ComponentValue::Score {
            kills: 1,
            deaths: 0
        })
    );
    assert_eq!(
        get(b, "score"),
        Some(ComponentValue::Score {
            kills: 0,
            deaths: 1
        })
    );
}

#[test]
fn players_joining_together_spawn_identically_after_a_restore() {
    // Several players due to (re)spawn in the same tick draw from the RNG in stable-id order.
    let mut sim = tickforge_server::game::builtin()
        .sim(&arena())
        .expect("sim builds");
    sim.run_tick(vec![input(
        9,
        1,
        Command::Join {
            name: "first".into(),
        },
    )]);
    let snapshot = sim.snapshot();
    let mut restored = tickforge_server::game::builtin()
        .restore(&arena(), &snapshot)
        .expect("restores");
    let joins: Vec<_> = (1..=6)
        .map(|p| {
            input(
                p,
                1,
                Command::Join {
                    name: format!("p{p}"),
                },
            )
        })
        .collect();
    let a = sim.run_tick(joins.clone());
    let b = restored.run_tick(joins);
    assert_eq!(
        a, b,
        "six simultaneous spawns should land in the same spots after a restore"
    );
}

#[test]
fn an_unknown_player_is_rejected() {
    let (sim, twin, mine, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            77,
            1,
            Command::Move {
                entity: mine,
                vx: 1,
                vy: 0,
            },
        ),
        Rule::UnknownPlayer,
    );
    let (sim, twin, _, _) = twins();
    assert_rejected(sim, twin, input(77, 1, Command::Leave), Rule::UnknownPlayer);
}

#[test]
fn other_join_and_input_rules() {
    let (sim, twin, _, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            9,
            Command::Join {
                name: "again".into(),
            },
        ),
        Rule::AlreadyJoined,
    );
    let (sim, twin, _, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            3,
            1,
            Command::Join {
                name: String::new(),
            },
        ),
        Rule::InvalidInput,
    );
    let (sim, twin, mine, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            9,
            Command::Fire {
                entity: mine,
                dx: 0,
                dy: 0,
            },
        ),
        Rule::InvalidInput,
    );
    let (sim, twin, mine, _) = twins();
    assert_rejected(
        sim,
        twin,
        input(
            1,
            9,
            Command::Drift {
                entity: mine,
                dx: 1,
                dy: 0,
            },
        ),
        Rule::WrongGame,
    );

    let mut full = tickforge_server::game::builtin()
        .sim(&arena())
        .expect("sim builds");
    let joins: Vec<_> = (1..=16)
        .map(|p| {
            input(
                p,
                1,
                Command::Join {
                    name: format!("p{p}"),
                },
            )
        })
        .collect();
    assert!(full.run_tick(joins).rejections.is_empty());
    let mut twin = tickforge_server::game::builtin()
        .sim(&arena())
        .expect("sim builds");
    twin.run_tick(
        (1..=16)
            .map(|p| {
                input(
                    p,
                    1,
                    Command::Join {
                        name: format!("p{p}"),
                    },
                )
            })
            .collect::<Vec<_>>(),
    );
    assert_rejected(
        full,
        twin,
        input(
            17,
            1,
            Command::Join {
                name: "late".into(),
            },
        ),
        Rule::MatchFull,
    );
}

#[test]
fn drift_validates_its_own_commands() {
    let setup = MatchSetup {
        match_id: MatchId(2),
        seed: 1,
        tick_rate_hz: 60,
        game: GameConfig::default_for("drift").expect("drift"),
    };
    let build = || {
        let mut sim = tickforge_server::game::builtin()
            .sim(&setup)
            .expect("sim builds");
        sim.run_tick(vec![
            input(1, 1, Command::Join { name: "a".into() }),
            input(2, 1, Command::Join { name: "b".into() }),
        ]);
        sim
    };
    let theirs = build().player_entity(PlayerId(2)).expect("joined");
    let mine = build().player_entity(PlayerId(1)).expect("joined");
    assert_rejected(
        build(),
        build(),
        input(
            1,
            2,
            Command::Drift {
                entity: theirs,
                dx: 1,
                dy: 0,
            },
        ),
        Rule::NotYourEntity,
    );
    assert_rejected(
        build(),
        build(),
        input(
            1,
            2,
            Command::Drift {
                entity: mine,
                dx: 1001,
                dy: 0,
            },
        ),
        Rule::SpeedLimit,
    );
    assert_rejected(
        build(),
        build(),
        input(
            1,
            2,
            Command::Move {
                entity: mine,
                vx: 1,
                vy: 0,
            },
        ),
        Rule::WrongGame,
    );
}

#[test]
fn storage_order_never_decides_an_outcome() {
    // Three players, all due to respawn on the next tick, restored twice: once from the
    // snapshot as taken and once with its entity list reversed, which lays bevy's storage out
    // in the opposite order. Every system must visit entities in stable-id order, so both
    // must draw the same spawn spots from the RNG.
    let mut sim = tickforge_server::game::builtin()
        .sim(&arena())
        .expect("sim builds");
    sim.run_tick(
        (1..=3)
            .map(|p| {
                input(
                    p,
                    1,
                    Command::Join {
                        name: format!("p{p}"),
                    },
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut snapshot = sim.snapshot();
    let due = snapshot.tick.next();
    for entity in &mut snapshot.entities {
        for value in &mut entity.components {
            if let ComponentValue::Health { hp, respawn_at } = value {
                *hp = 0;
                *respawn_at = Some(due);
            }
        }
    }
    let mut reversed = snapshot.clone();
    reversed.entities.reverse();
    let mut a = tickforge_server::game::builtin()
        .restore(&arena(), &snapshot)
        .expect("restores");
    let mut b = tickforge_server::game::builtin()
        .restore(&arena(), &reversed)
        .expect("restores");
    let (ra, rb) = (a.run_tick(vec![]), b.run_tick(vec![]));
    let spawns = ra
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PlayerSpawned { .. }))
        .count();
    assert_eq!(
        spawns, 3,
        "all three players should respawn on the tick they were due"
    );
    assert_eq!(
        ra, rb,
        "the order entities are stored in must not change who spawns where"
    );
}
