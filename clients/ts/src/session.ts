// A player's session (PROTOCOL.md sections 5, 11 and 12): Hello, Join or quick-join, commands
// with increasing ids, the mirror kept from the snapshot and every tick frame, and resume
// after a drop. Commands not yet answered when the connection drops are sent again, with the
// same ids, once the session is back: the server applies each command at most once, and
// answers a resent one it had already processed with a duplicate notice.

import { Channel } from "./channel.js";
import {
  PROTOCOL_VERSION,
  type ClientMessage,
  type Command,
  type CommandId,
  type EndReason,
  type EntityId,
  type GameConfig,
  type MatchId,
  type PlayerId,
  type Rejected,
  type ServerMessage,
  type ServerMessageJoined,
  type Snapshot,
} from "./generated/protocol.js";
import { DecodeError, decode, encode } from "./msgpack.js";
import { ConnectError, defaultWebSocket, open, wsUrl, type Closed, type WebSocketConstructor, type WebSocketLike } from "./socket.js";
import { convert, toWire } from "./wire.js";
import { World, isTickFrame, readTickFrame, type Delta, type TickFrame } from "./world.js";

export interface SessionOptions {
  /** A player token (`guestToken` on a development server). */
  token: string;
  /** The protocol version Hello announces (default PROTOCOL_VERSION); another one tests a server's check. */
  protocol?: number;
  /** The `client` of Hello, for the server's information. */
  client?: string;
  /** The WebSocket constructor; the global one by default. */
  WebSocket?: WebSocketConstructor;
  /** Resume by itself when the connection drops or a frame cannot be applied (default true). */
  autoResume?: boolean;
  /** How long to wait after a drop before the first resume attempt, in ms (default 0). */
  resumeAfterMs?: number;
  /** Decode each delta into `TickUpdate.delta` (default true); a bot that only reads the world saves the work. */
  keepDeltas?: boolean;
  /** How many messages may wait for `next()` (default 4096); 0 queues nothing, for callers that only use `on`. */
  maxQueued?: number;
  /** The largest server frame accepted, in bytes (default 8 MiB); a larger one is refused before it is decoded. */
  maxFrameBytes?: number;
  /** How long to wait for each answer of the handshake, in ms (default 10000). */
  timeoutMs?: number;
  /**
   * Cluster mode: other nodes of the cluster (http:// or ws://). A resume that cannot reach
   * the session's node tries them in turn; a node that does not run the match redirects.
   */
  nodes?: string[];
}

/** Redirects a join or a resume follows before giving up. */
export const MAX_REDIRECTS = 3;

/**
 * A cluster node's answer that the match runs on another node (close 4011 with the reason
 * `match ID is on URL`, PROTOCOL.md section 20): the match and that node's URL.
 */
export function redirectOf(e: unknown): { matchId: MatchId; url: string } | null {
  if (!(e instanceof ConnectError) || e.code !== 4011) return null;
  const m = /^match m?(\d+) is on (wss?:\/\/\S+)$/.exec(e.reason);
  return m ? { matchId: Number(m[1]), url: m[2]! } : null;
}

/** One tick as this player saw it: the answers to their commands, and what changed. */
export interface TickUpdate {
  frame: TickFrame;
  /** The decoded delta, or null when `keepDeltas` is false or the mirror already held the tick. */
  delta: Delta | null;
}

/** What a session delivers: the server's messages, tick updates, and the end. */
export type SessionMessage =
  | ServerMessage
  | { tick: TickUpdate }
  /** The connection dropped and a resume is under way; commands sent meanwhile wait. */
  | { resuming: { cause: string } }
  /** The session is over: the last close code and reason. */
  | { closed: Closed };

/**
 * The answer to one command. `unanswered`: the session ended before the server answered (the
 * command may or may not have been applied; the match's record says).
 */
