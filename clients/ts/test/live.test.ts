// The client against the real server binary: the mirror after play, resume after a dropped
// socket, the spectator feed across catch-up and live, rejections with their rules, and a
// protocol-version mismatch.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  ConnectError,
  Session,
  Spectator,
  createMatch,
  encode,
  guestToken,
  matchSnapshot,
  toWire,
  decode,
  convert,
  variant,
  type EntityState,
  type Outcome,
  type SessionMessage,
  type SpectatorEvent,
} from "../src/index.js";
import { startServer, sleep, until, type TestServer } from "./server.js";

let server: TestServer;

before(async () => {
  server = await startServer(["--resume-grace-secs", "30"]);
});

after(async () => {
  await server?.stop();
});

/** The mirror's entities at each tick it reached, kept for comparing with the server later. */
function history(session: Session): Map<number, EntityState[]> {
  const seen = new Map<number, EntityState[]>();
  const record = () => {
    const w = session.world!;
    seen.set(w.tick, structuredClone(w.entities()));
    for (const t of seen.keys()) if (t < w.tick - 600) seen.delete(t);
  };
  record();
  session.on((m) => {
    if ("tick" in m || "snapshot" in m) record();
  });
  return seen;
}

/** Compare the mirror with GET /matches/{id}/snapshot at the same tick, a few times. */
async function mirrorMatchesServer(session: Session, seen: Map<number, EntityState[]>): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const snapshot = await matchSnapshot(server.url, session.matchId!);
    await until(`the mirror to reach tick ${snapshot.tick}`, () => session.world!.tick >= snapshot.tick);
    const mine = seen.get(snapshot.tick);
    assert.ok(mine, `the mirror passed tick ${snapshot.tick}`);
    assert.deepEqual(mine, snapshot.entities, `the mirror equals the server's world at tick ${snapshot.tick}`);
    await sleep(100);
  }
}

test("after play in an arena match, the mirror equals the server's snapshot", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url, { name: "host" });
  const match = await createMatch(server.url, token, { game: "arena", config: { max_players: 4, score_limit: 1000 }, seed: 7 });
  const players = await Promise.all(
    ["ana", "bo", "cy"].map(async (name) => Session.join(server.url, { token: await guestToken(server.url, { name }), matchId: match.id, name })),
  );
  const seen = history(players[0]!);
  assert.equal(players[0]!.game, "arena");
  assert.equal(variant(players[0]!.rules, "arena")?.max_players, 4);
  for (let step = 0; step < 40; step++) {
    players.forEach((p, i) => {
      const a = (step * 0.3 + i * 2) % (2 * Math.PI);
      p.move(Math.cos(a) * 90, Math.sin(a) * 90);
      if (step % 10 === i) p.fire(Math.cos(a + 1) * 10, Math.sin(a + 1) * 10);
    });
    await sleep(25);
  }
  const me = players[0]!.world!.get<{ x: number; y: number }>(players[0]!.entity!, "pos");
  assert.ok(me, "the player's own entity has a position");
  await mirrorMatchesServer(players[0]!, seen);
  assert.equal(players[0]!.resumes, 0);
  for (const p of players) p.close();
});

