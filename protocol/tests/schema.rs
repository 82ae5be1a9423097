//! The wire schema (`tickforge_protocol::schema`) against the Rust types it describes, and the
//! TypeScript client's generated file against the schema.
//!
//! Every sample message is encoded with the codec, read back as a positional value, turned
//! into named values by walking the schema (as the TypeScript client does), and compared with
//! serde's own named form (its JSON). A field added, removed, renamed or moved in a Rust type,
//! without the same change in the schema, fails here; so does a variant the schema lacks. The
//! checked-in TypeScript must equal `schema::typescript()`; `TICKFORGE_REWRITE=1` rewrites it.

#[allow(dead_code)]
mod samples;

use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use tickforge_protocol::schema::{Shape, TYPES, Ty, Variant, type_named};
use tickforge_protocol::*;

/// The (type, variant) pairs and struct types a conversion went through.
#[derive(Default)]
struct Seen(BTreeSet<(String, String)>);

fn int_in(value: &Value, lo: i64, hi: u64) -> Result<Value, String> {
    let ok = match (value.as_i64(), value.as_u64()) {
        (_, Some(u)) => u <= hi,
        (Some(i), None) => i >= lo,
        _ => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(format!("{value} is not an integer in {lo}..={hi}"))
    }
}

fn fields(
    seen: &mut Seen,
    value: &Value,
    fields: &[(&str, Ty)],
    at: &str,
) -> Result<Value, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected an array of {} fields", fields.len()))?;
    if items.len() != fields.len() {
        return Err(format!(
            "{at}: {} values for {} fields",
            items.len(),
            fields.len()
        ));
    }
    let mut out = Map::new();
    for ((name, ty), item) in fields.iter().zip(items) {
        out.insert(
            (*name).to_string(),
            named(seen, item, ty, &format!("{at}.{name}"))?,
        );
    }
    Ok(Value::Object(out))
}

