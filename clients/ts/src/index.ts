// tickforge-client: a TypeScript client for tickforge servers, for browsers and Node 20+.
//
// What it owns:
// - `Session`: a player's connection: Hello, Join or quick-join, commands with increasing
//   ids and their outcomes, the mirror of the world (`World`) kept from the snapshot and
//   every protocol-2 tick frame, gap detection, and resume after a drop;
// - `Spectator`: the event feed of a match in JSON or MessagePack, from any seq or live,
//   checked for gaps;
// - `guestToken`, `createMatch`, `listMatches`, `matchSnapshot`: the HTTP endpoints;
// - `career`, `leaderboard`, `summary`, `timeline`: the read side's query API;
// - the generated message types (`generated/protocol.ts`, made from the Rust protocol crate)
//   and the MessagePack codec they travel in. State hashes are `bigint`s.

export * from "./generated/protocol.js";
export { Channel, OverflowError } from "./channel.js";
export { HttpError, createMatch, guestToken, listMatches, matchSnapshot, type MatchInfo, type MatchSpec } from "./http.js";
export { DecodeError, decode, encode, type Value } from "./msgpack.js";
export {
  career,
  leaderboard,
  summary,
  timeline,
  type Career,
  type Frame,
  type FramePlayer,
  type Leaderboard,
  type Period,
  type RecentMatch,
  type Standing,
  type Summary,
  type SummaryPlayer,
  type Timeline,
  type Totals,
} from "./queries.js";
export { MAX_REDIRECTS, Session, redirectOf, type Outcome, type SessionMessage, type SessionOptions, type TickUpdate } from "./session.js";
export { ConnectError, type Closed, type WebSocketConstructor, type WebSocketLike } from "./socket.js";
export { FeedError, Spectator, type SpectatorEvent, type SpectatorOptions } from "./spectator.js";
export { convert, toWire, variant, type Form, type VariantOf } from "./wire.js";
export { World, componentName, isTickFrame, readTickFrame, type Delta, type TickFrame } from "./world.js";
