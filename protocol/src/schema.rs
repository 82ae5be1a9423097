//! The shape of every wire type, as data: what a client in another language needs to turn the
//! MessagePack form (structs as arrays, in field order) into named values and back.
//!
//! [`TYPES`] lists each type's fields in wire order and each enum's variants by wire name.
//! [`typescript`] writes the TypeScript client's `generated/protocol.ts` from it: the message
//! types and the same table at run time, which the client's converter walks. The protocol's
//! tests hold the table to serde's output for a sample of every variant and the checked-in
//! TypeScript to [`typescript`]'s output, so neither can drift from the Rust types.

use std::fmt::Write;

/// The type of a field or a newtype variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    U16,
    U32,
    U64,
    I32,
    Str,
    /// A [`StateHash`](crate::StateHash): a u64 in MessagePack, a string of digits in JSON,
    /// a `bigint` in TypeScript.
    Hash,
    /// nil for `None`.
    Opt(&'static Ty),
    List(&'static Ty),
    /// A type of [`TYPES`], by name.
    Named(&'static str),
    /// A [`GameValue`](crate::GameValue): `{kind: value}` with the value's fields named.
    Game,
}

/// One variant of an enum, under its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Encoded as its name alone.
    Unit,
    /// `{name: [fields…]}`.
    Struct(&'static [(&'static str, Ty)]),
    /// `{name: value}`.
    Newtype(Ty),
}

/// What a type is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A newtype that travels as its inner value (the ids).
    Alias(Ty),
    /// An array of its fields, in this order.
    Struct(&'static [(&'static str, Ty)]),
    /// Externally tagged. `open` enums also take a [`Ty::Game`] value of any other name.
    Enum {
        variants: &'static [(&'static str, Variant)],
        open: bool,
    },
}

/// One wire type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub shape: Shape,
}

use Ty::*;

const fn n(name: &'static str) -> Ty {
    Named(name)
}

const fn alias(name: &'static str, doc: &'static str, ty: Ty) -> TypeDef {
    TypeDef {
        name,
        doc,
        shape: Shape::Alias(ty),
    }
}

const fn strukt(
    name: &'static str,
    doc: &'static str,
    fields: &'static [(&'static str, Ty)],
) -> TypeDef {
    TypeDef {
        name,
        doc,
        shape: Shape::Struct(fields),
    }
}

const fn enumeration(
    name: &'static str,
    doc: &'static str,
    open: bool,
    variants: &'static [(&'static str, Variant)],
) -> TypeDef {
    TypeDef {
        name,
        doc,
        shape: Shape::Enum { variants, open },
    }
}

const ENTITY: (&str, Ty) = ("entity", n("EntityId"));