/// The positional value `value` (as decoded from MessagePack) in named form.
fn named(seen: &mut Seen, value: &Value, ty: &Ty, at: &str) -> Result<Value, String> {
    match ty {
        Ty::U16 => int_in(value, 0, u16::MAX.into()),
        Ty::U32 => int_in(value, 0, u32::MAX.into()),
        Ty::U64 => int_in(value, 0, u64::MAX),
        Ty::I32 => int_in(value, i32::MIN.into(), i32::MAX as u64),
        Ty::Str => value
            .as_str()
            .map(|s| json!(s))
            .ok_or_else(|| format!("{at}: expected a string")),
        Ty::Hash => value
            .as_u64()
            .map(|h| json!(h.to_string()))
            .ok_or_else(|| format!("{at}: expected a u64 hash")),
        Ty::Opt(inner) if value.is_null() => {
            let _ = inner;
            Ok(Value::Null)
        }
        Ty::Opt(inner) => named(seen, value, inner, at),
        Ty::List(inner) => value
            .as_array()
            .ok_or_else(|| format!("{at}: expected an array"))?
            .iter()
            .enumerate()
            .map(|(i, v)| named(seen, v, inner, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Ty::Game => Ok(value.clone()),
        Ty::Named(name) => {
            let def = type_named(name).ok_or_else(|| format!("{at}: no type {name}"))?;
            match def.shape {
                Shape::Alias(inner) => named(seen, value, &inner, at),
                Shape::Struct(fs) => {
                    seen.0.insert((name.to_string(), String::new()));
                    fields(seen, value, fs, &format!("{at}<{name}>"))
                }
                Shape::Enum { variants, open } => {
                    let (wire, inner) = match value {
                        Value::String(s) => (s.clone(), None),
                        Value::Object(m) if m.len() == 1 => {
                            let (k, v) = m.iter().next().expect("one entry");
                            (k.clone(), Some(v))
                        }
                        _ => return Err(format!("{at}: {name} is a string or a one-entry map")),
                    };
                    let Some((_, variant)) = variants.iter().find(|(w, _)| *w == wire) else {
                        return if open {
                            seen.0.insert((name.to_string(), "<game>".into()));
                            Ok(value.clone())
                        } else {
                            Err(format!("{at}: {name} has no variant {wire}"))
                        };
                    };
                    seen.0.insert((name.to_string(), wire.clone()));
                    let at = format!("{at}<{name}::{wire}>");
                    match (variant, inner) {
                        (Variant::Unit, None) => Ok(json!(wire)),
                        (Variant::Struct(fs), Some(v)) => {
                            Ok(json!({ wire: fields(seen, v, fs, &at)? }))
                        }
                        (Variant::Newtype(t), Some(v)) => {
                            Ok(json!({ wire: named(seen, v, t, &at)? }))
                        }
                        _ => Err(format!("{at}: wrong form for the variant")),
                    }
                }
            }
        }
    }
}

fn check<T: Serialize>(seen: &mut Seen, ty: &str, sample: &T) {
    let bytes = encode(sample).expect("encodes");
    let positional: Value = rmp_serde::from_slice(&bytes).expect("MessagePack reads as a value");
    let converted = named(seen, &positional, &Ty::Named(leak(ty)), ty)
        .unwrap_or_else(|e| panic!("{ty}: the schema does not fit the encoding: {e}"));
    let expected = serde_json::to_value(sample).expect("JSON");
    assert_eq!(
        converted, expected,
        "{ty}: the schema's named form differs from serde's"
    );
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Every rule; the match has no wildcard, so a new rule fails to compile here until it is
/// added (and to the schema).
fn every_rule() -> Vec<Rule> {
    let all = [
        Rule::UnknownPlayer,
        Rule::UnknownEntity,
        Rule::NotYourEntity,
        Rule::SpeedLimit,
        Rule::Cooldown,
        Rule::PlayerDead,
        Rule::WrongGame,
        Rule::MatchEnded,
        Rule::AlreadyJoined,
        Rule::MatchFull,
        Rule::InvalidInput,
        Rule::MatchBusy,
        Rule::RateLimited,
    ];
    for r in all {
        match r {
            Rule::UnknownPlayer
            | Rule::UnknownEntity
            | Rule::NotYourEntity
            | Rule::SpeedLimit
            | Rule::Cooldown
            | Rule::PlayerDead
            | Rule::WrongGame
            | Rule::MatchEnded
            | Rule::AlreadyJoined
            | Rule::MatchFull
            | Rule::InvalidInput
            | Rule::MatchBusy
            | Rule::RateLimited => {}
        }
    }
    all.to_vec()
}

fn game_value(kind: &str, value: Value) -> Box<GameValue> {
    Box::new(GameValue {
        kind: kind.into(),
        value,
    })
}

#[test]
fn the_schema_describes_every_sample_exactly_as_serde_encodes_it() {
    let mut seen = Seen::default();
    for (_, m) in samples::client_messages() {
        check(&mut seen, "ClientMessage", &m);
    }
    for (_, m) in samples::server_messages() {
        if !matches!(m, ServerMessage::Tick(_)) {
            check(&mut seen, "ServerMessage", &m);
        }
    }
    for (_, m) in samples::spectator_messages() {
        check(&mut seen, "SpectatorMessage", &m);
    }
    for c in samples::all_components() {
        check(&mut seen, "ComponentValue", &c);
    }
    for k in samples::all_event_kinds() {
        check(&mut seen, "Event", &samples::event(k));
    }
    for rule in every_rule() {
        check(
            &mut seen,
            "ServerMessage",
            &ServerMessage::Rejected {
                id: CommandId(3),
                rule,
                detail: "why".into(),
            },
        );
    }
    let commands = [
        Command::Join { name: "ana".into() },
        Command::Leave,
        Command::Move {
            entity: EntityId(2),
            vx: -40,
            vy: 9,
        },
        Command::Fire {
            entity: EntityId(2),
            dx: 1,
            dy: -1,
        },
        Command::Drift {
            entity: EntityId(2),
            dx: 1000,
            dy: -1000,
        },
        Command::Game(game_value("tag", json!({ "target": 3 }))),
    ];
    for command in commands {
        check(
            &mut seen,
            "RejectedCommand",
            &RejectedCommand {
                tick: Tick(9),
                player: PlayerId(1),
                id: CommandId(4),
                command,
                rule: Rule::WrongGame,
                detail: "x".into(),
            },
        );
    }
    let configs = [
        GameConfig::Arena(ArenaConfig::default()),
        GameConfig::Drift(DriftConfig::default()),
        GameConfig::Game(game_value("tag", json!({ "max_players": 4 }))),
    ];
    for config in configs {
        check(&mut seen, "GameConfig", &config);
    }
    check(
        &mut seen,
        "Rejected",
        &compact::Rejected {
            id: CommandId(8),
            rule: Rule::Cooldown,
            detail: "ready at tick 30".into(),
        },
    );
    for reason in [EndReason::ScoreLimit, EndReason::TimeLimit] {
        check(&mut seen, "EndReason", &reason);
    }
    check(
        &mut seen,
        "EventKind",
        &EventKind::Game(game_value("player_tagged", json!({ "it": 2 }))),
    );
    check(
        &mut seen,
        "ComponentValue",
        &ComponentValue::Game(game_value("it", Value::Null)),
    );

    let mut missing = Vec::new();
    for def in TYPES {
        match def.shape {
            Shape::Alias(_) => {}
            Shape::Struct(_) => {
                if !seen.0.contains(&(def.name.into(), String::new())) {
                    missing.push(def.name.to_string());
                }
            }
            Shape::Enum { variants, open } => {
                for (wire, _) in variants {
                    if !seen.0.contains(&(def.name.into(), (*wire).into())) {
                        missing.push(format!("{}::{wire}", def.name));
                    }
                }
                if open && !seen.0.contains(&(def.name.into(), "<game>".into())) {
                    missing.push(format!("{}::<game value>", def.name));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no sample goes through these, so the schema is unchecked there: {missing:?}"
    );
}

#[test]
fn the_schema_refuses_what_does_not_fit() {
    let mut seen = Seen::default();
    let snapshot = Ty::Named("Snapshot");
    assert!(named(&mut seen, &json!([1, 2]), &snapshot, "s").is_err());
    assert!(named(&mut seen, &json!([1, 2, [], 4]), &snapshot, "s").is_err());
    assert!(named(&mut seen, &json!([-1, 2, []]), &snapshot, "s").is_err());
    assert!(
        named(
            &mut seen,
            &json!({"nope": []}),
            &Ty::Named("ServerMessage"),
            "m"
        )
        .is_err()
    );
    assert!(named(&mut seen, &json!(4294967296u64), &Ty::U32, "u").is_err());
}

#[test]
fn the_checked_in_typescript_is_what_the_rust_types_produce() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts/src/generated/protocol.ts");
    let generated = schema::typescript();
    if std::env::var_os("TICKFORGE_REWRITE").is_some() {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, &generated).expect("writes");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "clients/ts/src/generated/protocol.ts differs from what the protocol crate produces; \
         regenerate it with: TICKFORGE_REWRITE=1 cargo test -p tickforge-protocol --test schema"
    );
}
