//! Protocol 2's tick frame: one binary frame per player per tick, holding the tick's delta in a
//! compact encoding together with that player's acks, duplicate notices and rejections.
//!
//! The delta is encoded against the public world as of the tick before (a [`World`] that the
//! server and every client keep alike): components by integer tag (their index in the match's
//! component table, sent in `Joined`), entity ids sorted and sent as differences, and each
//! integer field as the zig-zag difference from its previous value, bit-packed in columns of
//! one width each. Nothing is lossy: decoding gives back exactly the [`Delta`] that was
//! encoded, and a world that applies it equals the encoder's. `docs/PROTOCOL.md` (§9) specifies
//! the bytes; this module is the reference.
//!
//! Decoding reads untrusted bytes: every count is checked against the bytes that remain before
//! anything is allocated, every integer against its type, and a frame that does not decode
//! leaves the world as it was.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, DecodeLimits, decode_with, encode_into};
use crate::command::Rule;
use crate::ids::{CommandId, EntityId, Seq, Tick};
use crate::state::{ComponentValue, Delta, EntityState, Snapshot};

/// The first byte of a tick frame is `TICK_FRAME | flags`; every other server frame is
/// MessagePack and starts with `0x81` (a map of one entry).
pub const TICK_FRAME: u8 = 0x10;
const FLAG_ACKS: u8 = 0x01;
const FLAG_DUPLICATES: u8 = 0x02;
const FLAG_REJECTIONS: u8 = 0x04;

/// The most public components a game may have (a changed entity's mask is at most 64 bits).
pub const MAX_COMPONENTS: usize = 64;

/// Bits that state a column's width (0 to 64).
const WIDTH_BITS: u32 = 7;

/// A command accepted earlier, sent again: it was not applied again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub id: CommandId,
    /// The tick it was accepted in (this tick if it is no longer remembered).
    pub tick: Tick,
}

/// A refused command, and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: CommandId,
    pub rule: Rule,
    pub detail: String,
}

/// One tick, as one player receives it: what happened to their commands, and the delta.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickFrame {
    /// The tick this frame ends.
    pub tick: Tick,
    /// Events sequenced in this tick: the frame's seq is the previous tick's plus this.
    pub events: u64,
    /// Commands accepted in this tick, in id order.
    pub acks: Vec<CommandId>,
    pub duplicates: Vec<Duplicate>,
    pub rejections: Vec<Rejected>,
    /// The delta, encoded against the world as of `tick − 1`: apply it with
    /// [`World::decode_delta`].
    pub delta: Vec<u8>,
}

/// What a player's part of a tick frame holds (the server builds one per player).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlayerPart {
    pub acks: Vec<CommandId>,
    pub duplicates: Vec<Duplicate>,
    pub rejections: Vec<Rejected>,
}

impl PlayerPart {
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.duplicates.is_empty() && self.rejections.is_empty()
    }
}

/// Whether `bytes` is a tick frame (by its first byte).
pub fn is_tick_frame(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xf8 == TICK_FRAME)
}

/// The part of a tick frame every player shares: the tick, its event count and the delta.
/// [`write_tick_frame`] puts a player's part in front of it.
pub fn shared_tail(tick: Tick, events: u64, delta: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(delta.len() + 12);
    put_uvarint(&mut out, tick.0);
    put_uvarint(&mut out, events);
    out.extend_from_slice(delta);
    out
}

