// The session's gap detection and resync, with a scripted server behind a fake WebSocket: a
// tick frame that skips a tick makes the session resume from its mirror's tick and seq, and
// commands sent meanwhile go out after Resumed with their ids.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Session, redirectOf, ConnectError, convert, decode, encode, toWire, type ClientMessage, type ServerMessage, type SessionMessage, type WebSocketLike } from "../src/index.js";

const doc = readFileSync(fileURLToPath(new URL("../../../../docs/PROTOCOL.md", import.meta.url)), "utf8");
const frame = (name: string) => {
  const m = new RegExp(`#### Tick frame: ${name}\\n\\n\`\`\`hex\\n([\\s\\S]*?)\`\`\``).exec(doc)!;
  return Uint8Array.from(m[1]!.trim().split(/\s+/).map((h) => parseInt(h, 16)));
};

/** A WebSocket whose server is this test: it records what the client sends. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  binaryType = "arraybuffer";
  readyState = 0;
  sent: ClientMessage[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
    }, 0);
  }
  send(data: Uint8Array | string): void {
    this.sent.push(convert(decode(data as Uint8Array), "ClientMessage", "msgpack") as ClientMessage);
  }
  close(code = 1000, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
  deliver(m: ServerMessage | Uint8Array): void {
    const bytes = m instanceof Uint8Array ? m : encode(toWire(m, "ServerMessage"));
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
}

const until = async (what: string, check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), what);
};

const joined: ServerMessage = {
  joined: {
    match_id: 7,
    player: 1,
    entity: 2,
    tick_rate_hz: 60,
    resume_token: "m7.resume",
    game: "drift",
    rules: { drift: { max_players: 8, width_mm: 100000, height_mm: 100000, max_step_mm: 1000 } },
    components: ["player", "pos", "vel", "hp", "input"],
    snapshot: {
      tick: 120,
      seq: 39,
      entities: [
        { id: 2, components: [{ player: { player: 1, name: "ana" } }, { pos: { x: 1000, y: 2000 } }, { input: { input: 7 } }] },
        { id: 3, components: [{ player: { player: 2, name: "bo" } }, { pos: { x: 5000, y: 500 } }, { input: { input: 3 } }] },
      ],
    },
  },
};

async function joinedSession(options: { resumeAfterMs?: number } = {}): Promise<{ session: Session; socket: FakeSocket }> {
  FakeSocket.all = [];
  const connecting = Session.connect("http://server.test", { token: "t", WebSocket: FakeSocket, ...options });
  await until("a socket", () => FakeSocket.all.length === 1 && FakeSocket.all[0]!.sent.length === 1);
  const socket = FakeSocket.all[0]!;
  socket.deliver({ welcome: { protocol: 2, server: "test" } });
  const session = await connecting;
  const joining = session.join(7, "ana");
  await until("Join", () => socket.sent.length === 2);
  socket.deliver(joined);
  await joining;
  return { session, socket };
}

test("a skipped tick makes the session resume from its mirror, and waiting commands follow Resumed", async () => {
  const { session, socket: first } = await joinedSession();
  assert.deepEqual(first.sent[0], { hello: { protocol: 2, client: "tickforge-client-ts" } });
  assert.match(first.url, /^ws:\/\/server\.test\/play\?token=t$/);
  assert.deepEqual(first.sent[1], { join: { match_id: 7, name: "ana" } });
  const seen: SessionMessage[] = [];
  session.on((m) => seen.push(m));

  first.deliver(frame("quiet")); // tick 121: applied
  assert.equal(session.world!.tick, 121);
  first.deliver(frame("spawn_and_remove")); // tick 123: tick 122 is missing
  assert.ok(seen.some((m) => "resuming" in m), "the session says it resumes");
  assert.equal(session.world!.tick, 121, "the frame after the gap is not applied");
  const { id } = session.drift(5, 5); // sent while resuming: it waits

  await until("a second socket", () => FakeSocket.all.length === 2);
  const second = FakeSocket.all[1]!;
  await until("Hello again", () => second.sent.length === 1);
  second.deliver({ welcome: { protocol: 2, server: "test" } });
  await until("Resume", () => second.sent.length === 2);
  assert.deepEqual(second.sent[1], { resume: { token: "m7.resume", last_tick: 121, last_seq: 39 } });
  second.deliver({ resumed: { match_id: 7, player: 1, entity: 2, from_seq: 39 } });
  await until("the waiting command", () => second.sent.length === 3);
  assert.deepEqual(second.sent[2], { command: { id, command: { drift: { entity: 2, dx: 5, dy: 5 } } } });
  second.deliver(frame("drift")); // the missed tick 122, then 123
  second.deliver(frame("spawn_and_remove"));
  assert.equal(session.world!.tick, 123);
  assert.deepEqual(session.world!.ids(), [2, 9]);
  assert.equal(session.resumes, 1);
  session.close();
});

test("a command that cannot be encoded is refused at once and does not spoil a resume", async () => {
  const { session, socket } = await joinedSession();
  assert.throws(() => session.move(3e9, 0), /i32|not a/);
  assert.equal(session.unanswered, 0);
  const { outcome } = session.drift(1, 1);
  assert.deepEqual(socket.sent[2], { command: { id: 1, command: { drift: { entity: 2, dx: 1, dy: 1 } } } });
  session.close();
  assert.deepEqual(await outcome, { unanswered: { reason: "client closed" } }, "a command unanswered at the end settles");
});

test("closing while a resume waits stops it: no socket is opened afterwards", async () => {
  const { session, socket } = await joinedSession({ resumeAfterMs: 50 });
  const seen: SessionMessage[] = [];
  session.on((m) => seen.push(m));
  socket.close(3000, "dropped");
  await until("resuming", () => seen.some((m) => "resuming" in m));
  session.close();
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(FakeSocket.all.length, 1, "no second connection");
  assert.ok(seen.some((m) => "closed" in m), "the session reports its end");
  assert.equal(session.isOpen, false);
  assert.throws(() => session.drift(1, 1), /closed/);
});

test("a cluster node that does not run the match redirects a join and a resume; the session follows", async () => {
  FakeSocket.all = [];
  const joining = Session.join("http://a.test", { token: "t", WebSocket: FakeSocket, matchId: 7, name: "ana" });
  await until("a socket", () => FakeSocket.all.length === 1 && FakeSocket.all[0]!.sent.length === 1);
  const a = FakeSocket.all[0]!;
  a.deliver({ welcome: { protocol: 2, server: "a" } });
  await until("Join", () => a.sent.length === 2);
  a.deliver({ error: { code: 4011, reason: "match 7 is on ws://b.test:7001/play" } });
  a.close(4011, "match 7 is on ws://b.test:7001/play");
  await until("a socket to b", () => FakeSocket.all.length === 2 && FakeSocket.all[1]!.sent.length === 1);
  const b = FakeSocket.all[1]!;
  assert.match(b.url, /^ws:\/\/b\.test:7001\/play\?token=t$/);
  b.deliver({ welcome: { protocol: 2, server: "b" } });
  await until("Join on b", () => b.sent.length === 2);
  assert.deepEqual(b.sent[1], { join: { match_id: 7, name: "ana" } });
  b.deliver(joined);
  const session = await joining;
  assert.equal(session.url, "ws://b.test:7001/play");

  // b goes away; the session resumes through the other node it was given, which redirects.
  b.close(1006, "");
  await until("a resume socket", () => FakeSocket.all.length === 3 && FakeSocket.all[2]!.sent.length === 1);
  const again = FakeSocket.all[2]!;
  again.deliver({ welcome: { protocol: 2, server: "b" } });
  await until("Resume", () => again.sent.length === 2);
  again.deliver({ error: { code: 4011, reason: "match 7 is on ws://c.test:7002/play" } });
  again.close(4011, "match 7 is on ws://c.test:7002/play");
  await until("a socket to c", () => FakeSocket.all.length === 4 && FakeSocket.all[3]!.sent.length === 1);
  const c = FakeSocket.all[3]!;
  assert.match(c.url, /^ws:\/\/c\.test:7002\/play/);
  c.deliver({ welcome: { protocol: 2, server: "c" } });
  await until("Resume on c", () => c.sent.length === 2);
  assert.deepEqual(c.sent[1], { resume: { token: "m7.resume", last_tick: 120, last_seq: 39 } });
  c.deliver({ resumed: { match_id: 7, player: 1, entity: 2, from_seq: 39 } });
  await until("resumed", () => session.resumes === 1);
  assert.equal(session.url, "ws://c.test:7002/play");
  assert.equal(redirectOf(new ConnectError(4011, "match 7 is moving to another node; reconnect in a moment and resume")), null);
  session.close();
});
