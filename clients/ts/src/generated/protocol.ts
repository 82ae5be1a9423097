// Generated from the Rust protocol crate (tickforge-protocol, src/schema.rs); do not edit.
// Regenerate with: TICKFORGE_REWRITE=1 cargo test -p tickforge-protocol --test schema
// A test fails when this file differs from what the Rust types produce.

/** The protocol version this file describes. */
export const PROTOCOL_VERSION = 2;

/** A value of a game the protocol does not name: `{kind: value}`, or the kind alone. */
export type GameValue = string | { [kind: string]: unknown };

/** One match, unique within a server's data directory. */
export type MatchId = number;

/** One player within a match. */
export type PlayerId = number;

/** A stable entity id; 0 is the match entity. */
export type EntityId = number;

/** An event's position in its match's stream: 1, 2, 3, … */
export type Seq = number;

/** One fixed simulation step; tick 0 is the start. */
export type Tick = number;

/** Chosen by the client, increasing; 0 is reserved. */
export type CommandId = number;

/** The state hash after a tick: a u64, so a bigint here (a string of digits in JSON). */
export type StateHash = bigint;

/** The rule a rejected command broke. */
export type Rule =
  | "unknown_player"
  | "unknown_entity"
  | "not_your_entity"
  | "speed_limit"
  | "cooldown"
  | "player_dead"
  | "wrong_game"
  | "match_ended"
  | "already_joined"
  | "match_full"
  | "invalid_input"
  | "match_busy"
  | "rate_limited";

/** Why a match ended. */
export type EndReason =
  | "score_limit"
  | "time_limit";

/** What a player asks the match to do; other games' commands are game values. */
export type Command =
  | { join: CommandJoin }
  | "leave"
  | { move: CommandMove }
  | { fire: CommandFire }
  | { drift: CommandDrift }
  | GameValue;

/** `join` of Command. */
export interface CommandJoin {
  name: string;
}

/** `move` of Command. */
export interface CommandMove {
  entity: EntityId;
  vx: number;
  vy: number;
}

/** `fire` of Command. */
export interface CommandFire {
  entity: EntityId;
  dx: number;
  dy: number;
}

/** `drift` of Command. */
export interface CommandDrift {
  entity: EntityId;
  dx: number;
  dy: number;
}

/** Arena rules: lengths in mm, speeds in mm per tick, durations in ticks. */
export interface ArenaConfig {
  max_players: number;
  width_mm: number;
  height_mm: number;
  player_radius_mm: number;
  max_speed_mm_per_tick: number;
  projectile_speed_mm_per_tick: number;
  projectile_radius_mm: number;
  projectile_ttl_ticks: number;
  fire_cooldown_ticks: number;
  projectile_damage: number;
  max_health: number;
  respawn_delay_ticks: number;
  pickup_interval_ticks: number;
  max_pickups: number;
  pickup_heal: number;
  pickup_radius_mm: number;
  score_limit: number;
  time_limit_ticks: number;
}

/** Drift rules: players nudge themselves around a bounded plane. */
export interface DriftConfig {
  max_players: number;
  width_mm: number;
  height_mm: number;
  max_step_mm: number;
}

/** A match's rule settings, under the game's name. */
export type GameConfig =
  | { arena: ArenaConfig }
  | { drift: DriftConfig }
  | GameValue;

/** The value of one component of one entity; other games' components are game values. */
export type ComponentValue =
  | { player: ComponentValuePlayer }
  | { pos: ComponentValuePos }
  | { vel: ComponentValueVel }
  | { hp: ComponentValueHp }
  | { score: ComponentValueScore }
  | { cooldown: ComponentValueCooldown }
  | { projectile: ComponentValueProjectile }
  | { pickup: ComponentValuePickup }
  | { input: ComponentValueInput }
  | { match: ComponentValueMatch }
  | { pickup_timer: ComponentValuePickupTimer }
  | GameValue;

/** `player` of ComponentValue. */
export interface ComponentValuePlayer {
  player: PlayerId;
  name: string;
}

/** `pos` of ComponentValue. */
export interface ComponentValuePos {
  x: number;
  y: number;
}

