// Protocol 2's tick frame and its compact delta (PROTOCOL.md section 10), and the World they
// are decoded against: the mirror of the server's public world.
//
// Every count is checked against the bytes that remain before anything is allocated, every
// field against its type, and a frame that cannot be applied leaves the world as it was.

import type { ComponentValue, EntityId, EntityState, Rejected, Seq, Snapshot, Tick } from "./generated/protocol.js";
import { DecodeError, decode } from "./msgpack.js";
import { convert } from "./wire.js";

/** One tick as one player receives it: what happened to their commands, and the encoded delta. */
export interface TickFrame {
  tick: Tick;
  /** Events sequenced in this tick: the frame's seq is the previous tick's plus this. */
  events: number;
  acks: number[];
  duplicates: { id: number; tick: Tick }[];
  rejections: Rejected[];
  /** The delta, encoded against the world as of `tick − 1`. */
  delta: Uint8Array;
}

/** What a delta says once decoded: entities with only their changed components, and the removed ones. */
export interface Delta {
  tick: Tick;
  seq: Seq;
  changed: EntityState[];
  removed: EntityId[];
}

const FLAG_ACKS = 1;
const FLAG_DUPLICATES = 2;
const FLAG_REJECTIONS = 4;

/** True when a server frame is a tick frame (first byte 0x10 to 0x17), not MessagePack. */
export function isTickFrame(bytes: Uint8Array): boolean {
  return bytes.length > 0 && (bytes[0]! & 0xf8) === 0x10;
}

class Bytes {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  fail(detail: string, at = this.at): never {
    throw new DecodeError(at, detail);
  }

  left(): number {
    return this.bytes.length - this.at;
  }

  u8(): number {
    if (this.at >= this.bytes.length) this.fail("truncated");
    return this.bytes[this.at++]!;
  }

  /** An unsigned LEB128 varint, as a number: the protocol's varints stay below 2^53. */
  uvarint(): number {
    const start = this.at;
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.u8();
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(v)) this.fail("a varint beyond 2^53", start);
        return v;
      }
      scale *= 128;
    }
    return this.fail("a varint longer than 64 bits", start);
  }

  u32(): number {
    const at = this.at;
    const v = this.uvarint();
    if (v > 0xffffffff) this.fail(`${v} does not fit 32 bits`, at);
    return v;
  }

  /** A count of items of at least `minBytes` each: never more than the bytes left. */
  count(minBytes: number): number {
    const at = this.at;
    const v = this.uvarint();
    if (v > Math.floor(this.left() / minBytes)) this.fail(`a count of ${v} with ${this.left()} bytes left`, at);
    return v;
  }

  /** A uvarint length and that many bytes of MessagePack. */
  msgpack(): { value: ReturnType<typeof decode>; at: number } {
    const len = this.count(1);
    const at = this.at;
    const body = this.bytes.subarray(at, at + len);
    this.at += len;
    try {
      return { value: decode(body), at };
    } catch (e) {
      if (e instanceof DecodeError) this.fail(`in a value: ${e.message}`, at + e.offset);
      throw e;
    }
  }
}

/** Read a tick frame's header and player part; the delta stays encoded. */
export function readTickFrame(bytes: Uint8Array): TickFrame {
  const r = new Bytes(bytes);
  const first = r.u8();
  if ((first & 0xf8) !== 0x10) r.fail(`0x${first.toString(16)} does not start a tick frame`, 0);
  const frame: TickFrame = { tick: r.uvarint(), events: r.uvarint(), acks: [], duplicates: [], rejections: [], delta: bytes };
  if (first & FLAG_ACKS) {
    const n = r.count(1);
    let previous = -1;
    for (let i = 0; i < n; i++) {
      const v = r.u32();
      const id = previous < 0 ? v : previous + v + 1;
      if (id > 0xffffffff) r.fail("an ack id overflows 32 bits");
      frame.acks.push(id);
      previous = id;
    }
  }
  if (first & FLAG_DUPLICATES) {
    const n = r.count(2);
    for (let i = 0; i < n; i++) frame.duplicates.push({ id: r.u32(), tick: r.uvarint() });
  }
  if (first & FLAG_REJECTIONS) {
    const n = r.count(2);
    for (let i = 0; i < n; i++) {
      const { value, at } = r.msgpack();
      try {
        frame.rejections.push(convert(value, "Rejected", "msgpack", "rejection") as Rejected);
      } catch (e) {
        r.fail(e instanceof Error ? e.message : String(e), at);
      }
    }
  }
  frame.delta = bytes.subarray(r.at);
  return frame;
}