export type Outcome =
  | { accepted: { tick: number } }
  | { duplicate: { tick: number } }
  | { rejected: Rejected }
  | { unanswered: { reason: string } };

const FINAL_CODES = new Set([1000, 1001, 1008, 4000, 4001, 4006, 4007, 4008, 4009, 4010]);

/** The player's side of one match. */
export class Session {
  /** The mirror of the match's public world, kept in step with every tick frame. */
  world: World | null = null;
  matchId: MatchId | null = null;
  player: PlayerId | null = null;
  entity: EntityId | null = null;
  game = "";
  rules: GameConfig | null = null;
  tickRateHz = 0;
  resumeToken = "";
  /** The server's name from Welcome. */
  server = "";
  /** Ticks the mirror has had to be replaced by a snapshot, and resumes done. */
  snapshots = 0;
  resumes = 0;
  /** Bytes of server frames received. */
  bytesReceived = 0;

  private ws: WebSocketLike | null = null;
  private readonly messages: Channel<SessionMessage>;
  private nextId = 0;
  private readonly pending = new Map<CommandId, { command: Command; resolve: (o: Outcome) => void }>();
  private waiting: ((m: ServerMessage | null, closed?: Closed) => void) | null = null;
  private state: "handshake" | "joined" | "resuming" | "closed" = "handshake";
  private closedWith: Closed | null = null;
  private resumeTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly options: Required<Omit<SessionOptions, "WebSocket">> & { WebSocket: WebSocketConstructor };

  private constructor(
    /** The node the session talks to (in a cluster, the one its redirects led to). */
    public url: string,
    options: SessionOptions,
  ) {
    this.options = {
      protocol: PROTOCOL_VERSION,
      client: "tickforge-client-ts",
      autoResume: true,
      resumeAfterMs: 0,
      keepDeltas: true,
      maxQueued: 4096,
      maxFrameBytes: 8 << 20,
      timeoutMs: 10_000,
      nodes: [],
      ...options,
      WebSocket: defaultWebSocket(options.WebSocket),
    };
    this.messages = new Channel(this.options.maxQueued);
  }

  /** Connect to the server at `url` (http:// or ws://) and say Hello. Rejects with a ConnectError naming the close. */
  static async connect(url: string, options: SessionOptions): Promise<Session> {
    const s = new Session(url, options);
    try {
      await s.hello();
    } catch (e) {
      s.detach();
      throw e;
    }
    return s;
  }

  /**
   * Connect and join: match `matchId`, or quick-join the first open match when it is null or
   * left out. In a cluster, a node that does not run the match redirects (4011): the session
   * follows, at most MAX_REDIRECTS times.
   */
  static async join(url: string, options: SessionOptions & { matchId?: MatchId | null; name?: string }): Promise<Session> {
    let matchId = options.matchId ?? null;
    for (let hop = 0; ; hop++) {
      const s = await Session.connect(url, options);
      try {
        await s.join(matchId, options.name ?? "");
        return s;
      } catch (e) {
        s.detach();
        const there = redirectOf(e);
        if (!there || hop >= MAX_REDIRECTS) throw e;
        url = there.url;
        matchId = there.matchId;
      }
    }
  }

  private async hello(): Promise<void> {
    this.ws = await open(
      this.options.WebSocket,
      wsUrl(this.url, "/play", { token: this.options.token }),
      (d) => this.onFrame(d),
      (c) => this.onClose(c),
    );
    this.write({ hello: { protocol: this.options.protocol, client: this.options.client } });
    const welcome = await this.expect("welcome");
    this.server = welcome.welcome.server;
  }

  /** Join match `matchId` (or quick-join with null) as `name` (empty: the token's name). */
  async join(matchId: MatchId | null, name = ""): Promise<ServerMessageJoined> {
    this.write({ join: { match_id: matchId, name } });
    const { joined } = await this.expect("joined", 0);
    this.matchId = joined.match_id;
    this.player = joined.player;
    this.entity = joined.entity;
    this.game = joined.game;
    this.rules = joined.rules;
    this.tickRateHz = joined.tick_rate_hz;
    this.resumeToken = joined.resume_token;
    this.world = new World(joined.components);
    this.world.reset(joined.snapshot);
    this.state = "joined";
    return joined;
  }

