// The server's HTTP endpoints that a game client uses (PROTOCOL.md section 4).

import type { GameConfig, MatchId, Snapshot } from "./generated/protocol.js";
import { httpBase } from "./socket.js";
import { convert } from "./wire.js";

/** An HTTP answer other than 2xx, with the server's `error` and `detail`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly detail: string,
  ) {
    super(`${status} ${error}: ${detail}`);
    this.name = "HttpError";
  }
}

/** The JSON of a 2xx answer; an `HttpError` with the server's `error` and `detail` otherwise. */
export async function json(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) {
    let body: { error?: string; detail?: string } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = { error: "http_error", detail: text };
    }
    throw new HttpError(response.status, body.error ?? "http_error", body.detail ?? text);
  }
  return JSON.parse(text);
}

/** A token from a development server's POST /auth/guest. */
export async function guestToken(url: string, options: { name?: string; role?: "player" | "spectator" } = {}): Promise<string> {
  const r = await fetch(`${httpBase(url)}/auth/guest`, { method: "POST", body: JSON.stringify(options) });
  return ((await json(r)) as { token: string }).token;
}

/** One match as GET /matches lists it (PROTOCOL.md, GET /matches). */
export interface MatchInfo {
  id: MatchId;
  game: string;
  /** In a cluster also "moving" (being taken over) and "moved" (this node lost it). */
  state: "running" | "ended" | "stopped" | "moving" | "moved";
  players: number;
  max_players: number;
  spectators: number;
  tick: number;
  last_seq: number;
  durable_tick: number;
  /** The last tick's run time on the server, in µs. */
  tick_us: number;
  /** The last tick's frame for a player with no answers, in bytes. */
  frame_bytes: number;
  tick_rate_hz: number;
  created_at_unix_ms: number;
  replay: string;
  stopped_reason: string | null;
  end_reason: string | null;
  config: GameConfig;
  /** Cluster mode: the node that runs the match. */
  node?: string;
  /** Cluster mode: the last tick the event stream has acknowledged. */
  stream_tick?: number;
}

/** What POST /matches takes. `bots` (development servers only) fills the match with the server's bots. */
export interface MatchSpec {
  game?: string;
  /** Settings of the game; fields left out take their defaults. */
  config?: { [field: string]: unknown };
  seed?: number;
  bots?: number;
  bot_behavior?: "fight" | "wander" | "idle";
}

/** POST /matches: create a match. */
export async function createMatch(url: string, token: string, spec: MatchSpec = {}): Promise<MatchInfo> {
  const r = await fetch(`${httpBase(url)}/matches`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(spec),
  });
  return (await json(r)) as MatchInfo;
}

/** GET /matches: running and recently finished matches, newest first. */
export async function listMatches(url: string): Promise<MatchInfo[]> {
  return (await json(await fetch(`${httpBase(url)}/matches`))) as MatchInfo[];
}

/** GET /matches/{id}/snapshot: a running match's world as of its last tick. */
export async function matchSnapshot(url: string, id: MatchId): Promise<Snapshot> {
  const body = await json(await fetch(`${httpBase(url)}/matches/${id}/snapshot`, { cache: "no-store" }));
  return convert(body, "Snapshot", "json", "snapshot") as Snapshot;
}
