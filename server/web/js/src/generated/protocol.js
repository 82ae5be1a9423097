// Generated from the Rust protocol crate (tickforge-protocol, src/schema.rs); do not edit.
// Regenerate with: TICKFORGE_REWRITE=1 cargo test -p tickforge-protocol --test schema
// A test fails when this file differs from what the Rust types produce.
/** The protocol version this file describes. */
export const PROTOCOL_VERSION = 2;
/** Every wire type's shape, read by the client's converter. */
export const WIRE = {
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