test("a dropped socket resumes with exactly the missed tick frames, and unanswered commands apply once", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url, { name: "host" });
  const match = await createMatch(server.url, token, { game: "drift", config: { max_players: 4 }, seed: 3 });
  const mover = await Session.join(server.url, { token: await guestToken(server.url), matchId: match.id, name: "mover" });
  // The resume waits 300 ms, so that the server runs about 18 ticks without this player's socket.
  const me = await Session.join(server.url, { token: await guestToken(server.url), matchId: match.id, name: "me", resumeAfterMs: 300 });
  const seen = history(me);
  const ticks: number[] = [];
  const stream: SessionMessage[] = [];
  const serverTick: { [k: string]: number } = {};
  me.on((m) => {
    stream.push(m);
    if ("resuming" in m || "resumed" in m) serverTick[Object.keys(m)[0]!] = mover.world!.tick;
    if ("tick" in m && m.tick.delta) ticks.push(m.tick.frame.tick);
  });
  const startTick = me.world!.tick;
  const outcomes: Promise<Outcome>[] = [];
  let moving = true;
  const moves = (async () => {
    while (moving) {
      mover.drift(37, -11);
      await sleep(16);
    }
  })();
  for (let i = 0; i < 10; i++) {
    outcomes.push(me.drift(5, 5).outcome);
    await sleep(16);
  }
  me.drop();
  // Commands sent while the connection is down wait, and go out with their ids after the resume.
  for (let i = 0; i < 10; i++) {
    outcomes.push(me.drift(-3, 2).outcome);
    await sleep(16);
  }
  await until("the session to resume", () => me.resumes === 1);
  for (let i = 0; i < 10; i++) {
    outcomes.push(me.drift(1, 1).outcome);
    await sleep(16);
  }
  const results = await Promise.all(outcomes);
  moving = false;
  await moves;
  assert.ok(stream.some((m) => "resuming" in m), "the session said it was resuming");
  assert.ok(stream.some((m) => "resumed" in m), "the server answered Resumed");
  assert.equal(me.snapshots, 0, "the missed ticks were re-sent, not replaced by a snapshot");
  assert.ok(serverTick.resumed! - serverTick.resuming! >= 10, `ticks were missed: ${JSON.stringify(serverTick)}`);
  // Every tick exactly once, in order, from the join to now.
  const expected = Array.from({ length: ticks.length }, (_, i) => startTick + 1 + i);
  assert.deepEqual(ticks, expected, "no tick missed and none twice across the resume");
  // Each outcome is an ack, or a duplicate notice for a command whose ack was lost with the socket.
  const unexpected = results.filter((r) => !("accepted" in r) && !("duplicate" in r));
  assert.deepEqual(unexpected, [], "no command was refused");
  await mirrorMatchesServer(me, seen);
  await until("the last input to show", () => me.world!.get<{ input: number }>(me.entity!, "input")?.input === 30);
  // The match's own record: each of the 30 commands applied exactly once, in order.
  const viewer = await guestToken(server.url, { name: "audit", role: "spectator" });
  const feed = await Spectator.watch(server.url, match.id, { token: viewer, from: 0 });
  const inputs: number[] = [];
  for await (const m of feed) {
    if ("tick" in m) {
      for (const e of m.tick.events) {
        const d = variant(e.kind, "player_drifted");
        if (d && d.entity === me.entity) inputs.push(d.input);
      }
    }
    if ("live" in m || "closed" in m) break;
  }
  feed.close();
  assert.deepEqual(inputs, Array.from({ length: 30 }, (_, i) => i + 1), "commands 1 to 30, each applied once");
  me.close();
  mover.close();
});

async function collect(s: Spectator, stop: (m: SpectatorEvent, all: SpectatorEvent[]) => boolean): Promise<SpectatorEvent[]> {
  const all: SpectatorEvent[] = [];
  for await (const m of s) {
    all.push(m);
    if ("closed" in m || stop(m, all)) break;
  }
  return all;
}