/// Write a whole tick frame: the first byte, `player`'s part, then the shared part (after the
/// first byte, the tick and event count come first; the player part sits between them and
/// the delta).
pub fn write_tick_frame(
    out: &mut Vec<u8>,
    player: &PlayerPart,
    tick: Tick,
    events: u64,
    delta: &[u8],
) {
    let mut flags = TICK_FRAME;
    if !player.acks.is_empty() {
        flags |= FLAG_ACKS;
    }
    if !player.duplicates.is_empty() {
        flags |= FLAG_DUPLICATES;
    }
    if !player.rejections.is_empty() {
        flags |= FLAG_REJECTIONS;
    }
    out.push(flags);
    put_uvarint(out, tick.0);
    put_uvarint(out, events);
    if !player.acks.is_empty() {
        put_uvarint(out, player.acks.len() as u64);
        let mut previous: Option<u32> = None;
        for id in &player.acks {
            match previous {
                None => put_uvarint(out, u64::from(id.0)),
                Some(p) => put_uvarint(out, u64::from(id.0.wrapping_sub(p).wrapping_sub(1))),
            }
            previous = Some(id.0);
        }
    }
    if !player.duplicates.is_empty() {
        put_uvarint(out, player.duplicates.len() as u64);
        for d in &player.duplicates {
            put_uvarint(out, u64::from(d.id.0));
            put_uvarint(out, d.tick.0);
        }
    }
    if !player.rejections.is_empty() {
        put_uvarint(out, player.rejections.len() as u64);
        let mut body = Vec::new();
        for r in &player.rejections {
            body.clear();
            // A rejection is plain data and always encodes.
            let _ = encode_into(r, &mut body);
            put_uvarint(out, body.len() as u64);
            out.extend_from_slice(&body);
        }
    }
    out.extend_from_slice(delta);
}

/// Read a tick frame's header and player part; the delta stays encoded.
pub fn read_tick_frame(bytes: &[u8]) -> Result<TickFrame, DecodeError> {
    let mut r = Bytes::new(bytes);
    let first = r.u8()?;
    if first & 0xf8 != TICK_FRAME {
        return Err(r.invalid(format!("0x{first:02x} does not start a tick frame")));
    }
    let tick = Tick(r.uvarint()?);
    let events = r.uvarint()?;
    let mut frame = TickFrame {
        tick,
        events,
        ..TickFrame::default()
    };
    if first & FLAG_ACKS != 0 {
        let n = r.count(1)?;
        let mut previous: Option<u32> = None;
        for _ in 0..n {
            let v = r.u32()?;
            let id = match previous {
                None => v,
                Some(p) => p
                    .checked_add(v)
                    .and_then(|x| x.checked_add(1))
                    .ok_or_else(|| r.invalid("an ack id overflows 32 bits".into()))?,
            };
            previous = Some(id);
            frame.acks.push(CommandId(id));
        }
    }
    if first & FLAG_DUPLICATES != 0 {
        let n = r.count(2)?;
        for _ in 0..n {
            let id = CommandId(r.u32()?);
            let tick = Tick(r.uvarint()?);
            frame.duplicates.push(Duplicate { id, tick });
        }
    }
    if first & FLAG_REJECTIONS != 0 {
        let n = r.count(2)?;
        for _ in 0..n {
            let rejected: Rejected = r.msgpack(|| "a rejection".into())?;
            frame.rejections.push(rejected);
        }
    }
    frame.delta = r.rest().to_vec();
    Ok(frame)
}

/// The names of a match's public components, in tag order (tag = index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComponentTable {
    names: Vec<String>,
    layouts: Vec<Layout>,
    /// The tags of `pos` and `vel` when the table has both: a moving entity's position is
    /// then sent against where its velocity takes it.
    motion: Option<(usize, usize)>,
}

/// Why a table or a delta could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("{0} public components; the most a game may have is {MAX_COMPONENTS}")]
    TooManyComponents(usize),
    #[error("component {0:?} is in the table twice")]
    DuplicateName(String),
    #[error("component {0:?} is not in the match's component table")]
    UnknownComponent(String),
    #[error("entity {0} appears twice in one delta, or has one component twice")]
    Repeated(EntityId),
    #[error("component {0:?} does not have the shape its name promises")]
    Shape(String),
}

