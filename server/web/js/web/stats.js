// The read side's page (/stats): a leaderboard by game and period, a player's page (totals,
// per game, latest matches) and a match's page (its summary and a timeline chart of every
// player's kills and damage over the ticks), all from the query API (docs/QUERIES.md).
// Deep links: #/leaderboard/GAME/PERIOD, #/player/NAME, #/match/ID. Every request goes to the
// server that served this page.
import { HttpError, career, leaderboard, summary, timeline, } from "../src/index.js";
import { drawChart } from "./chart.js";
const $ = (id) => document.getElementById(id);
const server = location.origin;
/** Frames a match's chart asks for at most: the interval is the match's length over this. */
const CHART_FRAMES = 300;
const COLORS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292"];
// What the page shows now; also read by the end-to-end test.
const view = {
    route: null,
    /** Set once the route's answers are drawn. */
    ready: false,
    error: null,
    board: null,
    career: null,
    summary: null,
    timeline: null,
    /** The chart's series: kills and damage dealt per player over ticks. */
    series: { kills: [], damage: [] },
};
window.tickforgeStats = view;
function parse(hash) {
    const [page, a, b] = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (page === "player" && a)
        return { page: "player", name: a };
    if (page === "match" && a && /^\d+$/.test(a))
        return { page: "match", id: Number(a) };
    const period = b === "day" || b === "week" ? b : "all";
    return { page: "leaderboard", game: page === "leaderboard" && a ? a : "arena", period };
}
const link = (href, text) => {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
};
const playerLink = (name) => link(`#/player/${encodeURIComponent(name)}`, name);
const matchLink = (id) => link(`#/match/${id}`, `match ${id}`);
/** A table of `rows`, each cell text or an element. */
function table(headings, rows) {
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const h of headings) {
        const th = document.createElement("th");
        th.textContent = h;
        head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
        const tr = body.insertRow();
        for (const cell of row) {
            const td = tr.insertCell();
            if (cell instanceof HTMLElement)
                td.appendChild(cell);
            else
                td.textContent = String(cell);
        }
    }
    return t;
}
const pct = (v) => (v === null ? "–" : `${(v * 100).toFixed(1)} %`);
const minutes = (ms) => `${(ms / 60000).toFixed(1)} min`;
function show(page) {
    for (const id of ["board", "player", "match"])
        $(id).hidden = id !== (page === "leaderboard" ? "board" : page);
}
async function drawLeaderboard(game, period) {
    $("game").value = game;
    $("period").value = period;
    const board = await leaderboard(server, { game, period, limit: 100 });
    view.board = board;
    const rows = board.entries.map((e) => [e.rank, playerLink(e.name), e.wins, e.kills, e.deaths, e.matches]);
    const out = $("board-table");
    out.replaceChildren(rows.length > 0
        ? table(["#", "player", "wins", "kills", "deaths", "matches"], rows)
        : document.createTextNode(`No ended ${game} matches in this period yet.`));
}
async function drawPlayer(name) {
    const c = await career(server, name);
    view.career = c;
    $("player-name").textContent = name;
    if (!c) {
        $("player-totals").replaceChildren(document.createTextNode("No matches projected for this name."));
        $("player-games").replaceChildren();
        $("player-recent").replaceChildren();
        return;
    }
    $("player-totals").replaceChildren(table(["matches", "wins", "kills", "deaths", "damage dealt", "damage taken", "accuracy", "time played"], [[c.matches, c.wins, c.kills, c.deaths, c.damage_dealt, c.damage_taken, pct(c.accuracy), minutes(c.time_played_ms)]]));
    $("player-games").replaceChildren(table(["game", "matches", "wins", "kills", "deaths", "accuracy"], Object.entries(c.games).map(([g, t]) => [
        link(`#/leaderboard/${encodeURIComponent(g)}/all`, g),
        t.matches,
        t.wins,
        t.kills,
        t.deaths,
        pct(t.accuracy),
    ])));
    $("player-recent").replaceChildren(table(["match", "game", "result", "kills", "deaths", "damage", "started"], c.recent.map((m) => [
        matchLink(m.match_id),
        m.game,
        m.ended ? (m.won ? "won" : "lost") : "running",
        m.kills,
        m.deaths,
        m.damage_dealt,
        new Date(m.created_at_unix_ms).toISOString().replace("T", " ").slice(0, 19),
    ])));
}
/** Each player's `field` over the frames' ticks. */
function seriesOf(t, field) {
    const byPlayer = new Map();
    for (const frame of t.frames) {
        for (const [id, p] of Object.entries(frame.players)) {
            let s = byPlayer.get(id);
            if (!s) {
                s = { name: p.name, color: COLORS[byPlayer.size % COLORS.length], points: [] };
                byPlayer.set(id, s);
            }
            s.points.push([frame.tick, p[field]]);
        }
    }
    return [...byPlayer.values()];
}
async function drawMatch(id) {
    $("match-title").textContent = `match ${id}`;
    const s = await summary(server, id);
    view.summary = s;
    if (!s) {
        $("match-summary").replaceChildren(document.createTextNode("The read models hold no such match."));
        view.series = { kills: [], damage: [] };
        return;
    }
    const result = s.result
        ? `${s.result.reason.replace("_", " ")}${s.result.winner ? `, ${s.result.winner} won` : ""}`
        : "running";
    $("match-facts").textContent =
        `${s.game} · ${(s.duration_ms / 1000).toFixed(1)} s (${s.duration_ticks} ticks at ${s.tick_rate_hz} Hz) · ` +
            `${result} · ${s.events} events, ${s.rejections} rejections`;
    $("match-summary").replaceChildren(table(["player", "kills", "deaths", "damage dealt", "damage taken", "accuracy", "won"], s.players.map((p) => [
        playerLink(p.name),
        p.kills,
        p.deaths,
        p.damage_dealt,
        p.damage_taken,
        pct(p.accuracy),
        p.won ? "yes" : "",
    ])));
    const interval = Math.max(1, Math.ceil(s.duration_ticks / CHART_FRAMES));
    const t = await timeline(server, id, { interval_ticks: interval, frames: CHART_FRAMES + 2 });
    view.timeline = t;
    view.series = t ? { kills: seriesOf(t, "kills"), damage: seriesOf(t, "damage_dealt") } : { kills: [], damage: [] };
    drawChart($("kills-chart"), view.series.kills, { title: "kills over ticks", steps: true });
    drawChart($("damage-chart"), view.series.damage, { title: "damage dealt over ticks", steps: true });
}
async function route() {
    const r = parse(location.hash);
    view.route = r;
    view.ready = false;
    view.error = null;
    show(r.page);
    $("status").textContent = "loading…";
    try {
        if (r.page === "leaderboard")
            await drawLeaderboard(r.game, r.period);
        else if (r.page === "player")
            await drawPlayer(r.name);
        else
            await drawMatch(r.id);
        $("status").textContent = "";
    }
    catch (e) {
        view.error = e instanceof HttpError ? e.detail : String(e);
        $("status").textContent = e instanceof HttpError && e.error === "no_read_models"
            ? "This server keeps no read models (--read-db off)."
            : `The read models could not be read: ${view.error}`;
    }
    view.ready = true;
}
const boardRoute = () => {
    location.hash = `#/leaderboard/${encodeURIComponent($("game").value)}/${$("period").value}`;
};
$("game").addEventListener("change", boardRoute);
$("period").addEventListener("change", boardRoute);
$("find").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("find-input").value.trim();
    if (q)
        location.hash = /^\d+$/.test(q) ? `#/match/${q}` : `#/player/${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", () => void route());
void route();