// ---- layouts -------------------------------------------------------------------------------

/** The components packed as integer fields, by wire name, with their field names. */
const INT_LAYOUTS: { [name: string]: string[] } = {
  pos: ["x", "y"],
  vel: ["vx", "vy"],
  hp: ["hp", "respawn_at"],
  score: ["kills", "deaths"],
  cooldown: ["ready_at"],
  pickup: ["heal"],
  input: ["input"],
  pickup_timer: ["next_at"],
  projectile: ["shooter", "fired_at", "expires_at"],
};

/** The inner value (`{x, y}`) of a component value (`{pos: {x, y}}`), and its name. */
export function componentName(value: ComponentValue): string {
  return typeof value === "string" ? value : Object.keys(value)[0]!;
}

type Inner = { [k: string]: unknown };

/** The integer fields of an integer-layout component's inner value (unused fields zero). */
function fieldsOf(name: string, v: Inner): number[] {
  switch (name) {
    case "pos":
      return [v.x as number, v.y as number, 0];
    case "vel":
      return [v.vx as number, v.vy as number, 0];
    case "hp":
      return [v.hp as number, v.respawn_at === null ? 0 : (v.respawn_at as number) + 1, 0];
    case "score":
      return [v.kills as number, v.deaths as number, 0];
    case "cooldown":
      return [v.ready_at as number, 0, 0];
    case "pickup":
      return [v.heal as number, 0, 0];
    case "input":
      return [v.input as number, 0, 0];
    case "pickup_timer":
      return [v.next_at as number, 0, 0];
    default:
      return [v.shooter as number, v.fired_at as number, v.expires_at as number];
  }
}

function outOfRange(name: string, field: number, v: number, at: () => string): never {
  throw new DecodeError(0, `${at()}: ${name}.${INT_LAYOUTS[name]![field]} = ${v} is out of its range`);
}

/** The component `name` from its integer fields, each checked against its type. */
function valueOf(name: string, f: number[], at: () => string): ComponentValue {
  const i32 = (i: number) => {
    const v = f[i]!;
    return v >= -0x80000000 && v <= 0x7fffffff && Number.isInteger(v) ? v : outOfRange(name, i, v, at);
  };
  const u32 = (i: number) => {
    const v = f[i]!;
    return v >= 0 && v <= 0xffffffff && Number.isInteger(v) ? v : outOfRange(name, i, v, at);
  };
  const tick = (i: number) => {
    const v = f[i]!;
    return v >= 0 && Number.isSafeInteger(v) ? v : outOfRange(name, i, v, at);
  };
  switch (name) {
    case "pos":
      return { pos: { x: i32(0), y: i32(1) } };
    case "vel":
      return { vel: { vx: i32(0), vy: i32(1) } };
    case "hp": {
      const r = tick(1);
      return { hp: { hp: i32(0), respawn_at: r === 0 ? null : r - 1 } };
    }
    case "score":
      return { score: { kills: u32(0), deaths: u32(1) } };
    case "cooldown":
      return { cooldown: { ready_at: tick(0) } };
    case "pickup":
      return { pickup: { heal: i32(0) } };
    case "input":
      return { input: { input: u32(0) } };
    case "pickup_timer":
      return { pickup_timer: { next_at: tick(0) } };
    default:
      return { projectile: { shooter: u32(0), fired_at: tick(1), expires_at: tick(2) } };
  }
}

// ---- the bit section -----------------------------------------------------------------------

const TWO_52 = 2 ** 52;

