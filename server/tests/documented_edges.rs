//! The edges a client author would otherwise have to guess, as docs/PROTOCOL.md §11 states
//! them, checked on the reference games' simulations: a move accepted in tick T moves the
//! player in T; a fire is allowed from `ready_at` on and not a tick before; a projectile
//! appears in its firing tick's delta at the shooter's position and is removed in the tick
//! that reaches `expires_at`; drift's start positions and its clamped plane.

use tickforge_protocol::{
    ArenaConfig, Command, CommandId, ComponentValue, Delta, DriftConfig, EntityId, GameConfig,
    MatchId, PlayerId, Rule, Tick,
};
use tickforge_server::sim::{CommandInput, MatchSetup, Sim, TickReport};

fn sim(game: GameConfig) -> Sim {
    let setup = MatchSetup {
        match_id: MatchId(1),
        seed: 3,
        tick_rate_hz: 60,
        game,
    };
    tickforge_server::game::builtin()
        .sim(&setup)
        .expect("the game builds")
}

fn input(player: u32, id: u32, command: Command) -> CommandInput {
    CommandInput {
        player: PlayerId(player),
        id: CommandId(id),
        command,
    }
}

fn join(sim: &mut Sim, players: u32) {
    let joins = (1..=players)
        .map(|p| {
            input(
                p,
                0,
                Command::Join {
                    name: format!("p{p}"),
                },
            )
        })
        .collect::<Vec<_>>();
    sim.run_tick(joins);
    sim.take_delta();
}

fn value(delta: &Delta, entity: EntityId, name: &str) -> Option<ComponentValue> {
    delta
        .changed
        .iter()
        .find(|e| e.id == entity)?
        .get(name)
        .cloned()
}

fn pos(sim: &mut Sim, entity: EntityId) -> (i32, i32) {
    let snapshot = sim.client_snapshot();
    let state = snapshot
        .entities
        .iter()
        .find(|e| e.id == entity)
        .expect("the entity exists");
    match state.get("pos") {
        Some(ComponentValue::Position { x, y }) => (*x, *y),
        other => panic!("no position: {other:?}"),
    }
}

fn tick(sim: &mut Sim, inputs: Vec<CommandInput>) -> (TickReport, Delta) {
    let report = sim.run_tick(inputs);
    (report, sim.take_delta())
}

#[test]
fn a_move_accepted_in_a_tick_moves_the_player_in_that_tick() {
    let mut sim = sim(GameConfig::Arena(ArenaConfig::default()));
    join(&mut sim, 1);
    let me = sim.player_entity(PlayerId(1)).expect("joined");
    let (x0, y0) = pos(&mut sim, me);
    let (report, delta) = tick(
        &mut sim,
        vec![input(
            1,
            1,
            Command::Move {
                entity: me,
                vx: 60,
                vy: -30,
            },
        )],
    );
    assert!(report.outcomes.iter().all(|o| o.result.is_ok()));
    assert_eq!(
        value(&delta, me, "vel"),
        Some(ComponentValue::Velocity { vx: 60, vy: -30 })
    );
    assert_eq!(
        value(&delta, me, "pos"),
        Some(ComponentValue::Position {
            x: x0 + 60,
            y: y0 - 30
        }),
        "the tick's delta already holds the moved position"
    );
}

#[test]
fn fire_is_allowed_from_ready_at_and_its_projectile_lives_until_expires_at() {
    let rules = ArenaConfig {
        max_players: 2,
        fire_cooldown_ticks: 5,
        projectile_ttl_ticks: 4,
        projectile_speed_mm_per_tick: 10,
        ..ArenaConfig::default()
    };
    let mut sim = sim(GameConfig::Arena(rules));
    join(&mut sim, 1);
    let me = sim.player_entity(PlayerId(1)).expect("joined");
    let at = pos(&mut sim, me);
    let fire = |id| {
        input(
            1,
            id,
            Command::Fire {
                entity: me,
                dx: 1,
                dy: 0,
            },
        )
    };

    // Tick T: the shot, and its projectile in T's delta at the shooter's position.
    let (report, delta) = tick(&mut sim, vec![fire(1)]);
    let fired_at = report.tick;
    let projectile = delta
        .changed
        .iter()
        .find(|e| e.get("projectile").is_some())
        .expect("the projectile appears in its firing tick's delta");
    assert_eq!(
        projectile.get("projectile"),
        Some(&ComponentValue::Projectile {
            shooter: me,
            fired_at,
            expires_at: Tick(fired_at.0 + 4),
        })
    );
    assert_eq!(
        projectile.get("pos"),
        Some(&ComponentValue::Position { x: at.0, y: at.1 })
    );
    let shot = projectile.id;

    // Ticks T+1 … T+4: fire is cooling down until T+5; the projectile goes at T+4.
    for n in 1..=4u64 {
        let (report, delta) = tick(&mut sim, vec![fire(1 + n as u32)]);
        assert_eq!(report.tick, Tick(fired_at.0 + n));
        assert_eq!(
            report.rejections.first().map(|r| r.rule),
            Some(Rule::Cooldown),
            "a fire at T+{n}, before ready_at = T+5, is refused"
        );
        assert_eq!(
            delta.removed.contains(&shot),
            n == 4,
            "the projectile is removed in the tick that reaches expires_at (T+{n})"
        );
    }
    // T+5 = ready_at: allowed.
    let (report, _) = tick(&mut sim, vec![fire(9)]);
    assert!(
        report.rejections.is_empty(),
        "a fire at ready_at is allowed: {:?}",
        report.rejections
    );
}

#[test]
fn drift_players_start_where_the_document_says_and_stay_on_the_plane() {
    let rules = DriftConfig {
        max_players: 3,
        width_mm: 20_000,
        height_mm: 30_000,
        max_step_mm: 1_000,
    };
    let mut sim = sim(GameConfig::Drift(rules));
    join(&mut sim, 3);
    for p in 1..=3 {
        let e = sim.player_entity(PlayerId(p)).expect("joined");
        assert_eq!(
            pos(&mut sim, e),
            (
                ((u64::from(e.0) * 7_919) % 20_000) as i32,
                ((u64::from(e.0) * 104_729) % 30_000) as i32
            ),
            "entity {} starts at (e × 7919 mod width, e × 104729 mod height)",
            e.0
        );
    }
    // Walk one player into the corner: both coordinates clamp, at the plane's ends included.
    let e = sim.player_entity(PlayerId(1)).expect("joined");
    for id in 1..=40 {
        tick(
            &mut sim,
            vec![input(
                1,
                id,
                Command::Drift {
                    entity: e,
                    dx: -1_000,
                    dy: 1_000,
                },
            )],
        );
    }
    assert_eq!(pos(&mut sim, e), (0, 30_000));
}