impl ComponentTable {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<Self, CompactError> {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.len() > MAX_COMPONENTS {
            return Err(CompactError::TooManyComponents(names.len()));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(CompactError::DuplicateName(n.clone()));
            }
        }
        let layouts = names.iter().map(|n| Layout::of(n)).collect();
        let tag = |name: &str| names.iter().position(|n| n == name);
        let motion = tag("pos").zip(tag("vel"));
        Ok(ComponentTable {
            names,
            layouts,
            motion,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The tag of the component called `name`.
    pub fn tag(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// How a component's value is packed: as integer fields, or whole (MessagePack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Ints(IntKind),
    Whole,
}

/// The components packed as integers, by wire name (decided once per table, not per value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntKind {
    Pos,
    Vel,
    Hp,
    Score,
    Cooldown,
    Pickup,
    Input,
    PickupTimer,
    Projectile,
}

impl IntKind {
    /// How many integer fields the component has.
    fn fields(self) -> usize {
        match self {
            IntKind::Pos | IntKind::Vel | IntKind::Hp | IntKind::Score => 2,
            IntKind::Projectile => 3,
            _ => 1,
        }
    }
}

impl Layout {
    fn of(name: &str) -> Layout {
        Layout::Ints(match name {
            "pos" => IntKind::Pos,
            "vel" => IntKind::Vel,
            "hp" => IntKind::Hp,
            "score" => IntKind::Score,
            "cooldown" => IntKind::Cooldown,
            "pickup" => IntKind::Pickup,
            "input" => IntKind::Input,
            "pickup_timer" => IntKind::PickupTimer,
            "projectile" => IntKind::Projectile,
            _ => return Layout::Whole,
        })
    }
}

/// A tick as an integer field (`Option<Tick>`: 0 for none, else the tick plus one).
fn opt_tick(t: Option<Tick>) -> i64 {
    t.map_or(0, |t| t.0.wrapping_add(1) as i64)
}

/// The integer fields of a value packed as integers (`pos`, `vel`, `hp`, …; §9 of
/// PROTOCOL.md lists them), unused fields zero; `None` for a value sent whole.
pub fn int_fields(value: &ComponentValue) -> Option<[i64; 3]> {
    ints(value)
}

fn ints(value: &ComponentValue) -> Option<[i64; 3]> {
    use ComponentValue as C;
    Some(match *value {
        C::Position { x, y } => [x.into(), y.into(), 0],
        C::Velocity { vx, vy } => [vx.into(), vy.into(), 0],
        C::Health { hp, respawn_at } => [hp.into(), opt_tick(respawn_at), 0],
        C::Score { kills, deaths } => [kills.into(), deaths.into(), 0],
        C::Cooldown { ready_at } => [ready_at.0 as i64, 0, 0],
        C::Pickup { heal } => [heal.into(), 0, 0],
        C::LastInput { input } => [input.0.into(), 0, 0],
        C::PickupTimer { next_at } => [next_at.0 as i64, 0, 0],
        C::Projectile {
            shooter,
            fired_at,
            expires_at,
        } => [shooter.0.into(), fired_at.0 as i64, expires_at.0 as i64],
        _ => return None,
    })
}

/// The value of `kind` from its integer fields, each checked against its type.
fn from_ints(kind: IntKind, f: [i64; 3]) -> Option<ComponentValue> {
    use ComponentValue as C;
    let i32_ = |v: i64| i32::try_from(v).ok();
    let u32_ = |v: i64| u32::try_from(v).ok();
    let tick = |v: i64| Tick(v as u64);
    let opt = |v: i64| (v != 0).then(|| Tick((v as u64).wrapping_sub(1)));
    Some(match kind {
        IntKind::Pos => C::Position {
            x: i32_(f[0])?,
            y: i32_(f[1])?,
        },
        IntKind::Vel => C::Velocity {
            vx: i32_(f[0])?,
            vy: i32_(f[1])?,
        },
        IntKind::Hp => C::Health {
            hp: i32_(f[0])?,
            respawn_at: opt(f[1]),
        },
        IntKind::Score => C::Score {
            kills: u32_(f[0])?,
            deaths: u32_(f[1])?,
        },
        IntKind::Cooldown => C::Cooldown {
            ready_at: tick(f[0]),
        },
        IntKind::Pickup => C::Pickup { heal: i32_(f[0])? },
        IntKind::Input => C::LastInput {
            input: CommandId(u32_(f[0])?),
        },
        IntKind::PickupTimer => C::PickupTimer {
            next_at: tick(f[0]),
        },
        IntKind::Projectile => C::Projectile {
            shooter: EntityId(u32_(f[0])?),
            fired_at: tick(f[1]),
            expires_at: tick(f[2]),
        },
    })
}

/// A signed integer as an unsigned one, small magnitudes small: 0, −1, 1, −2 … → 0, 1, 2, 3 …
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The public world as the tick frames describe it: every entity's public component values,
/// by tag. The server keeps one per match to encode deltas against; a client keeps one to
/// decode them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    table: ComponentTable,
    entities: BTreeMap<EntityId, Vec<Option<ComponentValue>>>,
}

impl World {
    pub fn new(table: ComponentTable) -> World {
        World {
            table,
            entities: BTreeMap::new(),
        }
    }