class BitReader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
  ) {}

  left(): number {
    return this.bytes.length * 8 - this.pos;
  }

  fail(detail: string): never {
    throw new DecodeError(this.base + (this.pos >> 3), detail);
  }

  /** `bits` bits (up to 52), least significant first, as a number. */
  get(bits: number): number {
    if (bits === 0) return 0;
    if (bits > this.left()) this.fail("truncated");
    const at = this.pos >> 3;
    const off = this.pos & 7;
    if (bits <= 24) {
      // One 32-bit window holds them (off + bits <= 31); bytes past the end read as zero.
      const b = this.bytes;
      const window = (b[at]! | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
      this.pos += bits;
      return (window >>> off) & ((1 << bits) - 1);
    }
    let v = 0;
    let got = 0;
    while (got < bits) {
      const byte = this.bytes[this.pos >> 3]!;
      const o = this.pos & 7;
      const take = Math.min(8 - o, bits - got);
      v += ((byte >> o) & ((1 << take) - 1)) * 2 ** got;
      got += take;
      this.pos += take;
    }
    return v;
  }

  getBig(bits: number): bigint {
    const low = BigInt(this.get(Math.min(bits, 32)));
    return bits <= 32 ? low : low | (BigInt(this.get(bits - 32)) << 32n);
  }

  width(n: number): number {
    if (n === 0) return 0;
    const w = this.get(7);
    if (w > 64) this.fail(`a column ${w} bits wide`);
    if (n * w > this.left()) this.fail("truncated");
    return w;
  }

  /** One zig-zag value of a column `width` bits wide, added (in 64 bits) to `base`. */
  signed(width: number, base: number): number {
    if (width <= 52) {
      const u = this.get(width);
      const d = u % 2 === 0 ? u / 2 : -(u + 1) / 2;
      const v = base + d;
      return Math.abs(v) < TWO_52 ? v : this.exact(BigInt(base) + BigInt(d));
    }
    const u = this.getBig(width);
    const d = (u >> 1n) ^ -(u & 1n);
    return this.exact(BigInt.asIntN(64, BigInt(base) + d));
  }

  exact(v: bigint): number {
    // Out of every field's range; reported by the range check with the component's name.
    return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER) ? Number.NaN : Number(v);
  }

  ids(first: number | null, n: number): number[] {
    if (first === null) return [];
    const width = this.width(n - 1);
    const ids = [first];
    let id = first;
    for (let i = 1; i < n; i++) {
      id = id + this.get(width) + 1;
      if (id > 0xffffffff) this.fail("an entity id past 2^32");
      ids.push(id);
    }
    return ids;
  }

  end(): number {
    const used = (this.pos + 7) >> 3;
    const pad = used * 8 - this.pos;
    if (pad > 0 && this.bytes[used - 1]! >> (8 - pad) !== 0) {
      throw new DecodeError(this.base + used - 1, "padding bits are not zero");
    }
    return used;
  }
}

// ---- the world -----------------------------------------------------------------------------

/**
 * The public world as tick frames describe it: each entity's component values, by tag. A
 * client keeps one, starts it from a snapshot and applies each tick frame's delta to it.
 */
export class World {
  /** The component table of `Joined`: a component's tag is its index. */
  readonly names: readonly string[];
  private readonly layouts: (string[] | null)[];
  /** The tags of `pos` and `vel` when the table has both: an old position travels against its motion. */
  private readonly motion: [number, number] | null;
  private readonly entitiesById = new Map<number, (ComponentValue | undefined)[]>();
  /** The tick and seq the world is at. */
  tick: Tick = 0;
  seq: Seq = 0;

  /**
   * `maxChanged` bounds the entities one delta may change (default 2^18), so that a crafted
   * frame cannot make the mirror allocate in proportion to its bits.
   */
  constructor(
    components: readonly string[],
    readonly maxChanged: number = 1 << 18,
  ) {
    if (components.length > 64) throw new RangeError(`${components.length} components: a table has at most 64`);
    if (new Set(components).size !== components.length) throw new RangeError("a component table names a component twice");
    this.names = [...components];
    this.layouts = components.map((n) => INT_LAYOUTS[n] ?? null);
    const pos = components.indexOf("pos");
    const vel = components.indexOf("vel");
    this.motion = pos >= 0 && vel >= 0 ? [pos, vel] : null;
  }

