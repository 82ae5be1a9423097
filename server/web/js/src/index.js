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
export { HttpError, createMatch, guestToken, listMatches, matchSnapshot } from "./http.js";
export { DecodeError, decode, encode } from "./msgpack.js";
export { career, leaderboard, summary, timeline, } from "./queries.js";
export { MAX_REDIRECTS, Session, redirectOf } from "./session.js";
export { ConnectError } from "./socket.js";
export { FeedError, Spectator } from "./spectator.js";
export { convert, toWire, variant } from "./wire.js";
export { World, componentName, isTickFrame, readTickFrame } from "./world.js";