/// Every wire type of the protocol (PROTOCOL.md sections 2 to 14), dependencies first.
pub const TYPES: &[TypeDef] = &[
    alias(
        "MatchId",
        "One match, unique within a server's data directory.",
        U64,
    ),
    alias("PlayerId", "One player within a match.", U32),
    alias(
        "EntityId",
        "A stable entity id; 0 is the match entity.",
        U32,
    ),
    alias(
        "Seq",
        "An event's position in its match's stream: 1, 2, 3, …",
        U64,
    ),
    alias(
        "Tick",
        "One fixed simulation step; tick 0 is the start.",
        U64,
    ),
    alias(
        "CommandId",
        "Chosen by the client, increasing; 0 is reserved.",
        U32,
    ),
    alias(
        "StateHash",
        "The state hash after a tick: a u64, so a bigint here (a string of digits in JSON).",
        Hash,
    ),
    enumeration(
        "Rule",
        "The rule a rejected command broke.",
        false,
        &[
            ("unknown_player", Variant::Unit),
            ("unknown_entity", Variant::Unit),
            ("not_your_entity", Variant::Unit),
            ("speed_limit", Variant::Unit),
            ("cooldown", Variant::Unit),
            ("player_dead", Variant::Unit),
            ("wrong_game", Variant::Unit),
            ("match_ended", Variant::Unit),
            ("already_joined", Variant::Unit),
            ("match_full", Variant::Unit),
            ("invalid_input", Variant::Unit),
            ("match_busy", Variant::Unit),
            ("rate_limited", Variant::Unit),
        ],
    ),
    enumeration(
        "EndReason",
        "Why a match ended.",
        false,
        &[
            ("score_limit", Variant::Unit),
            ("time_limit", Variant::Unit),
        ],
    ),
    enumeration(
        "Command",
        "What a player asks the match to do; other games' commands are game values.",
        true,
        &[
            ("join", Variant::Struct(&[("name", Str)])),
            ("leave", Variant::Unit),
            ("move", Variant::Struct(&[ENTITY, ("vx", I32), ("vy", I32)])),
            ("fire", Variant::Struct(&[ENTITY, ("dx", I32), ("dy", I32)])),
            (
                "drift",
                Variant::Struct(&[ENTITY, ("dx", I32), ("dy", I32)]),
            ),
        ],
    ),
    strukt(
        "ArenaConfig",
        "Arena rules: lengths in mm, speeds in mm per tick, durations in ticks.",
        &[
            ("max_players", U32),
            ("width_mm", I32),
            ("height_mm", I32),
            ("player_radius_mm", I32),
            ("max_speed_mm_per_tick", I32),
            ("projectile_speed_mm_per_tick", I32),
            ("projectile_radius_mm", I32),
            ("projectile_ttl_ticks", U64),
            ("fire_cooldown_ticks", U64),
            ("projectile_damage", I32),
            ("max_health", I32),
            ("respawn_delay_ticks", U64),
            ("pickup_interval_ticks", U64),
            ("max_pickups", U32),
            ("pickup_heal", I32),
            ("pickup_radius_mm", I32),
            ("score_limit", U32),
            ("time_limit_ticks", U64),
        ],
    ),
    strukt(
        "DriftConfig",
        "Drift rules: players nudge themselves around a bounded plane.",
        &[
            ("max_players", U32),
            ("width_mm", I32),
            ("height_mm", I32),
            ("max_step_mm", I32),
        ],
    ),
    enumeration(
        "GameConfig",
        "A match's rule settings, under the game's name.",
        true,
        &[
            ("arena", Variant::Newtype(n("ArenaConfig"))),
            ("drift", Variant::Newtype(n("DriftConfig"))),
        ],
    ),
    enumeration(
        "ComponentValue",
        "The value of one component of one entity; other games' components are game values.",
        true,
        &[
            (
                "player",
                Variant::Struct(&[("player", n("PlayerId")), ("name", Str)]),
            ),
            ("pos", Variant::Struct(&[("x", I32), ("y", I32)])),
            ("vel", Variant::Struct(&[("vx", I32), ("vy", I32)])),
            (
                "hp",
                Variant::Struct(&[("hp", I32), ("respawn_at", Opt(&n("Tick")))]),
            ),
            ("score", Variant::Struct(&[("kills", U32), ("deaths", U32)])),
            ("cooldown", Variant::Struct(&[("ready_at", n("Tick"))])),
            (
                "projectile",
                Variant::Struct(&[
                    ("shooter", n("EntityId")),
                    ("fired_at", n("Tick")),
                    ("expires_at", n("Tick")),
                ]),
            ),
            ("pickup", Variant::Struct(&[("heal", I32)])),
            ("input", Variant::Struct(&[("input", n("CommandId"))])),
            (
                "match",
                Variant::Struct(&[
                    ("ends_at", n("Tick")),
                    ("ended", Opt(&n("EndReason"))),
                    ("winner", Opt(&n("PlayerId"))),
                ]),
            ),
            ("pickup_timer", Variant::Struct(&[("next_at", n("Tick"))])),
        ],
    ),
    strukt(
        "EntityState",
        "One entity and some (in a delta) or all (in a snapshot) of its components.",
        &[
            ("id", n("EntityId")),
            ("components", List(&n("ComponentValue"))),
        ],
    ),
    strukt(
        "Snapshot",
        "Every public component of every entity at the end of `tick`, sorted by id.",
        &[
            ("tick", n("Tick")),
            ("seq", n("Seq")),
            ("entities", List(&n("EntityState"))),
        ],
    ),
    enumeration(
        "Cause",
        "Where an event came from.",
        false,
        &[
            (
                "command",
                Variant::Struct(&[("player", n("PlayerId")), ("id", n("CommandId"))]),
            ),
            ("rules", Variant::Unit),
        ],
    ),
    enumeration(
        "EventKind",
        "What happened; other games' events are game values.",
        true,
        &[
            (
                "player_joined",
                Variant::Struct(&[("player", n("PlayerId")), ENTITY, ("name", Str)]),
            ),
            (
                "player_left",
                Variant::Struct(&[("player", n("PlayerId")), ENTITY]),
            ),
            (
                "player_spawned",
                Variant::Struct(&[ENTITY, ("x", I32), ("y", I32)]),
            ),
            (
                "player_steered",
                Variant::Struct(&[ENTITY, ("vx", I32), ("vy", I32)]),
            ),
            (
                "projectile_fired",
                Variant::Struct(&[
                    ("projectile", n("EntityId")),
                    ("shooter", n("EntityId")),
                    ("x", I32),
                    ("y", I32),
                    ("vx", I32),
                    ("vy", I32),
                ]),
            ),
            (
                "player_hit",
                Variant::Struct(&[
                    ("target", n("EntityId")),
                    ("projectile", n("EntityId")),
                    ("damage", I32),
                    ("hp_left", I32),
                ]),
            ),
            (
                "player_killed",
                Variant::Struct(&[
                    ("victim", n("EntityId")),
                    ("killer", Opt(&n("EntityId"))),
                    ("respawn_at", n("Tick")),
                ]),
            ),
            (
                "projectile_expired",
                Variant::Struct(&[("projectile", n("EntityId"))]),
            ),
            (
                "pickup_spawned",
                Variant::Struct(&[
                    ("pickup", n("EntityId")),
                    ("x", I32),
                    ("y", I32),
                    ("heal", I32),
                ]),
            ),
            (
                "pickup_collected",
                Variant::Struct(&[("pickup", n("EntityId")), ENTITY, ("hp_after", I32)]),
            ),
            (
                "player_drifted",
                Variant::Struct(&[ENTITY, ("dx", I32), ("dy", I32), ("input", n("CommandId"))]),
            ),
            (
                "match_ended",
                Variant::Struct(&[("reason", n("EndReason")), ("winner", Opt(&n("PlayerId")))]),
            ),
        ],
    ),
    strukt(
        "Event",
        "One sequenced fact of one match.",
        &[
            ("match_id", n("MatchId")),
            ("seq", n("Seq")),
            ("tick", n("Tick")),
            ("v", U16),
            ("cause", n("Cause")),
            ("kind", n("EventKind")),
        ],
    ),
    strukt(
        "RejectedCommand",
        "A refused command, as the replay's audit trail keeps it (GET /replays/{id}/rejections).",
        &[
            ("tick", n("Tick")),
            ("player", n("PlayerId")),
            ("id", n("CommandId")),
            ("command", n("Command")),
            ("rule", n("Rule")),
            ("detail", Str),
        ],
    ),
    strukt(
        "Rejected",
        "A command refused in a tick: one of a tick frame's rejections (MessagePack).",
        &[("id", n("CommandId")), ("rule", n("Rule")), ("detail", Str)],
    ),
    enumeration(
        "ClientMessage",
        "What a client sends on /play.",
        false,
        &[
            (
                "hello",
                Variant::Struct(&[("protocol", U32), ("client", Str)]),
            ),
            (
                "join",
                Variant::Struct(&[("match_id", Opt(&n("MatchId"))), ("name", Str)]),
            ),
            (
                "command",
                Variant::Struct(&[("id", n("CommandId")), ("command", n("Command"))]),
            ),
            (
                "resume",
                Variant::Struct(&[
                    ("token", Str),
                    ("last_tick", n("Tick")),
                    ("last_seq", n("Seq")),
                ]),
            ),
            ("ping", Variant::Struct(&[("nonce", U64)])),
            ("leave", Variant::Unit),
        ],
    ),
    enumeration(
        "ServerMessage",
        "What the server sends a player as MessagePack (tick frames have a layout of their own).",
        false,
        &[
            (
                "welcome",
                Variant::Struct(&[("protocol", U32), ("server", Str)]),
            ),
            (
                "joined",
                Variant::Struct(&[
                    ("match_id", n("MatchId")),
                    ("player", n("PlayerId")),
                    ENTITY,
                    ("tick_rate_hz", U32),
                    ("resume_token", Str),
                    ("game", Str),
                    ("rules", n("GameConfig")),
                    ("components", List(&Str)),
                    ("snapshot", n("Snapshot")),
                ]),
            ),
            (
                "resumed",
                Variant::Struct(&[
                    ("match_id", n("MatchId")),
                    ("player", n("PlayerId")),
                    ENTITY,
                    ("from_seq", n("Seq")),
                ]),
            ),
            (
                "rejected",
                Variant::Struct(&[("id", n("CommandId")), ("rule", n("Rule")), ("detail", Str)]),
            ),
            ("snapshot", Variant::Newtype(n("Snapshot"))),
            (
                "match_ended",
                Variant::Struct(&[("reason", n("EndReason")), ("winner", Opt(&n("PlayerId")))]),
            ),
            ("pong", Variant::Struct(&[("nonce", U64)])),
            ("error", Variant::Struct(&[("code", U16), ("reason", Str)])),
        ],
    ),
    enumeration(
        "SpectatorMessage",
        "What the server sends a spectator, one message per frame.",
        false,
        &[
            (
                "tick",
                Variant::Struct(&[
                    ("tick", n("Tick")),
                    ("hash", n("StateHash")),
                    ("events", List(&n("Event"))),
                ]),
            ),
            ("live", Variant::Struct(&[("seq", n("Seq"))])),
            ("ended", Variant::Struct(&[("last_seq", n("Seq"))])),
        ],
    ),
];

