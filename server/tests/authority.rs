//! Authority properties: random streams of commands with forged entity ids, strangers' commands,
//! teleports (huge velocities and steps) and wrong-game commands never let a player move
//! anything but their own entity, never exceed a speed or step limit, never put an entity
//! outside the arena, never leave health out of range; and forged, mutated or expired tokens
//! never verify.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tickforge_protocol::*;
use tickforge_server::auth::{Authority, Role};
use tickforge_server::sim::{CommandInput, MatchSetup};

#[derive(Clone, Debug)]
enum Act {
    Join,
    Leave,
    Move { target: u32, vx: i32, vy: i32 },
    Fire { target: u32, dx: i32, dy: i32 },
    Drift { target: u32, dx: i32, dy: i32 },
}

fn big() -> impl Strategy<Value = i32> {
    prop_oneof![3 => -150i32..150, 1 => any::<i32>()]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        1 => Just(Act::Join),
        1 => Just(Act::Leave),
        6 => (0u32..12, big(), big()).prop_map(|(target, vx, vy)| Act::Move { target, vx, vy }),
        3 => (0u32..12, big(), big()).prop_map(|(target, dx, dy)| Act::Fire { target, dx, dy }),
        3 => (0u32..12, big(), big()).prop_map(|(target, dx, dy)| Act::Drift { target, dx, dy }),
    ]
}

fn setup(game: &str) -> MatchSetup {
    let mut game = GameConfig::default_for(game).expect("known");
    if let GameConfig::Arena(c) = &mut game {
        c.width_mm = 6000;
        c.height_mm = 6000;
    }
    MatchSetup {
        match_id: MatchId(1),
        seed: 3,
        tick_rate_hz: 60,
        game,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_command_moves_what_its_sender_does_not_own(
        game in prop_oneof![Just("arena"), Just("drift")],
        stream in proptest::collection::vec(proptest::collection::vec((1u32..6, act()), 0..8), 1..120),
    ) {
        let setup = setup(game);
        let mut sim = tickforge_server::game::builtin().sim(&setup).expect("builds");
        let mut id = 0;
        for tick in &stream {
            let mut owners: BTreeMap<PlayerId, EntityId> = (1..6).filter_map(|p| sim.player_entity(PlayerId(p)).map(|e| (PlayerId(p), e))).collect();
            let inputs: Vec<CommandInput> = tick.iter().map(|(p, a)| {
                id += 1;
                let command = match a.clone() {
                    Act::Join => Command::Join { name: format!("p{p}") },
                    Act::Leave => Command::Leave,
                    Act::Move { target, vx, vy } => Command::Move { entity: EntityId(target), vx, vy },
                    Act::Fire { target, dx, dy } => Command::Fire { entity: EntityId(target), dx, dy },
                    Act::Drift { target, dx, dy } => Command::Drift { entity: EntityId(target), dx, dy },
                };
                CommandInput { player: PlayerId(*p), id: CommandId(id), command }
            }).collect();
            let report = sim.run_tick(inputs);
            for e in &report.events {
                let Cause::Command { player, .. } = e.cause else { continue };
                let own = owners.get(&player).copied();
                let touched = match &e.kind {
                    EventKind::PlayerSteered { entity, vx, vy } => {
                        prop_assert!(i64::from(*vx).pow(2) + i64::from(*vy).pow(2) <= 100 * 100, "speed limit held: {:?}", e.kind);
                        Some(*entity)
                    }
                    EventKind::ProjectileFired { shooter, .. } => Some(*shooter),
                    EventKind::PlayerDrifted { entity, dx, dy, .. } => {
                        prop_assert!(dx.abs() <= 1000 && dy.abs() <= 1000, "step limit held: {:?}", e.kind);
                        Some(*entity)
                    }
// Ownership changes as the tick's events happen: a player may join and act in
                    // the same tick.
                    EventKind::PlayerJoined { player: p, entity, .. } => {
                        prop_assert_eq!(*p, player, "only the sender joins");
                        owners.insert(player, *entity);
                        None
                    }
                    EventKind::PlayerLeft { player: p, .. } => {
                        prop_assert_eq!(*p, player, "only the sender leaves");
                        owners.remove(&player);
                        None
                    }
                    other => {
                        prop_assert!(false, "a command caused a rules-only event: {:?}", other);
                        None
                    }
                };
                if let Some(entity) = touched {
                    prop_assert_eq!(Some(entity), own, "player {} acted on entity {} it does not own", player, entity);
                }
            }
            let world = sim.client_snapshot();
            for entity in &world.entities {
                for c in &entity.components {
                    match c {
                        ComponentValue::Position { x, y } if entity.get("player").is_some() => {
                            let (w, h) = if game == "arena" { (6000, 6000) } else { (100_000, 100_000) };
                            prop_assert!(*x >= 0 && *y >= 0 && *x <= w && *y <= h, "entity {} left the arena: ({x}, {y})", entity.id);
                        }
                        ComponentValue::Health { hp, .. } => prop_assert!((0..=100).contains(hp), "hp {hp} out of range"),
                        _ => {}
                    }
                }
            }
        }
    }

    #[test]
    fn forged_mutated_and_expired_tokens_never_verify(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        role in prop_oneof![Just(Role::Player), Just(Role::Spectator)],
        age in 0u64..10_000,
    ) {
        let authority = Authority::new(Some("a long enough secret"), Duration::from_secs(3600));
        let (token, claims) = authority.issue(role, "someone", 1_000_000);
        let verified = authority.verify(&token, 1_000_000 + 10);
        prop_assert_eq!(verified, Ok(claims));
        // Any change to the token's bytes breaks it.
        let mut bytes = token.clone().into_bytes();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(mutated) = String::from_utf8(bytes) && mutated != token {
            prop_assert!(authority.verify(&mutated, 1_000_000 + 10).is_err(), "a mutated token verified: {mutated}");
        }
        // Another key's tokens never verify; an expired token never does.
        let other = Authority::new(Some("another long secret!"), Duration::from_secs(3600));
        prop_assert!(authority.verify(&other.issue(role, "someone", 1_000_000).0, 1_000_010).is_err());
        prop_assert!(authority.verify(&token, 1_000_000 + 3600 + age).is_err(), "expired tokens are refused");
    }
}