    pub fn table(&self) -> &ComponentTable {
        &self.table
    }

    /// Replace everything with these entities (a snapshot's).
    pub fn reset(&mut self, entities: &[EntityState]) -> Result<(), CompactError> {
        let mut fresh = BTreeMap::new();
        for e in entities {
            let slots = fresh
                .entry(e.id)
                .or_insert_with(|| vec![None; self.table.len()]);
            for value in &e.components {
                let tag = self
                    .table
                    .tag(value.name())
                    .ok_or_else(|| CompactError::UnknownComponent(value.name().to_string()))?;
                slots[tag] = Some(value.clone());
            }
        }
        self.entities = fresh;
        Ok(())
    }

    /// Replace everything with a snapshot's entities.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), CompactError> {
        self.reset(&snapshot.entities)
    }

    /// The value of component `tag` of `entity`.
    pub fn get(&self, entity: EntityId, tag: usize) -> Option<&ComponentValue> {
        self.entities.get(&entity)?.get(tag)?.as_ref()
    }

    /// The value of the component called `name` of `entity`.
    pub fn get_named(&self, entity: EntityId, name: &str) -> Option<&ComponentValue> {
        self.get(entity, self.table.tag(name)?)
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Every entity in id order, with its values in tag order.
    pub fn entities(
        &self,
    ) -> impl Iterator<Item = (EntityId, impl Iterator<Item = &ComponentValue>)> {
        self.entities
            .iter()
            .map(|(id, slots)| (*id, slots.iter().flatten()))
    }

    /// Every entity as an [`EntityState`] (values in tag order), in id order.
    pub fn states(&self) -> Vec<EntityState> {
        self.entities()
            .map(|(id, values)| EntityState {
                id,
                components: values.cloned().collect(),
            })
            .collect()
    }

    fn apply(
        &mut self,
        changed: Vec<(EntityId, Vec<(usize, ComponentValue)>)>,
        removed: &[EntityId],
    ) {
        let k = self.table.len();
        for (id, values) in changed {
            let slots = self.entities.entry(id).or_insert_with(|| vec![None; k]);
            for (tag, value) in values {
                slots[tag] = Some(value);
            }
        }
        for id in removed {
            self.entities.remove(id);
        }
    }

    /// Encode `delta` against this world, appending to `out`, and apply it. On an error
    /// nothing is written and the world is unchanged.
    pub fn encode_delta(&mut self, delta: &Delta, out: &mut Vec<u8>) -> Result<(), CompactError> {
        // Sorted, each component by its tag.
        let mut changed: Vec<(EntityId, Vec<(usize, ComponentValue)>)> =
            Vec::with_capacity(delta.changed.len());
        for e in &delta.changed {
            let mut values = Vec::with_capacity(e.components.len());
            for value in &e.components {
                let tag = self
                    .table
                    .tag(value.name())
                    .ok_or_else(|| CompactError::UnknownComponent(value.name().to_string()))?;
                if values.iter().any(|(t, _)| *t == tag) {
                    return Err(CompactError::Repeated(e.id));
                }
                if let Layout::Ints(_) = self.table.layouts[tag]
                    && ints(value).is_none()
                {
                    return Err(CompactError::Shape(value.name().to_string()));
                }
                values.push((tag, value.clone()));
            }
            values.sort_by_key(|(t, _)| *t);
            changed.push((e.id, values));
        }
        changed.sort_by_key(|(id, _)| *id);
        if let Some(w) = changed.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(CompactError::Repeated(w[0].0));
        }
        // Only what exists, or is in this delta, can be removed (a decoder bounds the count
        // by that).
        let mut removed: Vec<EntityId> = delta
            .removed
            .iter()
            .copied()
            .filter(|id| {
                self.entities.contains_key(id)
                    || changed.binary_search_by_key(id, |(e, _)| *e).is_ok()
            })
            .collect();
        removed.sort();
        removed.dedup();

        put_uvarint(out, changed.len() as u64);
        put_uvarint(out, removed.len() as u64);
        if let Some((first, _)) = changed.first() {
            put_uvarint(out, u64::from(first.0));
        }
        if let Some(first) = removed.first() {
            put_uvarint(out, u64::from(first.0));
        }
        let mut bits = BitWriter::new(out);
        // Sorted and without repeats: each id minus the previous one minus one.
        let gaps = |ids: &mut dyn Iterator<Item = EntityId>| -> Vec<u64> {
            let mut previous = None;
            ids.filter_map(|id| previous.replace(id.0).map(|p| u64::from(id.0 - p - 1)))
                .collect()
        };
        bits.column(&gaps(&mut changed.iter().map(|(id, _)| *id)));
        bits.column(&gaps(&mut removed.iter().copied()));
        let k = self.table.len() as u32;
        let mut previous = 0u64;
        for (_, values) in &changed {
            let mask = values.iter().fold(0u64, |m, (t, _)| m | 1 << t);
            if mask == previous {
                bits.put(1, 1);
            } else {
                bits.put(0, 1);
                bits.put(mask, k);
                previous = mask;
            }
        }
        // Per tag: the fields of old members as differences from their previous values, and
        // of new members as they are (each computed once), then one column per field.
        let (mut old, mut new): (Vec<[u64; 3]>, Vec<[u64; 3]>) = (Vec::new(), Vec::new());
        let mut column = Vec::new();
        let mut wholes: Vec<&ComponentValue> = Vec::new();
        for tag in 0..self.table.len() {
            let with_tag = changed.iter().filter_map(|(id, values)| {
                let (_, value) = values.iter().find(|(t, _)| *t == tag)?;
                Some((*id, values, value))
            });
            let Layout::Ints(kind) = self.table.layouts[tag] else {
                wholes.extend(with_tag.map(|(_, _, v)| v));
                continue;
            };
            old.clear();
            new.clear();
            for (id, values, value) in with_tag {
                let now = ints(value).unwrap_or_default();
                match self.get(id, tag).and_then(ints) {
                    Some(mut was) => {
                        if let Some((pos, vel)) = self.table.motion
                            && tag == pos
                        {
                            // Against where the velocity after this tick takes it.
                            let v = values
                                .iter()
                                .find(|(t, _)| *t == vel)
                                .map(|(_, v)| v)
                                .or_else(|| self.get(id, vel))
                                .and_then(ints)
                                .unwrap_or_default();
                            was[0] = was[0].wrapping_add(v[0]);
                            was[1] = was[1].wrapping_add(v[1]);
                        }
                        old.push(std::array::from_fn(|f| zigzag(now[f].wrapping_sub(was[f]))))
                    }
                    None => new.push(now.map(zigzag)),
                }
            }
            for group in [&old, &new] {
                for f in 0..kind.fields() {
                    column.clear();
                    column.extend(group.iter().map(|fields| fields[f]));
                    bits.column(&column);
                }
            }
        }
        bits.finish();
        let mut body = Vec::new();
        for value in wholes {
            body.clear();
            // Component values are plain data and always encode.
            let _ = encode_into(value, &mut body);
            put_uvarint(out, body.len() as u64);
            out.extend_from_slice(&body);
        }
        self.apply(changed, &removed);
        Ok(())
    }