/** `vel` of ComponentValue. */
export interface ComponentValueVel {
  vx: number;
  vy: number;
}

/** `hp` of ComponentValue. */
export interface ComponentValueHp {
  hp: number;
  respawn_at: Tick | null;
}

/** `score` of ComponentValue. */
export interface ComponentValueScore {
  kills: number;
  deaths: number;
}

/** `cooldown` of ComponentValue. */
export interface ComponentValueCooldown {
  ready_at: Tick;
}

/** `projectile` of ComponentValue. */
export interface ComponentValueProjectile {
  shooter: EntityId;
  fired_at: Tick;
  expires_at: Tick;
}

/** `pickup` of ComponentValue. */
export interface ComponentValuePickup {
  heal: number;
}

/** `input` of ComponentValue. */
export interface ComponentValueInput {
  input: CommandId;
}

/** `match` of ComponentValue. */
export interface ComponentValueMatch {
  ends_at: Tick;
  ended: EndReason | null;
  winner: PlayerId | null;
}

/** `pickup_timer` of ComponentValue. */
export interface ComponentValuePickupTimer {
  next_at: Tick;
}

/** One entity and some (in a delta) or all (in a snapshot) of its components. */
export interface EntityState {
  id: EntityId;
  components: ComponentValue[];
}

/** Every public component of every entity at the end of `tick`, sorted by id. */
export interface Snapshot {
  tick: Tick;
  seq: Seq;
  entities: EntityState[];
}

/** Where an event came from. */
export type Cause =
  | { command: CauseCommand }
  | "rules";

/** `command` of Cause. */
export interface CauseCommand {
  player: PlayerId;
  id: CommandId;
}

/** What happened; other games' events are game values. */
export type EventKind =
  | { player_joined: EventKindPlayerJoined }
  | { player_left: EventKindPlayerLeft }
  | { player_spawned: EventKindPlayerSpawned }
  | { player_steered: EventKindPlayerSteered }
  | { projectile_fired: EventKindProjectileFired }
  | { player_hit: EventKindPlayerHit }
  | { player_killed: EventKindPlayerKilled }
  | { projectile_expired: EventKindProjectileExpired }
  | { pickup_spawned: EventKindPickupSpawned }
  | { pickup_collected: EventKindPickupCollected }
  | { player_drifted: EventKindPlayerDrifted }
  | { match_ended: EventKindMatchEnded }
  | GameValue;

/** `player_joined` of EventKind. */
export interface EventKindPlayerJoined {
  player: PlayerId;
  entity: EntityId;
  name: string;
}

/** `player_left` of EventKind. */
export interface EventKindPlayerLeft {
  player: PlayerId;
  entity: EntityId;
}

/** `player_spawned` of EventKind. */
export interface EventKindPlayerSpawned {
  entity: EntityId;
  x: number;
  y: number;
}

/** `player_steered` of EventKind. */
export interface EventKindPlayerSteered {
  entity: EntityId;
  vx: number;
  vy: number;
}

/** `projectile_fired` of EventKind. */
export interface EventKindProjectileFired {
  projectile: EntityId;
  shooter: EntityId;
  x: number;
  y: number;
  vx: number;
  vy: number;
}

/** `player_hit` of EventKind. */
export interface EventKindPlayerHit {
  target: EntityId;
  projectile: EntityId;
  damage: number;
  hp_left: number;
}

/** `player_killed` of EventKind. */
export interface EventKindPlayerKilled {
  victim: EntityId;
  killer: EntityId | null;
  respawn_at: Tick;
}

/** `projectile_expired` of EventKind. */
export interface EventKindProjectileExpired {
  projectile: EntityId;
}

/** `pickup_spawned` of EventKind. */
export interface EventKindPickupSpawned {
  pickup: EntityId;
  x: number;
  y: number;
  heal: number;
}

/** `pickup_collected` of EventKind. */
export interface EventKindPickupCollected {
  pickup: EntityId;
  entity: EntityId;
  hp_after: number;
}

