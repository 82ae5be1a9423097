// The client's decode+apply time per delta, in Node, on the tick frames of real arena
// matches (written by `cargo run --release -p tickforge-benches --bin tick-frames`):
//   node dist/bench/decode.js FRAMES...
// Each round replays every file's frames into a fresh mirror; the files take turns, round by
// round, so that they meet the same machine. Prints the median and the best round, in µs per
// delta, for decoding and applying (`keep`: the changed entities handed back too) and for
// applying only.

import { readFileSync } from "node:fs";
import { World, convert, decode, readTickFrame, type Snapshot } from "../src/index.js";

interface Series {
  name: string;
  components: string[];
  start: Snapshot;
  frames: Uint8Array[];
}

function load(path: string): Series {
  const bytes = new Uint8Array(readFileSync(path));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const next = () => {
    const len = view.getUint32(at, true);
    const part = bytes.subarray(at + 4, at + 4 + len);
    at += 4 + len;
    return part;
  };
  const [components, start] = decode(next()) as [string[], unknown];
  const frames: Uint8Array[] = [];
  while (at < bytes.length) frames.push(next());
  return { name: path, components, start: convert(start, "Snapshot", "msgpack") as Snapshot, frames };
}

function round(s: Series, keep: boolean): number {
  const world = new World(s.components);
  world.reset(s.start);
  const t0 = process.hrtime.bigint();
  for (const f of s.frames) world.apply(readTickFrame(f), keep);
  return Number(process.hrtime.bigint() - t0) / 1000 / s.frames.length;
}

const all = process.argv.slice(2).map(load);
const rounds = Number(process.env.ROUNDS ?? 30);
const times = new Map<string, number[]>();
for (let r = 0; r < rounds + 5; r++) {
  for (const s of all) {
    for (const keep of [true, false]) {
      const t = round(s, keep);
      if (r < 5) continue; // warm-up
      const key = `${s.name} ${keep ? "decode+apply" : "apply only"}`;
      times.set(key, [...(times.get(key) ?? []), t]);
    }
  }
}
for (const s of all) {
  const players = s.start.entities.filter((e) => e.components.some((c) => typeof c === "object" && "player" in c)).length;
  const bytes = s.frames.reduce((n, f) => n + f.length, 0) / s.frames.length;
  for (const keep of [true, false]) {
    const t = times.get(`${s.name} ${keep ? "decode+apply" : "apply only"}`)!.sort((a, b) => a - b);
    console.log(
      `${players} players, ${bytes.toFixed(1)} B/frame, ${keep ? "decode+apply" : "apply only  "}: ` +
        `median ${t[Math.floor(t.length / 2)]!.toFixed(2)} µs, best ${t[0]!.toFixed(2)} µs per delta`,
    );
  }
}
