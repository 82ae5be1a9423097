// The read side's query API through the client, against the real server binary: an arena
// match of dev bots plays to its time limit, then its summary, its timeline, the leaderboard
// and a bot's career agree with each other; unknown names and matches are null; a bad
// parameter is an HttpError naming it.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HttpError, career, createMatch, guestToken, leaderboard, summary, timeline } from "../src/index.js";
import { startServer, until, type TestServer } from "./server.js";

let server: TestServer;

before(async () => {
  server = await startServer(["--projection-batch-ms", "50"]);
});

after(async () => {
  await server.stop();
});

test("a projected match's summary, timeline, leaderboard and careers agree", { timeout: 60_000 }, async () => {
  const token = await guestToken(server.url, { name: "host" });
  const match = await createMatch(server.url, token, {
    game: "arena",
    bots: 3,
    config: { max_players: 4, width_mm: 8000, height_mm: 8000, time_limit_ticks: 240 },
  });
  const id = Number(match.id);
  await until("the match ends and is projected", async () => (await summary(server.url, id))?.state === "ended", 40_000);
  const s = (await summary(server.url, id))!;
  assert.equal(s.players.length, 3);
  assert.equal(s.result?.reason, "time_limit");

  const t = (await timeline(server.url, id, { interval_ticks: 30, frames: 100 }))!;
  const last = t.frames.at(-1)!;
  assert.equal(last.tick, s.duration_ticks, "the last frame is the match's last tick");
  const shown = t.frames.reduce((n, f) => n + f.events.length, 0);
  assert.equal(shown, s.events, "every event is in one frame");
  for (const p of s.players) {
    const framed = Object.values(last.players).find((f) => f.name === p.name)!;
    assert.deepEqual([framed.kills, framed.damage_dealt], [p.kills, p.damage_dealt], p.name);
  }

  const board = await leaderboard(server.url, { game: "arena", period: "day" });
  assert.deepEqual(
    board.entries.map((e) => e.name).sort(),
    s.players.map((p) => p.name).sort(),
    "the day's board holds the match's players",
  );
  const top = board.entries[0]!;
  assert.equal(top.rank, 1);
  const c = (await career(server.url, top.name))!;
  assert.deepEqual([c.matches, c.wins, c.kills], [1, top.wins, top.kills]);
  assert.equal(c.recent[0]?.match_id, id);
});

test("unknown players and matches are null; a bad parameter names itself", { timeout: 30_000 }, async () => {
  assert.equal(await career(server.url, "nobody at all"), null);
  assert.equal(await summary(server.url, 987654), null);
  assert.equal(await timeline(server.url, 987654), null);
  await assert.rejects(
    leaderboard(server.url, { game: "arena", period: "month" as "all" }),
    (e: unknown) => e instanceof HttpError && e.status === 400 && e.error === "bad_query" && e.detail.includes("period"),
  );
});