test("spectator seqs are contiguous from catch-up into live, in JSON and in MessagePack", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url, { name: "host" });
  const match = await createMatch(server.url, token, { game: "drift", config: { max_players: 4 }, seed: 5 });
  const p = await Session.join(server.url, { token: await guestToken(server.url), matchId: match.id, name: "walker" });
  let walking = true;
  const walk = (async () => {
    while (walking) {
      p.drift(10, 20);
      await sleep(20);
    }
  })();
  await until("some events", () => p.world!.seq > 40);
  const viewer = await guestToken(server.url, { name: "viewer", role: "spectator" });
  for (const format of ["json", "msgpack"] as const) {
    const s = await Spectator.watch(server.url, match.id, { token: viewer, from: 0, format });
    let liveAt = -1;
    const got = await collect(s, (m, all) => {
      if ("live" in m) liveAt = all.length;
      return liveAt >= 0 && all.length > liveAt + 20;
    });
    s.close();
    assert.ok(!got.some((m) => "closed" in m), `${format}: the feed stayed open and unbroken: ${JSON.stringify(got.filter((m) => "closed" in m))}`);
    assert.ok(liveAt > 0, `${format}: the feed went live`);
    const seqs = got.flatMap((m) => ("tick" in m ? m.tick.events.map((e) => e.seq) : []));
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `${format}: seqs 1, 2, 3, … with no gap`);
    assert.ok(got.slice(liveAt).some((m) => "tick" in m && m.tick.events.length > 0), `${format}: events after live`);
    const ticks = got.flatMap((m) => ("tick" in m ? [m.tick.tick] : []));
    assert.deepEqual(ticks, Array.from({ length: ticks.length }, (_, i) => ticks[0]! + i), `${format}: every tick once`);
    const first = got.find((m) => "tick" in m);
    assert.ok(first && "tick" in first && typeof first.tick.hash === "bigint", `${format}: hashes are bigints`);
  }
  // From live: the first events follow the seq that Live names.
  const s = await Spectator.watch(server.url, match.id, { token: viewer });
  let liveSeq = -1;
  const got = await collect(s, (m, all) => {
    if ("live" in m) liveSeq = m.live.seq;
    return all.filter((x) => "tick" in x && x.tick.events.length > 0).length >= 5;
  });
  s.close();
  assert.ok(!got.some((m) => "closed" in m), `from live: the feed stayed unbroken: ${JSON.stringify(got.filter((m) => "closed" in m))}`);
  assert.ok("live" in got[0]!, "from live: Live comes first");
  const seqs = got.flatMap((m) => ("tick" in m ? m.tick.events.map((e) => e.seq) : []));
  assert.equal(seqs[0], liveSeq + 1, "from live: the first event follows Live's seq");
  walking = false;
  await walk;
  p.close();
});

test("rejections arrive with their rules", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url, { name: "host" });
  const match = await createMatch(server.url, token, { game: "arena", config: { max_players: 2 }, seed: 9 });
  const p = await Session.join(server.url, { token: await guestToken(server.url), matchId: match.id, name: "shooter" });
  const first = p.fire(1, 0);
  const second = p.fire(1, 0);
  const fast = p.move(5000, 0);
  const zero = p.fire(0, 0);
  const notMine = p.send({ move: { entity: 0, vx: 1, vy: 1 } });
  const wrongGame = p.send({ drift: { entity: p.entity!, dx: 1, dy: 1 } });
  assert.deepEqual(Object.keys(await first.outcome), ["accepted"]);
  const rule = async (c: { outcome: Promise<Outcome> }) => {
    const o = await c.outcome;
    assert.ok("rejected" in o, JSON.stringify(o));
    assert.ok(o.rejected.detail.length > 0, "a detail");
    return o.rejected.rule;
  };
  assert.equal(await rule(second), "cooldown");
  assert.equal(await rule(fast), "speed_limit");
  assert.ok(["cooldown", "invalid_input"].includes(await rule(zero)));
  assert.equal(await rule(notMine), "not_your_entity");
  assert.equal(await rule(wrongGame), "wrong_game");
  p.close();
});

test("a protocol-version mismatch is a clear error", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url);
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/play?token=${token}`);
  ws.binaryType = "arraybuffer";
  const frames: unknown[] = [];
  const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
    ws.onopen = () => ws.send(encode(toWire({ hello: { protocol: 1, client: "old" } }, "ClientMessage")));
    ws.onmessage = (m) => frames.push(convert(decode(new Uint8Array(m.data as ArrayBuffer)), "ServerMessage", "msgpack"));
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    ws.onerror = () => {};
    setTimeout(() => reject(new Error("no close within 10 s")), 10_000);
  });
  assert.equal(closed.code, 4000);
  assert.deepEqual(frames, [{ error: { code: 4000, reason: "client speaks protocol 1; this server speaks protocol 2 only" } }]);

  // The client library names it the same way.
  await assert.rejects(Session.connect(server.url, { token, protocol: 3 }), (e: unknown) => {
    assert.ok(e instanceof ConnectError);
    assert.equal(e.code, 4000);
    assert.match(e.reason, /protocol 3.*protocol 2/);
    return true;
  });
});

test("a bad token is refused before the upgrade", { timeout: 60_000 }, async () => {
  await assert.rejects(Session.connect(server.url, { token: "v1.bad.token" }), ConnectError);
});
