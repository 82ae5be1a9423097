// Drives the tickforge stats page (/stats) in Debian's Chromium (through playwright-core)
// against a running development server whose read models hold ended match MATCH_ID:
//   node stats.mjs HTTP_URL ARTIFACT_DIR MATCH_ID
// The leaderboard shows the query API's ranking; a click on a name opens that player's page
// with their career; a click on their latest match opens its page, whose timeline chart ends on
// every player's kills and damage from the summary. Exits 0 if every check holds; otherwise
// prints what failed and exits 1.
import { check, jsonFrom, run } from "./browser.mjs";
import { mkdirSync } from "node:fs";

const [url, artifacts, matchId] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const getJson = jsonFrom(url);
const ready = (page, what) =>
  page.waitForFunction((p) => window.tickforgeStats.ready && window.tickforgeStats.route?.page === p, what, { timeout: 20000 });

await run(async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));

  // The leaderboard: the query API's entries, in its order.
  const board = await getJson("/leaderboard?game=arena&period=all&limit=100");
  await page.goto(`${url}/stats#/leaderboard/arena/all`);
  await ready(page, "leaderboard");
  const shown = await page.$$eval("#board-table tbody tr", (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)));
  check(shown.length === board.entries.length && shown.length > 0, `the leaderboard shows ${shown.length} players, as the API ranks ${board.entries.length}`);
  board.entries.forEach((e, i) => {
    const row = shown[i];
    if (row[0] !== String(e.rank) || row[1] !== e.name || row[2] !== String(e.wins) || row[3] !== String(e.kills))
      throw new Error(`row ${i} is ${row.join(",")}, the API says ${JSON.stringify(e)}`);
  });
  check(true, "every row's rank, name, wins and kills are the API's");

  // A name opens the player's page.
  const first = board.entries[0].name;
  await page.click(`#board-table tbody tr:first-child a`);
  await ready(page, "player");
  const c = await getJson(`/players/${encodeURIComponent(first)}`);
  const totals = await page.$$eval("#player-totals tbody td", (cells) => cells.map((td) => td.textContent));
  check(totals[0] === String(c.matches) && totals[2] === String(c.kills) && totals[3] === String(c.deaths),
    `${first}'s page shows ${totals.slice(0, 4).join("/")}, the API ${c.matches}/${c.wins}/${c.kills}/${c.deaths}`);
  const recent = await page.$$eval("#player-recent tbody tr", (rows) => rows.length);
  check(recent === c.recent.length && recent >= 1, `and their ${recent} latest matches`);

  // The latest match opens its page: the chart's last values are the summary's.
  await page.click(`#player-recent tbody tr:first-child a`);
  await ready(page, "match");
  const s = await getJson(`/matches/${c.recent[0].match_id}/summary`);
  check(String(s.match_id) === matchId, `the latest match is match ${matchId}`);
  const series = await page.evaluate(() => window.tickforgeStats.series);
  check(series.kills.length === s.players.length, `the chart has a line for each of the ${s.players.length} players`);
  for (const p of s.players) {
    const kills = series.kills.find((x) => x.name === p.name);
    const damage = series.damage.find((x) => x.name === p.name);
    const lastKills = kills?.points.at(-1);
    const lastDamage = damage?.points.at(-1);
    if (!lastKills || lastKills[1] !== p.kills || lastDamage[1] !== p.damage_dealt || lastKills[0] !== s.duration_ticks)
      throw new Error(`${p.name}: the chart ends at ${JSON.stringify(lastKills)} / ${JSON.stringify(lastDamage)}, the summary says ${p.kills} kills, ${p.damage_dealt} damage at tick ${s.duration_ticks}`);
  }
  check(true, "each line ends at the match's last tick on the summary's kills and damage");
  const drawn = await page.$eval("#kills-chart", (canvas) => {
    const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const colors = new Set();
    for (let i = 0; i < d.length; i += 16) colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return colors.size;
  });
  check(drawn > 4, `the kills chart is drawn (${drawn} colours)`);
  await page.screenshot({ path: `${artifacts}/stats.png` });

  // The period selector reloads the board; an unknown name says so.
  await page.goto(`${url}/stats#/leaderboard/arena/all`);
  await ready(page, "leaderboard");
  await page.selectOption("#period", "day");
  await page.waitForFunction(() => window.tickforgeStats.ready && window.tickforgeStats.board?.period === "day", null, { timeout: 20000 });
  check(true, "the period selector shows today's board");
  await page.goto(`${url}/stats#/player/nobody-at-all`);
  await ready(page, "player");
  const none = await page.textContent("#player-totals");
  check(none.includes("No matches"), `an unknown player's page says so: "${none}"`);
  check(errors.length === 0, `no script errors${errors.length ? `: ${errors.join("; ")}` : ""}`);
});