/** `player_drifted` of EventKind. */
export interface EventKindPlayerDrifted {
  entity: EntityId;
  dx: number;
  dy: number;
  input: CommandId;
}

/** `match_ended` of EventKind. */
export interface EventKindMatchEnded {
  reason: EndReason;
  winner: PlayerId | null;
}

/** One sequenced fact of one match. */
export interface Event {
  match_id: MatchId;
  seq: Seq;
  tick: Tick;
  v: number;
  cause: Cause;
  kind: EventKind;
}

/** A refused command, as the replay's audit trail keeps it (GET /replays/{id}/rejections). */
export interface RejectedCommand {
  tick: Tick;
  player: PlayerId;
  id: CommandId;
  command: Command;
  rule: Rule;
  detail: string;
}

/** A command refused in a tick: one of a tick frame's rejections (MessagePack). */
export interface Rejected {
  id: CommandId;
  rule: Rule;
  detail: string;
}

/** What a client sends on /play. */
export type ClientMessage =
  | { hello: ClientMessageHello }
  | { join: ClientMessageJoin }
  | { command: ClientMessageCommand }
  | { resume: ClientMessageResume }
  | { ping: ClientMessagePing }
  | "leave";

/** `hello` of ClientMessage. */
export interface ClientMessageHello {
  protocol: number;
  client: string;
}

/** `join` of ClientMessage. */
export interface ClientMessageJoin {
  match_id: MatchId | null;
  name: string;
}

/** `command` of ClientMessage. */
export interface ClientMessageCommand {
  id: CommandId;
  command: Command;
}

/** `resume` of ClientMessage. */
export interface ClientMessageResume {
  token: string;
  last_tick: Tick;
  last_seq: Seq;
}

/** `ping` of ClientMessage. */
export interface ClientMessagePing {
  nonce: number;
}

/** What the server sends a player as MessagePack (tick frames have a layout of their own). */
export type ServerMessage =
  | { welcome: ServerMessageWelcome }
  | { joined: ServerMessageJoined }
  | { resumed: ServerMessageResumed }
  | { rejected: ServerMessageRejected }
  | { snapshot: Snapshot }
  | { match_ended: ServerMessageMatchEnded }
  | { pong: ServerMessagePong }
  | { error: ServerMessageError };

/** `welcome` of ServerMessage. */
export interface ServerMessageWelcome {
  protocol: number;
  server: string;
}

/** `joined` of ServerMessage. */
export interface ServerMessageJoined {
  match_id: MatchId;
  player: PlayerId;
  entity: EntityId;
  tick_rate_hz: number;
  resume_token: string;
  game: string;
  rules: GameConfig;
  components: string[];
  snapshot: Snapshot;
}

/** `resumed` of ServerMessage. */
export interface ServerMessageResumed {
  match_id: MatchId;
  player: PlayerId;
  entity: EntityId;
  from_seq: Seq;
}

/** `rejected` of ServerMessage. */
export interface ServerMessageRejected {
  id: CommandId;
  rule: Rule;
  detail: string;
}

/** `match_ended` of ServerMessage. */
export interface ServerMessageMatchEnded {
  reason: EndReason;
  winner: PlayerId | null;
}

/** `pong` of ServerMessage. */
export interface ServerMessagePong {
  nonce: number;
}

/** `error` of ServerMessage. */
export interface ServerMessageError {
  code: number;
  reason: string;
}

/** What the server sends a spectator, one message per frame. */
export type SpectatorMessage =
  | { tick: SpectatorMessageTick }
  | { live: SpectatorMessageLive }
  | { ended: SpectatorMessageEnded };

/** `tick` of SpectatorMessage. */
export interface SpectatorMessageTick {
  tick: Tick;
  hash: StateHash;
  events: Event[];
}

/** `live` of SpectatorMessage. */
export interface SpectatorMessageLive {
  seq: Seq;
}

/** `ended` of SpectatorMessage. */
export interface SpectatorMessageEnded {
  last_seq: Seq;
}