    /// Decode a delta encoded against this world, and apply it; `tick` and `seq` are the
    /// frame's. On an error the world is unchanged.
    pub fn decode_delta(
        &mut self,
        bytes: &[u8],
        tick: Tick,
        seq: Seq,
    ) -> Result<Delta, DecodeError> {
        let (changed, removed) = self.decode(bytes, true)?;
        Ok(Delta {
            tick,
            seq,
            changed,
            removed,
        })
    }

    /// [`World::decode_delta`] without giving the delta back (for a client that needs only
    /// the world: a bot).
    pub fn apply_delta(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.decode(bytes, false).map(|_| ())
    }

    /// Decode and apply; the changed entities (if `keep`) and the removed ones.
    fn decode(
        &mut self,
        bytes: &[u8],
        keep: bool,
    ) -> Result<(Vec<EntityState>, Vec<EntityId>), DecodeError> {
        let mut r = Bytes::new(bytes);
        // Every changed entity takes at least one bit (its mask): bound the count by the bits
        // that remain. Only an entity that exists, or is in this delta, can be removed.
        let n_changed = r.count_bits(1)?;
        let n_removed = r.uvarint()?;
        let known = self.entities.len() + n_changed;
        if n_removed > known as u64 {
            return Err(r.invalid(format!("{n_removed} removed entities, of {known} known")));
        }
        let first_changed = if n_changed > 0 { Some(r.u32()?) } else { None };
        let first_removed = if n_removed > 0 { Some(r.u32()?) } else { None };
        let start = r.at;
        let mut bits = BitReader::new(&bytes[start..], start);
        let changed_ids = bits.ids(first_changed, n_changed)?;
        let removed_ids = bits.ids(first_removed, n_removed as usize)?;
        let k = self.table.len() as u32;
        let mut masks = Vec::with_capacity(n_changed);
        let mut previous = 0u64;
        for _ in 0..n_changed {
            if bits.get(1)? == 0 {
                previous = bits.get(k)?;
            }
            masks.push(previous);
        }
        // (entity index, tag, value), tag by tag; sorted by entity at the end.
        let mut values: Vec<(usize, usize, ComponentValue)> = Vec::with_capacity(n_changed * 2);
        // The integer fields read, (entity index, tag, kind, fields, old), made values once
        // every column is read: an old `pos` needs the entity's `vel` after this tick.
        let mut read: Vec<(usize, usize, IntKind, [i64; 3], bool)> =
            Vec::with_capacity(n_changed * 2);
        let mut fields: Vec<[i64; 3]> = vec![[0; 3]; n_changed];
        let mut wholes: Vec<(usize, usize)> = Vec::new();
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for tag in 0..self.table.len() {
            let member = |i: usize| masks[i] >> tag & 1 == 1;
            let Layout::Ints(kind) = self.table.layouts[tag] else {
                wholes.extend((0..n_changed).filter(|i| member(*i)).map(|i| (i, tag)));
                continue;
            };
            // Old members start from their previous values, new ones from zero.
            let m = kind.fields();
            old.clear();
            new.clear();
            for i in (0..n_changed).filter(|i| member(*i)) {
                match self.get(changed_ids[i], tag).and_then(ints) {
                    Some(base) => {
                        fields[i] = base;
                        old.push(i);
                    }
                    None => {
                        fields[i] = [0; 3];
                        new.push(i);
                    }
                }
            }
            for (group, relative) in [(&old, true), (&new, false)] {
                // Columns are field-major: one pass over the group per field.
                #[expect(clippy::needless_range_loop, reason = "f picks the column's field")]
                for f in 0..m {
                    let width = bits.width(group.len())?;
                    for &i in group {
                        let v = unzigzag(bits.get(width)?);
                        fields[i][f] = if relative {
                            fields[i][f].wrapping_add(v)
                        } else {
                            v
                        };
                    }
                }
            }
            read.extend(old.iter().map(|&i| (i, tag, kind, fields[i], true)));
            read.extend(new.iter().map(|&i| (i, tag, kind, fields[i], false)));
        }
        bits.end()?;
        if let Some((pos, vel)) = self.table.motion {
            // Each entity's `vel` read in this delta, by entity index (one pass, not a search
            // per position).
            let mut new_vel: Vec<Option<[i64; 3]>> = vec![None; n_changed];
            for &(i, tag, _, f, _) in &read {
                if tag == vel {
                    new_vel[i] = Some(f);
                }
            }
            for (i, tag, _, f, was_there) in &mut read {
                if *tag != pos || !*was_there {
                    continue;
                }
                let v = new_vel[*i]
                    .or_else(|| self.get(changed_ids[*i], vel).and_then(ints))
                    .unwrap_or_default();
                f[0] = f[0].wrapping_add(v[0]);
                f[1] = f[1].wrapping_add(v[1]);
            }
        }
        for (i, tag, kind, f, _) in read {
            let value = from_ints(kind, f).ok_or_else(|| DecodeError::Invalid {
                offset: start as u64,
                detail: format!(
                    "entity {}: a field of {:?} is out of its range",
                    changed_ids[i].0, self.table.names[tag]
                ),
            })?;
            values.push((i, tag, value));
        }
        r.at = start + bits.bytes_used();
        for (i, tag) in wholes {
            let at = r.at;
            let value: ComponentValue =
                r.msgpack(|| format!("component {:?}", self.table.names[tag]))?;
            if value.name() != self.table.names[tag] {
                return Err(DecodeError::Invalid {
                    offset: at as u64,
                    detail: format!(
                        "a {:?} value where tag {tag} is {:?}",
                        value.name(),
                        self.table.names[tag]
                    ),
                });
            }
            values.push((i, tag, value));
        }
        if !r.rest().is_empty() {
            return Err(DecodeError::TrailingBytes {
                used: r.at as u64,
                extra: r.rest().len() as u64,
            });
        }
        // Decoded whole: apply, and give the delta back entity by entity, in tag order.
        let slots = self.table.len();
        let mut changed: Vec<EntityState> = Vec::new();
        if keep {
            values.sort_unstable_by_key(|(i, tag, _)| (*i, *tag));
            changed = changed_ids
                .iter()
                .map(|id| EntityState {
                    id: *id,
                    components: Vec::new(),
                })
                .collect();
        }
        for (i, tag, value) in values {
            let entity = self
                .entities
                .entry(changed_ids[i])
                .or_insert_with(|| vec![None; slots]);
            if keep {
                entity[tag] = Some(value.clone());
                changed[i].components.push(value);
            } else {
                entity[tag] = Some(value);
            }
        }
        for id in &removed_ids {
            self.entities.remove(id);
        }
        Ok((changed, removed_ids))
    }
}

