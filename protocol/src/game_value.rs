//! A value of a game's own vocabulary, for games this crate does not name.
//!
//! The reference games' commands, events, components and settings have variants of their own
//! in [`Command`](crate::Command), [`EventKind`](crate::EventKind),
//! [`ComponentValue`](crate::ComponentValue) and [`GameConfig`](crate::GameConfig). Any other
//! game's travel in the `Game` variant of each as a [`GameValue`]: the kind's name and its
//! value, with named fields. On the wire and in files it looks exactly like a named variant,
//! `{kind: value}`, so a client in any language sees one shape for every game, and a game
//! written in its own crate needs no change to this one. A game turns its own typed values
//! into `GameValue`s and back with [`GameValue::new`] and [`GameValue::decode`].

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value a [`GameValue`] holds: structs as maps with named fields, so that a client in
/// any language reads a game's values by name, in MessagePack and in JSON alike.
pub use serde_json::Value;

/// One command, event, component value or settings of a game this crate does not name.
#[derive(Clone, Debug, PartialEq)]
pub struct GameValue {
    /// The kind's name (`"tag"`, `"player_tagged"`, `"it"`), snake_case by convention.
    pub kind: String,
    /// The value, as the game's own type serializes it (structs as maps of named fields).
    pub value: Value,
}

/// Game values hold what a deterministic game may keep in its state: integers, strings,
/// booleans, arrays and maps. A float would make equality partial, and has no place in state.
impl Eq for GameValue {}

impl Eq for GameValueError {}

impl PartialEq for GameValueError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.detail == other.detail
    }
}

/// Why a [`GameValue`] could not be made from, or read as, a game's type.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct GameValueError {
    pub kind: String,
    pub detail: String,
}

impl GameValue {
    /// The `GameValue` of kind `kind` holding `value` (any serde type of the game's).
    pub fn new(
        kind: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<GameValue, GameValueError> {
        let kind = kind.into();
        match serde_json::to_value(value) {
            Ok(value) => Ok(GameValue { kind, value }),
            Err(e) => Err(GameValueError {
                kind,
                detail: e.to_string(),
            }),
        }
    }

    /// The value read as the game's type `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, GameValueError> {
        T::deserialize(&self.value).map_err(|e| GameValueError {
            kind: self.kind.clone(),
            detail: e.to_string(),
        })
    }

    /// The canonical bytes of the value (its MessagePack encoding; maps in key order), for
    /// state hashes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // A JSON value always encodes.
        rmp_serde::to_vec(&self.value).unwrap_or_default()
    }
}

impl Serialize for GameValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.kind, &self.value)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for GameValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GameValue, D::Error> {
        struct OneEntry;
        impl<'de> Visitor<'de> for OneEntry {
            type Value = GameValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with one entry, {kind: value}, or a kind's name alone")
            }

            // A kind with no value is written as its name alone, like a unit variant.
            fn visit_str<E: de::Error>(self, kind: &str) -> Result<GameValue, E> {
                Ok(GameValue {
                    kind: kind.to_string(),
                    value: Value::Null,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GameValue, A::Error> {
                let Some((kind, value)) = map.next_entry::<String, Value>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(GameValue { kind, value })
            }
        }
        deserializer.deserialize_any(OneEntry)
    }
}

/// A `GameValue` whose kind is none of `named`: the kinds an enum has variants for. A value
/// with such a kind that did not read as its variant is malformed, and must stay an error
/// rather than pass for another game's.
pub(crate) fn other_than<'de, D: Deserializer<'de>>(
    deserializer: D,
    named: &[&str],
) -> Result<Box<GameValue>, D::Error> {
    let value = GameValue::deserialize(deserializer)?;
    if named.contains(&value.kind.as_str()) {
        return Err(de::Error::custom(format!(
            "{} does not have the shape of a {:?}",
            value.value, value.kind
        )));
    }
    Ok(Box::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tag {
        target: u32,
        note: String,
    }

    #[test]
    fn a_game_value_round_trips_through_both_encodings() {
        let v = GameValue::new(
            "tag",
            &Tag {
                target: 7,
                note: "got you".into(),
            },
        )
        .expect("encodes");
        let bytes = crate::encode(&v).expect("msgpack");
        let back: GameValue = crate::decode(&bytes).expect("decodes");
        assert_eq!(back, v);
        assert_eq!(
            back.decode::<Tag>().expect("typed"),
            Tag {
                target: 7,
                note: "got you".into()
            }
        );
        let json = serde_json::to_string(&v).expect("json");
        assert_eq!(json, r#"{"tag":{"note":"got you","target":7}}"#);
    }
}