/// The type called `name` in [`TYPES`].
pub fn type_named(name: &str) -> Option<&'static TypeDef> {
    TYPES.iter().find(|t| t.name == name)
}

/// `snake_case` to `PascalCase`: the TypeScript name of a variant's fields type.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn ts_type(ty: &Ty) -> String {
    match ty {
        U16 | U32 | U64 | I32 => "number".into(),
        Str => "string".into(),
        Hash => "bigint".into(),
        Opt(inner) => format!("{} | null", ts_type(inner)),
        List(inner) => match inner {
            Opt(_) => format!("({})[]", ts_type(inner)),
            _ => format!("{}[]", ts_type(inner)),
        },
        Named(name) => (*name).into(),
        Game => "GameValue".into(),
    }
}

fn ts_fields(out: &mut String, fields: &[(&str, Ty)]) {
    for (name, ty) in fields {
        let _ = writeln!(out, "  {name}: {};", ts_type(ty));
    }
}

/// The run-time form of a type, as a TypeScript literal: `"u32"`, `["opt", "Tick"]`, …
fn wire_ty(ty: &Ty) -> String {
    match ty {
        U16 => "\"u16\"".into(),
        U32 => "\"u32\"".into(),
        U64 => "\"u64\"".into(),
        I32 => "\"i32\"".into(),
        Str => "\"str\"".into(),
        Hash => "\"hash\"".into(),
        Opt(inner) => format!("[\"opt\", {}]", wire_ty(inner)),
        List(inner) => format!("[\"vec\", {}]", wire_ty(inner)),
        Named(name) => format!("\"{name}\""),
        Game => "\"game\"".into(),
    }
}