  /** Send a command; it gets the next id. The promise settles with the command's outcome. */
  send(command: Command): { id: CommandId; outcome: Promise<Outcome> } {
    if (this.state === "closed") throw new Error("the session is closed");
    if (this.pending.size >= 4096) throw new Error("4096 commands are waiting for an answer: the server is not answering");
    // Checked before it is kept: a command that cannot be encoded is refused here, not at every resend.
    const bytes = encode(toWire({ command: { id: this.nextId + 1, command } }, "ClientMessage"));
    const id = ++this.nextId;
    let resolve!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((r) => (resolve = r));
    this.pending.set(id, { command, resolve });
    if (this.state === "joined" && this.ws?.readyState === 1) this.ws.send(bytes);
    return { id, outcome };
  }

  /** False once the session is over. */
  get isOpen(): boolean {
    return this.state !== "closed";
  }

  /** Arena: steer one's own player, in mm per tick. */
  move(vx: number, vy: number) {
    return this.send({ move: { entity: this.own(), vx: Math.round(vx), vy: Math.round(vy) } });
  }

  /** Arena: fire in the direction (dx, dy). */
  fire(dx: number, dy: number) {
    return this.send({ fire: { entity: this.own(), dx: Math.round(dx), dy: Math.round(dy) } });
  }

  /** Drift: move one's own player by (dx, dy) mm. */
  drift(dx: number, dy: number) {
    return this.send({ drift: { entity: this.own(), dx: Math.round(dx), dy: Math.round(dy) } });
  }

  /** Commands sent and not yet answered. */
  get unanswered(): number {
    return this.pending.size;
  }

  private own(): EntityId {
    if (this.entity === null) throw new Error("not joined yet");
    return this.entity;
  }

  /** Leave the match for good; resolves when the server has closed the connection. */
  async leave(): Promise<Closed> {
    if (this.closedWith) return this.closedWith;
    this.options.autoResume = false;
    if (this.state !== "joined" || this.ws?.readyState !== 1) {
      // Not connected (resuming): nothing can carry the Leave; the grace period ends the player.
      this.stopResume();
      this.ws?.close(1000, "client left");
      this.finish({ code: 1000, reason: "left while not connected" });
      return this.closedWith!;
    }
    const done = new Promise<Closed>((resolve) => {
      const off = this.messages.on((m) => {
        if ("closed" in m) {
          off();
          resolve(m.closed);
        }
      });
    });
    this.write("leave");
    return done;
  }

  /** Drop the connection without leaving (as a network failure would); the session resumes if autoResume is on. */
  drop(): void {
    this.ws?.close(3000, "dropped by the client");
  }

  /** Close for good without leaving: the player stays in the match for the resume grace period. */
  close(): void {
    this.options.autoResume = false;
    this.stopResume();
    this.ws?.close(1000, "client closed");
    if (this.state === "resuming" || this.state === "handshake") this.finish({ code: 1000, reason: "client closed" });
  }

  /** Call `listener` with every message as it arrives; returns a function that removes it. */
  on(listener: (message: SessionMessage) => void): () => void {
    return this.messages.on(listener);
  }

  /** The next message; undefined once the session is over and every message was read. */
  next(): Promise<SessionMessage | undefined> {
    return this.messages.next();
  }

  [Symbol.asyncIterator](): AsyncIterator<SessionMessage> {
    return this.messages[Symbol.asyncIterator]();
  }

