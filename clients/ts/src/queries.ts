// The read side's query API (docs/QUERIES.md): careers, leaderboards, match summaries and
// timelines, answered from the server's read models. Each function returns the answer's JSON
// as typed here, `null` where the server has no such player or match (404 not_found), and
// throws an `HttpError` otherwise (400 bad_query names the parameter; 503 while the read
// models' database is down; 404 no_read_models on a server started with --read-db off).

import { HttpError, json } from "./http.js";
import { httpBase } from "./socket.js";

/** A player's sums over their lines. */
export interface Totals {
  matches: number;
  wins: number;
  kills: number;
  deaths: number;
  damage_dealt: number;
  damage_taken: number;
  shots: number;
  hits: number;
  /** hits / shots; null before the first shot. */
  accuracy: number | null;
  time_played_ms: number;
}

export interface RecentMatch {
  match_id: number;
  game: string;
  ended: boolean;
  won: boolean;
  kills: number;
  deaths: number;
  damage_dealt: number;
  created_at_unix_ms: number;
}

/** GET /players/{name}: the totals, per game, and the latest matches. */
export interface Career extends Totals {
  name: string;
  games: { [game: string]: Totals };
  recent: RecentMatch[];
}

export type Period = "all" | "day" | "week";

export interface Standing {
  rank: number;
  name: string;
  wins: number;
  kills: number;
  deaths: number;
  matches: number;
}

/** GET /leaderboard: ranked by wins, then kills, fewer deaths, fewer matches, name. */
export interface Leaderboard {
  game: string;
  period: Period;
  from_unix_ms: number;
  to_unix_ms: number;
  entries: Standing[];
  /** The offset of the next page, if there is one. */
  next_offset: number | null;
}

export interface SummaryPlayer {
  player: number;
  name: string;
  joined_tick: number;
  left_tick: number | null;
  kills: number;
  deaths: number;
  damage_dealt: number;
  damage_taken: number;
  shots: number;
  hits: number;
  accuracy: number | null;
  time_played_ms: number;
  won: boolean;
}

/** GET /matches/{id}/summary. */
export interface Summary {
  match_id: number;
  game: string;
  tick_rate_hz: number;
  created_at_unix_ms: number;
  state: "running" | "ended";
  duration_ticks: number;
  duration_ms: number;
  result: { reason: string; winner: string | null; ended_at_unix_ms: number } | null;
  players: SummaryPlayer[];
  events: number;
  rejections: number;
  event_counts: { [kind: string]: number };
  projected_tick: number;
  projected_seq: number;
}

/** A player's numbers as of a frame's tick. */
export interface FramePlayer {
  name: string;
  kills: number;
  deaths: number;
  damage_dealt: number;
  damage_taken: number;
  shots: number;
  hits: number;
  alive: boolean;
}

/** The state after every event up to `tick`, and the events since the previous frame. */
export interface Frame {
  tick: number;
  timestamp_ms: number;
  players: { [player: string]: FramePlayer };
  events: { [field: string]: unknown }[];
}

/** GET /matches/{id}/timeline: frames every `interval_ticks`, and the match's last tick. */
export interface Timeline {
  match_id: number;
  interval_ticks: number;
  tick_rate_hz: number;
  frames: Frame[];
  /** Where the next page starts, if the match has more frames. */
  next_from_tick: number | null;
}

async function orNull<T>(url: string): Promise<T | null> {
  try {
    return (await json(await fetch(url, { cache: "no-store" }))) as T;
  } catch (e) {
    if (e instanceof HttpError && e.status === 404 && e.error === "not_found") return null;
    throw e;
  }
}

function query(params: { [name: string]: string | number | undefined }): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** GET /players/{name}; `null` for a name that never played. */
export function career(url: string, name: string): Promise<Career | null> {
  return orNull(`${httpBase(url)}/players/${encodeURIComponent(name)}`);
}

/** GET /leaderboard. */
export async function leaderboard(
  url: string,
  options: { game: string; period?: Period; limit?: number; offset?: number; at?: number },
): Promise<Leaderboard> {
  const r = await fetch(`${httpBase(url)}/leaderboard${query(options)}`, { cache: "no-store" });
  return (await json(r)) as Leaderboard;
}

/** GET /matches/{id}/summary; `null` for a match the read models do not hold. */
export function summary(url: string, id: number): Promise<Summary | null> {
  return orNull(`${httpBase(url)}/matches/${id}/summary`);
}

/** GET /matches/{id}/timeline; `null` for a match the read models do not hold. */
export function timeline(
  url: string,
  id: number,
  options: { interval_ticks?: number; from_tick?: number; frames?: number } = {},
): Promise<Timeline | null> {
  return orNull(`${httpBase(url)}/matches/${id}/timeline${query(options)}`);
}
