// The client against docs/PROTOCOL.md's golden bytes, with no server: every example message
// decodes to its JSON form and encodes back to the same bytes, and the sample tick frames
// decode and apply to the deltas the document describes. Then crafted frames: every cut and
// every flipped byte is refused or decoded, never half-applied.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { World, convert, decode, encode, readTickFrame, toWire, DecodeError, type Snapshot } from "../src/index.js";

const doc = readFileSync(fileURLToPath(new URL("../../../../docs/PROTOCOL.md", import.meta.url)), "utf8");

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.trim().split(/\s+/).map((h) => parseInt(h, 16)));
}

interface Example {
  name: string;
  ty: string;
  hex: string;
  json: string;
}

function examples(): Example[] {
  const out: Example[] = [];
  const re = /#### Example: (.+)\n\nType: (\w+)\n```hex\n([\s\S]*?)```\n```json\n([\s\S]*?)```/g;
  for (const m of doc.matchAll(re)) out.push({ name: m[1]!, ty: m[2]!, hex: m[3]!, json: m[4]! });
  return out;
}

test("every example message of PROTOCOL.md decodes to its JSON form and encodes to its bytes", () => {
  const all = examples();
  assert.ok(all.length >= 20, `found ${all.length} examples`);
  for (const ex of all) {
    const bytes = hex(ex.hex);
    const fromBytes = convert(decode(bytes), ex.ty, "msgpack", ex.name);
    const fromJson = convert(JSON.parse(ex.json), ex.ty, "json", ex.name);
    assert.deepEqual(fromBytes, fromJson, ex.name);
    assert.deepEqual(encode(toWire(fromBytes, ex.ty)), bytes, `${ex.name} encodes to the same bytes`);
  }
});

test("state hashes are bigints from both forms", () => {
  const ex = examples().find((e) => e.ty === "SpectatorMessage" && e.json.includes('"hash"'));
  assert.ok(ex);
  const m = convert(JSON.parse(ex.json), "SpectatorMessage", "json") as { tick: { hash: bigint } };
  assert.equal(typeof m.tick.hash, "bigint");
  assert.equal(m.tick.hash, BigInt(JSON.parse(ex.json).tick.hash));
});

function frames(): Uint8Array[] {
  return ["quiet", "drift", "spawn_and_remove", "motion"].map((name) => {
    const m = new RegExp(`#### Tick frame: ${name}\\n\\n\`\`\`hex\\n([\\s\\S]*?)\`\`\``).exec(doc);
    assert.ok(m, name);
    return hex(m[1]!);
  });
}

const TABLE = ["player", "pos", "vel", "hp", "input"];
const START: Snapshot = {
  tick: 120,
  seq: 39,
  entities: [
    { id: 2, components: [{ player: { player: 1, name: "ana" } }, { pos: { x: 1000, y: 2000 } }, { input: { input: 7 } }] },
    { id: 3, components: [{ player: { player: 2, name: "bo" } }, { pos: { x: 5000, y: 500 } }, { input: { input: 3 } }] },
  ],
};

test("the sample tick frames of PROTOCOL.md apply to the deltas it describes", () => {
  const world = new World(TABLE);
  world.reset(START);
  const [quiet, drift, spawn, motion] = frames().map(readTickFrame);

  const q = world.apply(quiet!);
  assert.deepEqual(q, { tick: 121, seq: 39, changed: [], removed: [] });

  assert.deepEqual(drift!.acks, [8]);
  const d = world.apply(drift!);
  assert.deepEqual(d, {
    tick: 122,
    seq: 41,
    changed: [
      { id: 2, components: [{ pos: { x: 1005, y: 1995 } }, { input: { input: 8 } }] },
      { id: 3, components: [{ pos: { x: 4880, y: 620 } }, { input: { input: 4 } }] },
    ],
    removed: [],
  });

  assert.deepEqual(spawn!.acks, [9, 10]);
  assert.deepEqual(spawn!.duplicates, [{ id: 8, tick: 122 }]);
  assert.deepEqual(spawn!.rejections, [{ id: 11, rule: "speed_limit", detail: "too fast" }]);
  const s = world.apply(spawn!);
  assert.deepEqual(s, {
    tick: 123,
    seq: 43,
    changed: [{ id: 9, components: [{ pos: { x: -40, y: 70 } }, { vel: { vx: 400, vy: 0 } }, { hp: { hp: 100, respawn_at: null } }] }],
    removed: [3],
  });
  assert.deepEqual(world.ids(), [2, 9]);
  assert.deepEqual(world.get(2, "pos"), { x: 1005, y: 1995 });
  assert.equal(world.get(9, "input"), undefined);

  // Entity 9's position travels against its new velocity: (−40, 70) + (390, 10).
  const m = world.apply(motion!);
  assert.deepEqual(m, {
    tick: 124,
    seq: 43,
    changed: [
      { id: 2, components: [{ pos: { x: 1010, y: 1990 } }] },
      { id: 9, components: [{ pos: { x: 350, y: 80 } }, { vel: { vx: 390, vy: 10 } }] },
    ],
    removed: [],
  });
});

