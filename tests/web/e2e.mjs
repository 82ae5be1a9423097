// Drives the tickforge web page in Debian's Chromium (through playwright-core) against a running
// server: node e2e.mjs HTTP_URL LIVE_MATCH_ID FINISHED_MATCH_ID ARTIFACT_DIR
// Exits 0 if every check holds; otherwise prints what failed and exits 1.
import { check, jsonFrom, run } from "./browser.mjs";
import { mkdirSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

const [url, liveId, doneId, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const getJson = jsonFrom(url);

await run(async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url + "/");

  // 1. The lists.
  await page.locator("#matches li", { hasText: `match ${liveId} ` }).waitFor({ timeout: 15000 });
  check(true, `the live match ${liveId} is listed`);
  await page.locator("#replays li", { hasText: `match ${doneId} ` }).waitFor({ timeout: 15000 });
  check(true, `the finished match ${doneId} is listed as a replay`);

  // 2. The live match: as many players drawn as the server reports; the event log grows.
  await page.locator("#matches li", { hasText: `match ${liveId} ` }).click();
  const players = (await getJson("/matches")).find((m) => m.id === Number(liveId)).players;
  await page.waitForFunction((n) => window.tickforge.drawn.players === n && window.tickforge.tick > 0, players, { timeout: 15000 });
  check(true, `the canvas draws ${players} players, as the server reports`);
  const before = await page.evaluate(() => window.tickforge.logCount);
  await page.waitForFunction((b) => window.tickforge.logCount > b + 5, before, { timeout: 15000 });
  check(true, "the event log grows while the match runs");
  await page.waitForFunction(() => window.tickforge.charts.tickUs >= 3 && window.tickforge.charts.frameBytes >= 3, null, { timeout: 15000 });
  check(true, "the live charts of tick time and bytes per tick fill");
  await page.screenshot({ path: `${artifacts}/live.jpg`, type: "jpeg", quality: 75 });

  // A shared link to the live match opens it.
  const linked = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  linked.on("pageerror", (e) => errors.push(e.message));
  await linked.goto(`${url}/#/match/${liveId}`);
  await linked.waitForFunction((id) => window.tickforge.mode === "live" && window.tickforge.matchId === id && window.tickforge.tick > 0, Number(liveId), { timeout: 15000 });
  check(true, `the deep link #/match/${liveId} follows the live match`);
  await linked.close();

  // 3. The finished match as a replay: seek to T shows the server's world at T.
  await page.locator("#replays li", { hasText: `match ${doneId} ` }).click();
  const ticks = (await getJson("/replays")).find((r) => r.id === Number(doneId)).ticks;
  const t = Math.floor(ticks / 2);
  await page.waitForFunction(() => window.tickforge.mode === "replay" && window.tickforge.world !== null, null, { timeout: 15000 });
  await page.evaluate((tick) => {
    const seek = document.getElementById("seek");
    seek.value = String(tick);
    seek.dispatchEvent(new Event("input"));
  }, t);
  await page.waitForFunction((tick) => window.tickforge.tick === tick, t, { timeout: 15000 });
  const shown = await page.evaluate(() => window.tickforge.world);
  const server = await getJson(`/replays/${doneId}/seek?tick=${t}`);
  check(isDeepStrictEqual(shown, server), `seeking to tick ${t} shows the world the server's seek returns`);
  const drawnPlayers = await page.evaluate(() => window.tickforge.drawn.players);
  const serverPlayers = server.entities.filter((e) => e.components.some((c) => "player" in c)).length;
  check(drawnPlayers === serverPlayers, `the replay canvas draws the ${serverPlayers} players of tick ${t}`);
  const marks = await page.evaluate(() => Number(document.getElementById("marks").dataset.count));
  const rejections = (await getJson(`/replays/${doneId}/rejections`)).length;
  check(marks === rejections && rejections > 0, `${rejections} rejected commands are marked on the timeline`);
  await page.click("#forward");
  await page.waitForFunction((tick) => window.tickforge.tick === tick + 1, t, { timeout: 15000 });
  check(true, "stepping forward moves one tick");
  await page.screenshot({ path: `${artifacts}/replay.jpg`, type: "jpeg", quality: 75 });
  check(errors.length === 0, `no script errors on the page ${errors.join("; ")}`);
});