  /** Replace everything with a snapshot's entities, tick and seq. */
  reset(snapshot: Snapshot): void {
    const next = new Map<number, (ComponentValue | undefined)[]>();
    for (const e of snapshot.entities) {
      // An id listed twice adds to the same entity, as the Rust client does.
      const slots: (ComponentValue | undefined)[] = next.get(e.id) ?? new Array(this.names.length);
      for (const c of e.components) {
        const tag = this.names.indexOf(componentName(c));
        if (tag < 0) throw new DecodeError(0, `entity ${e.id}: ${componentName(c)} is not in the component table`);
        slots[tag] = c;
      }
      next.set(e.id, slots);
    }
    this.entitiesById.clear();
    for (const [id, slots] of next) this.entitiesById.set(id, slots);
    this.tick = snapshot.tick;
    this.seq = snapshot.seq;
  }

  /** How many entities there are. */
  get size(): number {
    return this.entitiesById.size;
  }

  has(entity: EntityId): boolean {
    return this.entitiesById.has(entity);
  }

  /** Entity ids, in increasing order. */
  ids(): EntityId[] {
    return [...this.entitiesById.keys()].sort((a, b) => a - b);
  }

  /** The inner value of component `name` of `entity` (for example `{x, y}` for `pos`), or undefined. */
  get<T = { [field: string]: unknown }>(entity: EntityId, name: string): T | undefined {
    const tag = this.names.indexOf(name);
    const value = tag < 0 ? undefined : this.entitiesById.get(entity)?.[tag];
    if (value === undefined) return undefined;
    return (typeof value === "string" ? null : (value as { [k: string]: unknown })[name]) as T;
  }

  /** Every entity with all its components in tag order, sorted by id: the snapshot's shape. */
  entities(): EntityState[] {
    return this.ids().map((id) => ({
      id,
      components: this.entitiesById.get(id)!.filter((c): c is ComponentValue => c !== undefined),
    }));
  }

  /** The world as a Snapshot. */
  snapshot(): Snapshot {
    return { tick: this.tick, seq: this.seq, entities: this.entities() };
  }

  /**
   * Decode the frame's delta against this world and apply it; the world then is at the
   * frame's tick. Returns the decoded delta (or null with `keep` false). On an error the
   * world is unchanged.
   */
  apply(frame: TickFrame, keep = true): Delta | null {
    const changed = this.decode(frame.delta, keep);
    this.tick = frame.tick;
    this.seq += frame.events;
    return keep ? { tick: frame.tick, seq: this.seq, changed: changed.changed!, removed: changed.removed } : null;
  }