  /**
   * Take the session back on a new connection (PROTOCOL.md section 12): Hello, then Resume
   * with the mirror's tick and seq. The missed tick frames (or a snapshot) follow; commands
   * that were not answered are sent again with their ids.
   */
  async resume(): Promise<void> {
    if (!this.world || !this.resumeToken) throw new Error("nothing to resume: the session never joined");
    if (this.state === "closed") throw new Error("the session is closed");
    this.state = "resuming";
    for (let hop = 0; ; hop++) {
      this.detach();
      try {
        await this.hello();
        if (this.state !== "resuming") return this.detach();
        this.write({ resume: { token: this.resumeToken, last_tick: this.world.tick, last_seq: this.world.seq } });
        await this.expect("resumed");
        break;
      } catch (e) {
        const there = redirectOf(e);
        if (!there || hop >= MAX_REDIRECTS || this.state !== "resuming") throw e;
        this.url = there.url;
      }
    }
    if (this.state !== "resuming") return this.detach();
    this.resumes += 1;
    this.state = "joined";
    this.resend();
  }

  /** Every unanswered command again, in id order (the server answers an applied one with a duplicate notice). */
  private resend(): void {
    for (const [id, { command }] of [...this.pending].sort((a, b) => a[0] - b[0])) this.write({ command: { id, command } });
  }

  /** Stop listening to the current socket and close it. */
  private detach(reason = "resuming"): void {
    const old = this.ws;
    this.ws = null;
    if (!old) return;
    old.onclose = null;
    old.onmessage = null;
    old.onerror = null;
    if (old.readyState <= 1) old.close(1000, reason);
  }

  private stopResume(): void {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
  }

