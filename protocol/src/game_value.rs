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

/// An enum of named variants (the engine's and the reference games') and a last variant that
/// holds any other game's [`GameValue`]: [`Command`](crate::Command),
/// [`EventKind`](crate::EventKind), [`ComponentValue`](crate::ComponentValue) and
/// [`GameConfig`](crate::GameConfig). Each derives its reading with `#[serde(remote = "Self")]`
/// and the game's variant skipped, and reads through [`read_named_or_game`]: one pass over the
/// input, where serde's own untagged variant would buffer every value first and try it twice.
pub(crate) trait NamedOrGame: Sized {
    /// The named variants' kinds, as the wire spells them.
    const NAMED: &'static [&'static str];

    /// Read a named variant (the derived reading, which knows no other kind).
    fn named<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;

    /// Another game's value.
    fn game(value: Box<GameValue>) -> Self;
}

/// The serde impls of a [`NamedOrGame`] enum `$t`, whose named kinds are `$named` and whose
/// game variant is `Game` (skipped by the derived, remote = "Self", functions): a game's value
/// is written as `{kind: value}`, the named ones by the derived functions.
macro_rules! named_or_game {
    ($t:ty, $named:expr) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    Self::Game(value) => value.serialize(s),
                    named => <$t>::serialize(named, s),
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::game_value::read_named_or_game(d)
            }
        }

        impl crate::game_value::NamedOrGame for $t {
            const NAMED: &'static [&'static str] = $named;

            fn named<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize(d)
            }

            fn game(value: Box<crate::game_value::GameValue>) -> Self {
                Self::Game(value)
            }
        }
    };
}
pub(crate) use named_or_game;

/// Read a [`NamedOrGame`] enum: `{kind: value}` or a kind's name alone. A named kind is read
/// as its variant, so one with the wrong shape is an error rather than another game's value.
pub(crate) fn read_named_or_game<'de, D: Deserializer<'de>, T: NamedOrGame>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(NamedOrGameVisitor(std::marker::PhantomData))
}

struct NamedOrGameVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: NamedOrGame> Visitor<'de> for NamedOrGameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with one entry, {kind: value}, or a kind's name alone")
    }

    fn visit_str<E: de::Error>(self, kind: &str) -> Result<T, E> {
        if T::NAMED.contains(&kind) {
            T::named(OneVariant {
                kind,
                value: None::<&mut NoMap<E>>,
            })
        } else {
            Ok(T::game(Box::new(GameValue {
                kind: kind.to_string(),
                value: Value::Null,
            })))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let read = if T::NAMED.contains(&kind.as_str()) {
            T::named(OneVariant {
                kind: &kind,
                value: Some(&mut map),
            })?
        } else {
            T::game(Box::new(GameValue {
                value: map.next_value()?,
                kind,
            }))
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(2, &self));
        }
        Ok(read)
    }
}

/// One variant, `kind`, to a derived enum reading: its value is the map's next (or none, for a
/// kind's name alone).
struct OneVariant<'a, A> {
    kind: &'a str,
    value: Option<&'a mut A>,
}

/// The map of a kind's name alone, which has none.
struct NoMap<E>(std::marker::PhantomData<E>);

impl<'de, E: de::Error> MapAccess<'de> for NoMap<E> {
    type Error = E;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, E> {
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, E> {
        Err(de::Error::custom("a kind's name alone has no value"))
    }
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for OneVariant<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> de::EnumAccess<'de> for OneVariant<'_, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), A::Error> {
        use de::IntoDeserializer;
        let kind = seed.deserialize(self.kind.into_deserializer())?;
        Ok((kind, self))
    }
}

impl<'de, A: MapAccess<'de>> de::VariantAccess<'de> for OneVariant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        match self.value {
            Some(map) => map.next_value(),
            None => Ok(()),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, A::Error> {
        match self.value {
            Some(map) => map.next_value_seed(seed),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a value",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        match self.value {
            Some(map) => map.next_value_seed(Shaped::Tuple(len, visitor)),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a tuple",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        match self.value {
            Some(map) => map.next_value_seed(Shaped::Struct(fields, visitor)),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"fields",
            )),
        }
    }
}

/// A variant's value read as the shape its variant asks for.
enum Shaped<V> {
    Tuple(usize, V),
    Struct(&'static [&'static str], V),
}

impl<'de, V: Visitor<'de>> de::DeserializeSeed<'de> for Shaped<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        match self {
            Shaped::Tuple(len, visitor) => d.deserialize_tuple(len, visitor),
            Shaped::Struct(fields, visitor) => d.deserialize_struct("", fields, visitor),
        }
    }
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

    /// A named kind reads as its variant, or fails with its variant's error, in both
    /// encodings; any other kind is a game's value; a kind's name alone is a unit variant.
    #[test]
    fn named_kinds_read_as_their_variants_and_others_as_games() {
        use crate::{Command, EntityId};
        let json = |s: &str| serde_json::from_str::<Command>(s);
        assert_eq!(
            json(r#"{"move":{"entity":3,"vx":1,"vy":-2}}"#).expect("a move"),
            Command::Move {
                entity: EntityId(3),
                vx: 1,
                vy: -2
            }
        );
        assert_eq!(json(r#""leave""#).expect("a leave"), Command::Leave);
        assert_eq!(json(r#"{"leave":null}"#).expect("a leave"), Command::Leave);
        let bad = json(r#"{"move":{"entity":3,"vx":1}}"#).expect_err("a move without vy");
        assert!(bad.to_string().contains("vy"), "{bad}");
        assert!(json(r#""move""#).is_err(), "a move has fields");
        assert!(json(r#"{"move":{"entity":3,"vx":1,"vy":2},"fire":{}}"#).is_err());
        assert!(json("{}").is_err());
        assert_eq!(
            json(r#"{"tag":{"target":7}}"#).expect("a game's"),
            Command::Game(Box::new(GameValue {
                kind: "tag".into(),
                value: serde_json::json!({"target": 7}),
            }))
        );
        let game = Command::Game(Box::new(GameValue {
            kind: "tag".into(),
            value: serde_json::json!({"target": 7}),
        }));
        for c in [Command::Leave, game, Command::Join { name: "ann".into() }] {
            let bytes = crate::encode(&c).expect("msgpack");
            assert_eq!(crate::decode::<Command>(&bytes).expect("decodes"), c);
        }
        let bytes =
            rmp_serde::to_vec_named(&serde_json::json!({"fire": {"entity": 1}})).expect("msgpack");
        assert!(
            crate::decode::<Command>(&bytes).is_err(),
            "a fire needs dx, dy"
        );
    }
}