/// Append `v` as an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over bytes, with every read checked.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Bytes { bytes, at: 0 }
    }

    fn invalid(&self, detail: String) -> DecodeError {
        DecodeError::Invalid {
            offset: self.at as u64,
            detail,
        }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            offset: self.at as u64,
            len: self.bytes.len(),
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.at).ok_or_else(|| self.truncated())?;
        self.at += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                break;
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.at = start;
        Err(self.invalid("a varint longer than 64 bits".into()))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| self.invalid(format!("{v} does not fit 32 bits")))
    }

    /// A count of items that take at least `min_bytes` each: never more than the bytes left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let v = self.uvarint()?;
        let left = (self.bytes.len() - self.at) as u64;
        if v > left / min_bytes.max(1) as u64 {
            return Err(self.invalid(format!("a count of {v} with {left} bytes left")));
        }
        Ok(v as usize)
    }

    /// A count of items that take at least `min_bits` each.
    fn count_bits(&mut self, min_bits: u64) -> Result<usize, DecodeError> {
        let v = self.uvarint()?;
        let left = (self.bytes.len() - self.at) as u64 * 8;
        if v > left / min_bits.max(1) {
            return Err(self.invalid(format!("a count of {v} with {left} bits left")));
        }
        Ok(v as usize)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| self.truncated())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A uvarint length, then that many bytes of one MessagePack value.
    fn msgpack<T: serde::de::DeserializeOwned>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<T, DecodeError> {
        let len = self.count(1)?;
        let at = self.at;
        let body = self.take(len)?;
        decode_with(body, DecodeLimits::TRUSTED).map_err(|e| DecodeError::Invalid {
            offset: at as u64,
            detail: format!("{}: {e}", what()),
        })
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
}

