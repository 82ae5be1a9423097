// Plays the tickforge play page in Debian's Chromium (through playwright-core) against a
// running development server: node play.mjs HTTP_URL ARTIFACT_DIR
// A scripted player joins a match with one idle bot (score limit 1), moves with the keyboard,
// aims with the mouse and fires until it has scored; then a deep link opens the match's replay
// at a tick. Prints "MATCH <id>" for the caller (which verifies the replay file) and exits 0 if
// every check holds; otherwise prints what failed and exits 1.
import { check, jsonFrom, run } from "./browser.mjs";
import { mkdirSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

const [url, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const getJson = jsonFrom(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const component = (entity, name) => entity?.components.find((c) => name in c)?.[name];

await run(async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/play?bots=1&behavior=idle&score_limit=1&name=tester`);
  await page.waitForFunction(() => window.tickforgePlay.entity !== null && window.tickforgePlay.tick > 0, null, { timeout: 20000 });
  const { matchId, entity } = await page.evaluate(() => ({ matchId: window.tickforgePlay.matchId, entity: window.tickforgePlay.entity }));
  console.log(`MATCH ${matchId}`);
  check(true, `the page joined match ${matchId} as entity ${entity}`);
  await page.waitForFunction(() => window.tickforgePlay.others().length === 1, null, { timeout: 20000 });
  check(true, "one bot is in the match");

  // Move with the keyboard; the server's world shows it.
  // The player's entity in the server's world; undefined once the match has ended (404).
  const mine = async () => (await getJson(`/matches/${matchId}/snapshot`)).entities?.find((e) => e.id === entity);
  const start = component(await mine(), "pos");
  await page.locator("#arena").focus();
  await page.keyboard.down("d");
  await page.keyboard.down("s");
  await sleep(500);
  await page.keyboard.up("d");
  await page.keyboard.up("s");
  await sleep(200);
  const moved = component(await mine(), "pos");
  check(moved.x !== start.x || moved.y !== start.y, `the player moved on the server: (${start.x}, ${start.y}) → (${moved.x}, ${moved.y})`);

  // Aim at the bot and fire until the player has scored.
  let sawProjectile = false;
  let shots = 0;
  const deadline = Date.now() + 60000;
  let screenshot = false;
  while (Date.now() < deadline) {
    const state = await page.evaluate(() => ({ kills: window.tickforgePlay.kills, ended: window.tickforgePlay.ended }));
    if (state.kills >= 1 || state.ended) break;
    const [bot] = await page.evaluate(() => window.tickforgePlay.others());
    const me = component(await mine(), "pos");
    if (!bot || !me) { await sleep(100); continue; }
    const dx = bot.x - me.x, dy = bot.y - me.y;
    const keys = [dx > 0 ? "d" : "a", dy > 0 ? "s" : "w"];
    if (Math.hypot(dx, dy) > 15000) {
      // Close in first: the projectile's range is about 36 m.
      for (const k of keys) await page.keyboard.down(k);
      await sleep(150);
      for (const k of keys) await page.keyboard.up(k);
      continue;
    }
    const at = await page.evaluate(([x, y]) => window.tickforgePlay.toScreen(x, y), [bot.x, bot.y]);
    await page.mouse.move(at.x, at.y);
    await page.mouse.down();
    await page.mouse.up();
    shots++;
    await sleep(40);
    const world = await getJson(`/matches/${matchId}/snapshot`).catch(() => null);
    if (world?.entities?.some((e) => component(e, "projectile")?.shooter === entity)) sawProjectile = true;
    if (!screenshot && sawProjectile) {
      await page.screenshot({ path: `${artifacts}/play.png` });
      screenshot = true;
    }
    await sleep(230);
  }
  check(sawProjectile, `the server's world held a projectile the player fired (${shots} clicks)`);
  await page.waitForFunction(() => window.tickforgePlay.kills >= 1, null, { timeout: 5000 });
  check(true, "the player scored against the idle bot");
  await page.waitForFunction(() => window.tickforgePlay.ended !== null, null, { timeout: 10000 });
  check(await page.locator("#overlay").isVisible(), "the match ended (score limit 1) and the rematch button shows");
  if (!screenshot) await page.screenshot({ path: `${artifacts}/play.png` });

  // The replay, through a deep link, at a tick: the page's world is the server's seek.
  let replay = null;
  for (let i = 0; i < 50 && !replay; i++) {
    replay = (await getJson("/replays")).find((r) => r.id === matchId && !r.running) ?? null;
    if (!replay) await sleep(100);
  }
  check(replay !== null, `match ${matchId} is listed among the replays`);
  const t = Math.floor(replay.ticks / 2);
  const viewer = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  viewer.on("pageerror", (e) => errors.push(e.message));
  await viewer.goto(`${url}/#/replay/${matchId}?tick=${t}`);
  await viewer.waitForFunction((tick) => window.tickforge.mode === "replay" && window.tickforge.tick === tick && window.tickforge.world !== null, t, { timeout: 15000 });
  const shown = await viewer.evaluate(() => window.tickforge.world);
  const seek = await getJson(`/replays/${matchId}/seek?tick=${t}`);
  check(isDeepStrictEqual(shown, seek), `the deep link #/replay/${matchId}?tick=${t} shows the server's world at tick ${t}`);
  await viewer.waitForFunction(() => window.tickforge.charts.score > 0, null, { timeout: 15000 });
  check(true, "the replay's kill chart has points");
  await viewer.screenshot({ path: `${artifacts}/replay-deep-link.jpg`, type: "jpeg", quality: 75 });
  check(errors.length === 0, `no script errors on the pages ${errors.join("; ")}`);
});