/** A field or value type at run time: a primitive, ["opt", T], ["vec", T] or a type's name. */
export type WireTy = string | ["opt" | "vec", WireTy];
/** How each type travels in MessagePack: structs as arrays of these fields, in order. */
export type WireShape =
  | { alias: WireTy }
  | { struct: [string, WireTy][] }
  | { enum: { [wire: string]: "unit" | { struct: [string, WireTy][] } | { newtype: WireTy } }; open: boolean };

/** Every wire type's shape, read by the client's converter. */
export const WIRE: { [name: string]: WireShape } = {
  MatchId: { alias: "u64" },
  PlayerId: { alias: "u32" },
  EntityId: { alias: "u32" },
  Seq: { alias: "u64" },
  Tick: { alias: "u64" },
  CommandId: { alias: "u32" },
  StateHash: { alias: "hash" },
  Rule: {
    enum: {
      unknown_player: "unit",
      unknown_entity: "unit",
      not_your_entity: "unit",
      speed_limit: "unit",
      cooldown: "unit",
      player_dead: "unit",
      wrong_game: "unit",
      match_ended: "unit",
      already_joined: "unit",
      match_full: "unit",
      invalid_input: "unit",
      match_busy: "unit",
      rate_limited: "unit",
    },
    open: false,
  },
  EndReason: {
    enum: {
      score_limit: "unit",
      time_limit: "unit",
    },
    open: false,
  },
  Command: {
    enum: {
      join: { struct: [["name", "str"]] },
      leave: "unit",
      move: { struct: [["entity", "EntityId"], ["vx", "i32"], ["vy", "i32"]] },
      fire: { struct: [["entity", "EntityId"], ["dx", "i32"], ["dy", "i32"]] },
      drift: { struct: [["entity", "EntityId"], ["dx", "i32"], ["dy", "i32"]] },
    },
    open: true,
  },
  ArenaConfig: { struct: [["max_players", "u32"], ["width_mm", "i32"], ["height_mm", "i32"], ["player_radius_mm", "i32"], ["max_speed_mm_per_tick", "i32"], ["projectile_speed_mm_per_tick", "i32"], ["projectile_radius_mm", "i32"], ["projectile_ttl_ticks", "u64"], ["fire_cooldown_ticks", "u64"], ["projectile_damage", "i32"], ["max_health", "i32"], ["respawn_delay_ticks", "u64"], ["pickup_interval_ticks", "u64"], ["max_pickups", "u32"], ["pickup_heal", "i32"], ["pickup_radius_mm", "i32"], ["score_limit", "u32"], ["time_limit_ticks", "u64"]] },
  DriftConfig: { struct: [["max_players", "u32"], ["width_mm", "i32"], ["height_mm", "i32"], ["max_step_mm", "i32"]] },
  GameConfig: {
    enum: {
      arena: { newtype: "ArenaConfig" },
      drift: { newtype: "DriftConfig" },
    },
    open: true,
  },
  ComponentValue: {
    enum: {
      player: { struct: [["player", "PlayerId"], ["name", "str"]] },
      pos: { struct: [["x", "i32"], ["y", "i32"]] },
      vel: { struct: [["vx", "i32"], ["vy", "i32"]] },
      hp: { struct: [["hp", "i32"], ["respawn_at", ["opt", "Tick"]]] },
      score: { struct: [["kills", "u32"], ["deaths", "u32"]] },
      cooldown: { struct: [["ready_at", "Tick"]] },
      projectile: { struct: [["shooter", "EntityId"], ["fired_at", "Tick"], ["expires_at", "Tick"]] },
      pickup: { struct: [["heal", "i32"]] },
      input: { struct: [["input", "CommandId"]] },
      match: { struct: [["ends_at", "Tick"], ["ended", ["opt", "EndReason"]], ["winner", ["opt", "PlayerId"]]] },
      pickup_timer: { struct: [["next_at", "Tick"]] },
    },
    open: true,
  },
  EntityState: { struct: [["id", "EntityId"], ["components", ["vec", "ComponentValue"]]] },
  Snapshot: { struct: [["tick", "Tick"], ["seq", "Seq"], ["entities", ["vec", "EntityState"]]] },
  Cause: {
    enum: {
      command: { struct: [["player", "PlayerId"], ["id", "CommandId"]] },
      rules: "unit",
    },
    open: false,
  },
  EventKind: {
    enum: {
      player_joined: { struct: [["player", "PlayerId"], ["entity", "EntityId"], ["name", "str"]] },
      player_left: { struct: [["player", "PlayerId"], ["entity", "EntityId"]] },
      player_spawned: { struct: [["entity", "EntityId"], ["x", "i32"], ["y", "i32"]] },
      player_steered: { struct: [["entity", "EntityId"], ["vx", "i32"], ["vy", "i32"]] },
      projectile_fired: { struct: [["projectile", "EntityId"], ["shooter", "EntityId"], ["x", "i32"], ["y", "i32"], ["vx", "i32"], ["vy", "i32"]] },
      player_hit: { struct: [["target", "EntityId"], ["projectile", "EntityId"], ["damage", "i32"], ["hp_left", "i32"]] },
      player_killed: { struct: [["victim", "EntityId"], ["killer", ["opt", "EntityId"]], ["respawn_at", "Tick"]] },
      projectile_expired: { struct: [["projectile", "EntityId"]] },
      pickup_spawned: { struct: [["pickup", "EntityId"], ["x", "i32"], ["y", "i32"], ["heal", "i32"]] },
      pickup_collected: { struct: [["pickup", "EntityId"], ["entity", "EntityId"], ["hp_after", "i32"]] },
      player_drifted: { struct: [["entity", "EntityId"], ["dx", "i32"], ["dy", "i32"], ["input", "CommandId"]] },
      match_ended: { struct: [["reason", "EndReason"], ["winner", ["opt", "PlayerId"]]] },
    },
    open: true,
  },
  Event: { struct: [["match_id", "MatchId"], ["seq", "Seq"], ["tick", "Tick"], ["v", "u16"], ["cause", "Cause"], ["kind", "EventKind"]] },
  RejectedCommand: { struct: [["tick", "Tick"], ["player", "PlayerId"], ["id", "CommandId"], ["command", "Command"], ["rule", "Rule"], ["detail", "str"]] },
  Rejected: { struct: [["id", "CommandId"], ["rule", "Rule"], ["detail", "str"]] },
  ClientMessage: {
    enum: {
      hello: { struct: [["protocol", "u32"], ["client", "str"]] },
      join: { struct: [["match_id", ["opt", "MatchId"]], ["name", "str"]] },
      command: { struct: [["id", "CommandId"], ["command", "Command"]] },
      resume: { struct: [["token", "str"], ["last_tick", "Tick"], ["last_seq", "Seq"]] },
      ping: { struct: [["nonce", "u64"]] },
      leave: "unit",
    },
    open: false,
  },
  ServerMessage: {
    enum: {
      welcome: { struct: [["protocol", "u32"], ["server", "str"]] },
      joined: { struct: [["match_id", "MatchId"], ["player", "PlayerId"], ["entity", "EntityId"], ["tick_rate_hz", "u32"], ["resume_token", "str"], ["game", "str"], ["rules", "GameConfig"], ["components", ["vec", "str"]], ["snapshot", "Snapshot"]] },
      resumed: { struct: [["match_id", "MatchId"], ["player", "PlayerId"], ["entity", "EntityId"], ["from_seq", "Seq"]] },
      rejected: { struct: [["id", "CommandId"], ["rule", "Rule"], ["detail", "str"]] },
      snapshot: { newtype: "Snapshot" },
      match_ended: { struct: [["reason", "EndReason"], ["winner", ["opt", "PlayerId"]]] },
      pong: { struct: [["nonce", "u64"]] },
      error: { struct: [["code", "u16"], ["reason", "str"]] },
    },
    open: false,
  },
  SpectatorMessage: {
    enum: {
      tick: { struct: [["tick", "Tick"], ["hash", "StateHash"], ["events", ["vec", "Event"]]] },
      live: { struct: [["seq", "Seq"]] },
      ended: { struct: [["last_seq", "Seq"]] },
    },
    open: false,
  },
};