/// Bits appended to a byte buffer, least significant first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// The low `bits` bits of `v` (0 to 64).
    fn put(&mut self, mut v: u64, mut bits: u32) {
        while bits > 0 {
            let take = bits.min(64 - self.n);
            let part = if take == 64 {
                v
            } else {
                v & ((1u64 << take) - 1)
            };
            self.acc |= part << self.n;
            self.n += take;
            v = if take == 64 { 0 } else { v >> take };
            bits -= take;
            if self.n == 64 {
                self.out.extend_from_slice(&self.acc.to_le_bytes());
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    /// A column: nothing if empty, else its width in 7 bits and each value in that width.
    fn column(&mut self, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let max = values.iter().fold(0, |m, v| m | v);
        let width = 64 - max.leading_zeros();
        self.put(u64::from(width), WIDTH_BITS);
        for v in values {
            self.put(*v, width);
        }
    }

    /// Pad the last byte with zeros.
    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Bits read from bytes, least significant first; `base` is where the bytes start in the frame
/// (for error offsets).
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        BitReader {
            bytes,
            pos: 0,
            base,
        }
    }

    fn left(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    fn get(&mut self, bits: u32) -> Result<u64, DecodeError> {
        if bits as usize > self.left() {
            return Err(DecodeError::Truncated {
                offset: (self.base + self.pos / 8) as u64,
                len: self.base + self.bytes.len(),
            });
        }
        // Fast path: up to 56 bits from one unaligned little-endian load.
        let at = self.pos / 8;
        if bits <= 56
            && let Some(word) = self.bytes.get(at..at + 8)
        {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            let off = (self.pos % 8) as u32;
            let v = (u64::from_le_bytes(le) >> off) & ((1u64 << bits) - 1);
            self.pos += bits as usize;
            return Ok(v);
        }
        let mut v = 0u64;
        let mut got = 0u32;
        while got < bits {
            let byte = self.bytes[self.pos / 8];
            let off = (self.pos % 8) as u32;
            let take = (8 - off).min(bits - got);
            let part = u64::from(byte >> off) & ((1u64 << take) - 1);
            v |= part << got;
            got += take;
            self.pos += take as usize;
        }
        Ok(v)
    }

    /// The width of a column of `n` values (nothing is read for an empty one), checked
    /// against the bits that remain.
    fn width(&mut self, n: usize) -> Result<u32, DecodeError> {
        if n == 0 {
            return Ok(0);
        }
        let width = self.get(WIDTH_BITS)? as u32;
        if width > 64 {
            return Err(DecodeError::Invalid {
                offset: (self.base + self.pos / 8) as u64,
                detail: format!("a column {width} bits wide"),
            });
        }
        if (n as u64).saturating_mul(u64::from(width)) > self.left() as u64 {
            return Err(DecodeError::Truncated {
                offset: (self.base + self.pos / 8) as u64,
                len: self.base + self.bytes.len(),
            });
        }
        Ok(width)
    }

    /// `n` increasing ids from the first and a column of gaps.
    fn ids(&mut self, first: Option<u32>, n: usize) -> Result<Vec<EntityId>, DecodeError> {
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let width = self.width(n - 1)?;
        let mut ids = Vec::with_capacity(n);
        let mut id = first;
        ids.push(EntityId(id));
        for _ in 1..n {
            let gap = self.get(width)?;
            id = u32::try_from(gap)
                .ok()
                .and_then(|g| id.checked_add(g))
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| DecodeError::Invalid {
                    offset: (self.base + self.pos / 8) as u64,
                    detail: "an entity id past 2^32".into(),
                })?;
            ids.push(EntityId(id));
        }
        Ok(ids)
    }

    /// The padding must be zeros.
    fn end(&self) -> Result<(), DecodeError> {
        let used = self.bytes_used();
        let pad = (used * 8 - self.pos) as u32;
        if pad > 0 && self.bytes[used - 1] >> (8 - pad) != 0 {
            return Err(DecodeError::Invalid {
                offset: (self.base + used - 1) as u64,
                detail: "padding bits are not zero".into(),
            });
        }
        Ok(())
    }

    fn bytes_used(&self) -> usize {
        self.pos.div_ceil(8)
    }
}
