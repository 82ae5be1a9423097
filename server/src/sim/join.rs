//! The engine's part of joining and leaving, the same for every game: a player joins once,
//! while the match is on and has a free slot, under a sensible display name; a player who has
//! joined may leave. The game hears of both through `Game::joined` and `Game::left`.

use bevy_ecs::world::World;
use tickforge_protocol::{EntityId, EventKind, PlayerId, Rejection, Rule};

use super::Game;
use super::world::{self, NextEntityId, PlayerIndex};

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Decide a `Join`: not in yet, the match still on, a free slot, a sensible name.
pub(super) fn decide_join(
    world: &World,
    game: &dyn Game,
    player: PlayerId,
    name: &str,
) -> Result<Vec<EventKind>, Rejection> {
    if world::player_entity(world, player).is_some() {
        return Err(Rejection::new(
            Rule::AlreadyJoined,
            format!("player {player} is already in this match"),
        ));
    }
    if game.is_over(world) {
        return Err(Rejection::new(Rule::MatchEnded, "the match has ended"));
    }
    let players = world.resource::<PlayerIndex>().0.len();
    let max_players = game.max_players();
    if players >= max_players as usize {
        return Err(Rejection::new(
            Rule::MatchFull,
            format!("all {max_players} player slots are taken"),
        ));
    }
    check_name(name)?;
    Ok(vec![EventKind::PlayerJoined {
        player,
        entity: world.resource::<NextEntityId>().0,
        name: name.to_string(),
    }])
}

/// Decide a `Leave`: the player must be in the match.
pub(super) fn decide_leave(world: &World, player: PlayerId) -> Result<Vec<EventKind>, Rejection> {
    match world::player_entity(world, player) {
        Some(entity) => Ok(vec![EventKind::PlayerLeft { player, entity }]),
        None => Err(Rejection::new(
            Rule::UnknownPlayer,
            format!("player {player} has not joined this match"),
        )),
    }
}

/// A display name: 1 to [`MAX_NAME_CHARS`] characters, none of them a control or a format
/// character.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(|c| c.is_control() || is_format_char(c))
    {
        return Err(Rejection::new(
            Rule::InvalidInput,
            format!(
                "a name must be 1 to {MAX_NAME_CHARS} printable characters, with no control or \
                 format characters (such as bidirectional overrides or zero-width joiners)"
            ),
        ));
    }
    Ok(())
}

/// Apply `PlayerJoined`: spawn the player's entity under its stable id, index it, then let the
/// game add its components.
pub(super) fn joined(
    world: &mut World,
    game: &dyn Game,
    player: PlayerId,
    entity: EntityId,
    name: &str,
) {
    world::spawn_with_id(world, entity).insert(world::PlayerInfo {
        player,
        name: name.to_string(),
    });
    world.resource_mut::<PlayerIndex>().0.insert(player, entity);
    game.joined(world, player, entity);
}

/// Apply `PlayerLeft`: despawn the player's entity, then tell the game.
pub(super) fn left(world: &mut World, game: &dyn Game, player: PlayerId, entity: EntityId) {
    world.resource_mut::<PlayerIndex>().0.remove(&player);
    world::despawn_by_id(world, entity);
    game.left(world, player, entity);
}

/// Unicode's format characters (general category Cf, as of Unicode 15.1): invisible marks
/// that change how text around them is shown, such as U+202E RIGHT-TO-LEFT OVERRIDE. A fixed
/// table rather than a library's, so that which names are accepted never changes under a
/// match with a dependency update.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}