  private decode(bytes: Uint8Array, keep: boolean): { changed: EntityState[] | null; removed: number[] } {
    const r = new Bytes(bytes);
    const nChanged = r.uvarint();
    if (nChanged > r.left() * 8) r.fail(`${nChanged} changed entities with ${r.left()} bytes left`, 0);
    if (nChanged > this.maxChanged) r.fail(`${nChanged} changed entities, over the mirror's limit of ${this.maxChanged}`, 0);
    const nRemoved = r.uvarint();
    const known = this.entitiesById.size + nChanged;
    if (nRemoved > known) r.fail(`${nRemoved} removed entities, of ${known} known`);
    const firstChanged = nChanged > 0 ? r.u32() : null;
    const firstRemoved = nRemoved > 0 ? r.u32() : null;
    const start = r.at;
    const bits = new BitReader(bytes.subarray(start), start);
    const changedIds = bits.ids(firstChanged, nChanged);
    const removedIds = bits.ids(firstRemoved, nRemoved);
    const k = this.names.length;
    // Each mask in 24-bit parts (a table has at most 64 components), for integer bit tests.
    const m0 = new Uint32Array(nChanged);
    const m1 = new Uint32Array(nChanged);
    const m2 = new Uint32Array(nChanged);
    let p0 = 0;
    let p1 = 0;
    let p2 = 0;
    for (let i = 0; i < nChanged; i++) {
      if (bits.get(1) === 0) {
        p0 = bits.get(Math.min(k, 24));
        p1 = k > 24 ? bits.get(Math.min(k - 24, 24)) : 0;
        p2 = k > 48 ? bits.get(k - 48) : 0;
      }
      m0[i] = p0;
      m1[i] = p1;
      m2[i] = p2;
    }
    const has = (i: number, tag: number): boolean =>
      ((tag < 24 ? m0[i]! >>> tag : tag < 48 ? m1[i]! >>> (tag - 24) : m2[i]! >>> (tag - 48)) & 1) === 1;
    // Each changed entity's new values by tag, applied only once the whole delta has decoded.
    // Rows are made only for entities that have values (a crafted frame may list millions with none).
    const values: (ComponentValue | undefined)[][] = new Array(nChanged);
    const wholes: [number, number][] = [];
    const members: number[] = [];
    const old: number[] = [];
    const fresh: number[] = [];
    const fields: number[][] = new Array(nChanged);
    // Old positions, read against their motion: made values once `vel` is read too.
    const moved: [number, number[]][] = [];
    for (let tag = 0; tag < k; tag++) {
      members.length = 0;
      for (let i = 0; i < nChanged; i++) if (has(i, tag)) members.push(i);
      if (members.length === 0) continue;
      const name = this.names[tag]!;
      const layout = this.layouts[tag];
      if (!layout) {
        for (const i of members) wholes.push([i, tag]);
        continue;
      }
      old.length = 0;
      fresh.length = 0;
      for (const i of members) {
        const base = this.entitiesById.get(changedIds[i]!)?.[tag];
        if (base !== undefined) {
          fields[i] = fieldsOf(name, (base as { [k: string]: { [f: string]: unknown } })[name]!);
          old.push(i);
        } else {
          fields[i] = [0, 0, 0];
          fresh.push(i);
        }
      }
      for (let f = 0; f < layout.length; f++) {
        const width = bits.width(old.length);
        for (const i of old) fields[i]![f] = bits.signed(width, fields[i]![f]!);
      }
      for (let f = 0; f < layout.length; f++) {
        const width = bits.width(fresh.length);
        for (const i of fresh) fields[i]![f] = bits.signed(width, 0);
      }
      if (this.motion && tag === this.motion[0]) {
        for (const i of old) moved.push([i, fields[i]!]);
        for (const i of fresh) (values[i] ??= new Array(k))[tag] = valueOf(name, fields[i]!, () => `entity ${changedIds[i]}`);
        continue;
      }
      for (const i of members) (values[i] ??= new Array(k))[tag] = valueOf(name, fields[i]!, () => `entity ${changedIds[i]}`);
    }
    if (this.motion) {
      const [posTag, velTag] = this.motion;
      for (const [i, f] of moved) {
        const vel = (values[i]?.[velTag] ?? this.entitiesById.get(changedIds[i]!)?.[velTag]) as { vel: { vx: number; vy: number } } | undefined;
        if (vel) {
          f[0]! += vel.vel.vx;
          f[1]! += vel.vel.vy;
        }
        (values[i] ??= new Array(k))[posTag] = valueOf("pos", f, () => `entity ${changedIds[i]}`);
      }
    }
    r.at = start + bits.end();
    for (const [i, tag] of wholes) {
      const { value, at } = r.msgpack();
      let component: ComponentValue;
      try {
        component = convert(value, "ComponentValue", "msgpack", "component") as ComponentValue;
      } catch (e) {
        return r.fail(e instanceof Error ? e.message : String(e), at);
      }
      if (componentName(component) !== this.names[tag]) {
        r.fail(`a ${JSON.stringify(componentName(component))} value where tag ${tag} is ${JSON.stringify(this.names[tag])}`, at);
      }
      (values[i] ??= new Array(k))[tag] = component;
    }
    if (r.left() !== 0) r.fail(`${r.left()} trailing bytes after the delta`);

    // Decoded whole: apply.
    const changed: EntityState[] | null = keep ? [] : null;
    for (let i = 0; i < nChanged; i++) {
      const id = changedIds[i]!;
      let slots = this.entitiesById.get(id);
      const row = values[i];
      const components: ComponentValue[] = [];
      for (let tag = 0; row && tag < k; tag++) {
        const value = row[tag];
        if (value === undefined) continue;
        if (!slots) {
          slots = new Array(k);
          this.entitiesById.set(id, slots);
        }
        slots[tag] = value;
        components.push(value);
      }
      changed?.push({ id, components });
    }
    for (const id of removedIds) this.entitiesById.delete(id);
    return { changed, removed: removedIds };
  }
}