test("a cut or altered frame is refused and leaves the world as it was, or applies whole", () => {
  const all = frames();
  for (let f = 0; f < all.length; f++) {
    const bytes = all[f]!;
    const variants: Uint8Array[] = [];
    for (let cut = 0; cut < bytes.length; cut++) variants.push(bytes.subarray(0, cut));
    for (let i = 0; i < bytes.length; i++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const b = Uint8Array.from(bytes);
        b[i]! ^= flip;
        variants.push(b);
      }
    }
    for (const v of variants) {
      const world = new World(TABLE);
      world.reset(START);
      for (const earlier of all.slice(0, f)) world.apply(readTickFrame(earlier));
      const before = JSON.stringify(world.snapshot());
      try {
        const frame = readTickFrame(v);
        if (frame.tick !== world.tick + 1) continue;
        world.apply(frame);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `only DecodeErrors: ${String(e)}`);
        assert.equal(JSON.stringify(world.snapshot()), before, "a refused frame changes nothing");
      }
    }
  }
});

test("a delta may change at most the mirror's limit of entities", () => {
  // 300,000 changed entities with one-bit masks ("same as before", the empty mask): 37.5 KB.
  const n = 300_000;
  const bits = new Uint8Array(Math.ceil((7 + n) / 8));
  for (let i = 7; i < 7 + n; i++) bits[i >> 3]! |= 1 << (i & 7);
  const header = [0x10, 0x79, 0x00, 0xe0, 0xa7, 0x12, 0x00, 0x01];
  const world = new World(TABLE);
  world.reset(START);
  assert.throws(() => world.apply(readTickFrame(Uint8Array.from([...header, ...bits]))), /limit/);
  assert.equal(world.tick, 120);
});

test("crafted counts are refused before anything is allocated", () => {
  // 2^40 changed entities in a 6-byte delta; 2^31 acks in a short frame.
  const world = new World(TABLE);
  world.reset(START);
  assert.throws(() => world.apply(readTickFrame(Uint8Array.from([0x10, 0x79, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x00]))), DecodeError);
  assert.throws(() => readTickFrame(Uint8Array.from([0x11, 0x79, 0x00, 0x80, 0x80, 0x80, 0x80, 0x08, 0x01])), DecodeError);
  assert.throws(() => decode(Uint8Array.from([0xdd, 0x7f, 0xff, 0xff, 0xff, 0x00])), DecodeError);
  assert.throws(() => decode(Uint8Array.from([0xdf, 0x7f, 0xff, 0xff, 0xff, 0x00])), DecodeError);
});

test("MessagePack: every integer width round-trips, 64-bit beyond 2^53 as bigint, deep nesting is refused", () => {
  const ints: (number | bigint)[] = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 2n ** 64n - 1n];
  for (const v of [...ints, ...ints.map((x) => (typeof x === "bigint" ? -(2n ** 63n) : -x))]) {
    const back = decode(encode(v));
    assert.equal(BigInt(back as number | bigint), BigInt(v), `round trip of ${v}`);
  }
  assert.equal(typeof decode(encode(2n ** 60n)), "bigint");
  assert.equal(typeof decode(encode(2 ** 40)), "number");
  // A "__proto__" key stays a plain key both ways.
  const withProto = JSON.parse('{"a":[1,"x",null,true],"__proto__":5}');
  const back = decode(encode(withProto)) as { [k: string]: unknown };
  assert.deepEqual(back, withProto);
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  assert.throws(() => encode(deep));
  const bytes = new Uint8Array(100).fill(0x91);
  assert.throws(() => decode(bytes), DecodeError);
  assert.throws(() => decode(Uint8Array.from([0x01, 0x02])), /trailing/);
  assert.throws(() => decode(Uint8Array.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0])), /float/);
  assert.throws(() => decode(Uint8Array.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02])), /twice/);
  const nested = new Uint8Array(18).fill(0x91);
  nested[17] = 0x01;
  assert.throws(() => decode(nested), /nested/);
});