  /** Round trip to the server in ms; rejects if no Pong comes within the timeout or the session ends. */
  async ping(): Promise<number> {
    const nonce = Math.floor(Math.random() * 2 ** 48);
    const start = performance.now();
    const pong = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => (off(), reject(new Error(`no pong within ${this.options.timeoutMs} ms`))), this.options.timeoutMs);
      const off = this.messages.on((m) => {
        if ("pong" in m && m.pong.nonce === nonce) {
          clearTimeout(timer);
          off();
          resolve();
        } else if ("closed" in m) {
          clearTimeout(timer);
          off();
          reject(new Error(`the session closed: ${m.closed.reason}`));
        }
      });
    });
    this.write({ ping: { nonce } });
    await pong;
    return performance.now() - start;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private write(message: ClientMessage): void {
    if (!this.ws || this.ws.readyState !== 1) return;
    this.ws.send(encode(toWire(message, "ClientMessage")));
  }

  /** Wait for the server message `kind`; a close or an Error first rejects with a ConnectError. */
  private expect<K extends string>(kind: K, timeoutMs = this.options.timeoutMs): Promise<Extract<ServerMessage, Record<K, unknown>>> {
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.waiting = null;
              this.detach();
              reject(new ConnectError(0, `no ${kind} within ${timeoutMs} ms`));
            }, timeoutMs)
          : null;
      let error: { code: number; reason: string } | null = null;
      this.waiting = (m, closed) => {
        if (m && kind in m) {
          if (timer) clearTimeout(timer);
          this.waiting = null;
          resolve(m as Extract<ServerMessage, Record<K, unknown>>);
        } else if (m && "error" in m) {
          error = m.error;
        } else if (closed) {
          if (timer) clearTimeout(timer);
          this.waiting = null;
          reject(new ConnectError(closed.code, error?.reason ?? closed.reason));
        }
      };
    });
  }

  private onFrame(data: Uint8Array | string): void {
    if (typeof data === "string") return this.fail(1007, "the server sent a text frame");
    if (data.length > this.options.maxFrameBytes) {
      return this.fail(1009, `a frame of ${data.length} bytes, over maxFrameBytes (${this.options.maxFrameBytes})`);
    }
    this.bytesReceived += data.length;
    try {
      if (isTickFrame(data)) return this.onTick(readTickFrame(data));
      const message = convert(decode(data), "ServerMessage", "msgpack", "ServerMessage") as ServerMessage;
      if (this.waiting) this.waiting(message);
      if ("snapshot" in message) this.onSnapshot(message.snapshot);
      else if ("rejected" in message) this.answer(message.rejected.id, { rejected: message.rejected });
      this.messages.push(message);
    } catch (e) {
      if (e instanceof DecodeError) return this.resync(`a frame could not be read: ${e.message}`);
      throw e;
    }
  }

  private onSnapshot(snapshot: Snapshot): void {
    if (!this.world) return;
    this.world.reset(snapshot);
    this.snapshots += 1;
    // The frames skipped before a snapshot took their answers with them: ask again.
    if (this.state === "joined") this.resend();
  }

  private onTick(frame: TickFrame): void {
    for (const id of frame.acks) this.answer(id, { accepted: { tick: frame.tick } });
    for (const d of frame.duplicates) this.answer(d.id, { duplicate: { tick: d.tick } });
    for (const r of frame.rejections) this.answer(r.id, { rejected: r });
    const world = this.world;
    if (!world) return;
    let delta: Delta | null = null;
    if (frame.tick > world.tick + 1) return this.resync(`tick ${frame.tick} after tick ${world.tick}: a frame is missing`);
    if (frame.tick === world.tick + 1) {
      try {
        delta = world.apply(frame, this.options.keepDeltas);
      } catch (e) {
        if (e instanceof DecodeError) return this.resync(`the delta of tick ${frame.tick} could not be applied: ${e.message}`);
        throw e;
      }
    }
    this.messages.push({ tick: { frame, delta } });
  }

  private answer(id: CommandId, outcome: Outcome): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(outcome);
  }

  /** The mirror cannot follow: get back in step by resuming (PROTOCOL.md section 11). */
  private resync(cause: string): void {
    if (this.state === "resuming" || this.state === "closed") return;
    if (!this.options.autoResume || this.state !== "joined") return this.fail(1007, cause);
    this.startResume(cause);
  }

  private startResume(cause: string): void {
    this.state = "resuming";
    // Nothing more from the old socket: its frames can no longer be applied in order.
    this.detach();
    this.messages.push({ resuming: { cause } });
    const attempt = async (n: number): Promise<void> => {
      this.resumeTimer = null;
      if (this.state !== "resuming") return;
      try {
        await this.resume();
      } catch (e) {
        if (this.state !== "resuming") return;
        // This node is gone or the match is moving: the next attempt goes to the next node.
        const nodes = [...new Set([this.url, ...this.options.nodes])];
        if (nodes.length > 1) this.url = nodes[1]!;
        const final = e instanceof ConnectError && FINAL_CODES.has(e.code);
        if (final || n >= 5) {
          this.detach();
          return this.finish(e instanceof ConnectError ? { code: e.code, reason: e.reason } : { code: 1006, reason: String(e) });
        }
        this.resumeTimer = setTimeout(() => void attempt(n + 1), 200 * 2 ** n);
      }
    };
    this.resumeTimer = setTimeout(() => void attempt(0), this.options.resumeAfterMs);
  }

  private onClose(closed: Closed): void {
    if (this.waiting) return this.waiting(null, closed);
    if (this.state === "joined" && this.options.autoResume && !FINAL_CODES.has(closed.code)) {
      return this.startResume(`the connection closed with ${closed.code} ${closed.reason}`);
    }
    if (this.state !== "resuming") this.finish(closed);
  }

  private fail(code: number, reason: string): void {
    this.stopResume();
    this.detach("the client could not go on");
    this.finish({ code, reason });
  }

  private finish(closed: Closed): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.closedWith = closed;
    this.stopResume();
    for (const [, p] of this.pending) p.resolve({ unanswered: { reason: closed.reason || `closed with ${closed.code}` } });
    this.pending.clear();
    this.messages.push({ closed });
    this.messages.close();
  }
}

export type { EndReason };