fn wire_fields(fields: &[(&str, Ty)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(name, ty)| format!("[\"{name}\", {}]", wire_ty(ty)))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The TypeScript client's `src/generated/protocol.ts`: a type for every wire type (the named
/// form, the same as the JSON feed), and `WIRE`, the table of field orders that the client's
/// converter reads MessagePack with.
pub fn typescript() -> String {
    let mut out = String::new();
    out.push_str(
        "// Generated from the Rust protocol crate (tickforge-protocol, src/schema.rs); do not edit.\n\
         // Regenerate with: TICKFORGE_REWRITE=1 cargo test -p tickforge-protocol --test schema\n\
         // A test fails when this file differs from what the Rust types produce.\n\n",
    );
    let _ = writeln!(
        out,
        "/** The protocol version this file describes. */\nexport const PROTOCOL_VERSION = {};\n",
        crate::PROTOCOL_VERSION
    );
    out.push_str(
        "/** A value of a game the protocol does not name: `{kind: value}`, or the kind alone. */\n\
         export type GameValue = string | { [kind: string]: unknown };\n\n",
    );
    for def in TYPES {
        let _ = writeln!(out, "/** {} */", def.doc);
        match def.shape {
            Shape::Alias(ty) => {
                let _ = writeln!(out, "export type {} = {};\n", def.name, ts_type(&ty));
            }
            Shape::Struct(fields) => {
                let _ = writeln!(out, "export interface {} {{", def.name);
                ts_fields(&mut out, fields);
                out.push_str("}\n\n");
            }
            Shape::Enum { variants, open } => {
                let mut arms = Vec::new();
                let mut bodies = String::new();
                for (wire, variant) in variants {
                    match variant {
                        Variant::Unit => arms.push(format!("\"{wire}\"")),
                        Variant::Newtype(ty) => arms.push(format!("{{ {wire}: {} }}", ts_type(ty))),
                        Variant::Struct(fields) => {
                            let name = format!("{}{}", def.name, pascal(wire));
                            let _ = writeln!(bodies, "/** `{}` of {}. */", wire, def.name);
                            let _ = writeln!(bodies, "export interface {name} {{");
                            ts_fields(&mut bodies, fields);
                            bodies.push_str("}\n\n");
                            arms.push(format!("{{ {wire}: {name} }}"));
                        }
                    }
                }
                if open {
                    arms.push("GameValue".into());
                }
                let _ = write!(
                    out,
                    "export type {} =\n  | {};\n\n",
                    def.name,
                    arms.join("\n  | ")
                );
                out.push_str(&bodies);
            }
        }
    }
    out.push_str(
        "/** A field or value type at run time: a primitive, [\"opt\", T], [\"vec\", T] or a type's name. */\n\
         export type WireTy = string | [\"opt\" | \"vec\", WireTy];\n\
         /** How each type travels in MessagePack: structs as arrays of these fields, in order. */\n\
         export type WireShape =\n  \
         | { alias: WireTy }\n  \
         | { struct: [string, WireTy][] }\n  \
         | { enum: { [wire: string]: \"unit\" | { struct: [string, WireTy][] } | { newtype: WireTy } }; open: boolean };\n\n\
         /** Every wire type's shape, read by the client's converter. */\n\
         export const WIRE: { [name: string]: WireShape } = {\n",
    );
    for def in TYPES {
        let shape = match def.shape {
            Shape::Alias(ty) => format!("{{ alias: {} }}", wire_ty(&ty)),
            Shape::Struct(fields) => format!("{{ struct: {} }}", wire_fields(fields)),
            Shape::Enum { variants, open } => {
                let arms: Vec<String> = variants
                    .iter()
                    .map(|(wire, variant)| match variant {
                        Variant::Unit => format!("    {wire}: \"unit\","),
                        Variant::Newtype(ty) => {
                            format!("    {wire}: {{ newtype: {} }},", wire_ty(ty))
                        }
                        Variant::Struct(fields) => {
                            format!("    {wire}: {{ struct: {} }},", wire_fields(fields))
                        }
                    })
                    .collect();
                format!(
                    "{{\n  enum: {{\n{}\n  }},\n  open: {open},\n}}",
                    arms.join("\n")
                )
            }
        };
        let _ = writeln!(out, "  {}: {},", def.name, shape.replace('\n', "\n  "));
    }
    out.push_str("};\n");
    out
}
