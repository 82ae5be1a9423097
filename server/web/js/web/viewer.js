// The tickforge web viewer: live matches through the spectator feed (the client library's
// Spectator) and the server's current world, finished matches as replays through the
// server's seek. Deep links: #/match/ID follows a live match, #/replay/ID?tick=T opens a
// replay at tick T. Every request goes to the server that served this page.
import { Spectator, guestToken, variant } from "../src/index.js";
import { drawChart } from "./chart.js";
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
// What the page shows now; also read by the end-to-end test.
const view = {
    mode: "none",
    matchId: null,
    config: null,
    tick: 0,
    seq: 0,
    world: null,
    drawn: { players: 0, projectiles: 0, pickups: 0 },
    logCount: 0,
    ended: false,
    /** Points in each chart. */
    charts: { tickUs: 0, frameBytes: 0, score: 0 },
};
window.tickforge = view;
const EVENT_KINDS = [
    "player_joined", "player_left", "player_spawned", "player_steered", "projectile_fired", "player_hit",
    "player_killed", "projectile_expired", "pickup_spawned", "pickup_collected", "player_drifted", "match_ended",
];
for (const k of EVENT_KINDS)
    $("kind").append(new Option(k, k));
let token = null;
async function getToken() {
    const typed = $("token").value.trim();
    if (typed)
        return typed;
    if (!token) {
        try {
            token = await guestToken(location.origin, { name: "viewer", role: "spectator" });
        }
        catch {
            throw new Error("this server issues no guest tokens: paste a spectator token above");
        }
    }
    return token;
}
async function getJson(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok)
        throw new Error(`${url}: ${r.status} ${await r.text()}`);
    return (await r.json());
}
// ---- health and lists -------------------------------------------------------------------
function metric(text, name) {
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return line ? Number(line.split(" ")[1]) : NaN;
}
async function refreshHealth() {
    try {
        const [health, metrics] = await Promise.all([
            getJson("/healthz"),
            fetch("/metrics").then((r) => r.text()),
        ]);
        const p99 = metric(metrics, "tickforge_tick_duration_p99_seconds") * 1000;
        const ticks = metric(metrics, "tickforge_ticks_total");
        $("health").textContent =
            `${health.status} · ${health.matches_running} running · ${health.players} players · ` +
                `${health.spectators} spectators · ${Number.isFinite(ticks) ? ticks : 0} ticks · tick p99 ${Number.isFinite(p99) ? p99.toFixed(2) : "–"} ms`;
    }
    catch (e) {
        $("health").textContent = `server unreachable: ${e.message}`;
    }
}
function item(label, detail, selected, onclick) {
    const li = document.createElement("li");
    li.className = "item" + (selected ? " selected" : "");
    const a = document.createElement("span");
    const b = document.createElement("small");
    a.textContent = label;
    b.textContent = detail;
    li.append(a, b);
    li.onclick = onclick;
    return li;
}
let replays = [];
let running = [];
async function refreshLists() {
    try {
        const [matches, files] = await Promise.all([getJson("/matches"), getJson("/replays")]);
        replays = files;
        running = matches.filter((m) => m.state === "running");
        $("matches").replaceChildren(...running.map((m) => item(`match ${m.id} · ${m.game}`, `${m.players}/${m.max_players} · t${m.tick}`, view.mode === "live" && view.matchId === m.id, () => go(`#/match/${m.id}`))));
        const done = replays.filter((r) => !r.running);
        $("replays").replaceChildren(...done.map((r) => item(`match ${r.id} · ${r.game}`, `${r.ticks} ticks`, view.mode === "replay" && view.matchId === r.id, () => go(`#/replay/${r.id}`))));
    }
    catch (e) {
        $("matches").replaceChildren(item("could not list matches", e.message, false, () => { }));
    }
}
// ---- the event log ------------------------------------------------------------------------
const kindName = (k) => (typeof k === "string" ? k : Object.keys(k)[0]);
function logEvents(events, replace) {
    const kind = $("kind").value;
    const follow = $("follow").checked;
    const shown = kind ? events.filter((e) => kindName(e.kind) === kind) : events;
    const lines = shown.map((e) => {
        const li = document.createElement("li");
        const name = kindName(e.kind);
        const seq = document.createElement("span");
        seq.className = "seq";
        seq.textContent = `#${e.seq} t${e.tick}`;
        const k = document.createElement("span");
        k.className = "kind";
        k.textContent = name;
        const body = document.createElement("span");
        body.textContent = JSON.stringify(typeof e.kind === "string" ? null : e.kind[name]);
        li.append(seq, " ", k, " ", body);
        return li;
    });
    const log = $("log");
    if (replace)
        log.replaceChildren(...lines);
    else if (follow)
        log.append(...lines);
    while (log.children.length > 500)
        log.firstChild.remove();
    view.logCount = replace ? lines.length : view.logCount + lines.length;
    $("log-count").textContent = `${view.logCount} shown`;
    if (follow)
        log.parentElement.scrollTop = log.parentElement.scrollHeight;
}
// ---- drawing ---------------------------------------------------------------------------
function component(entity, name) {
    for (const c of entity.components)
        if (name in c)
            return c[name];
    return null;
}
function bounds() {
    const c = view.config && (variant(view.config, "arena") ?? variant(view.config, "drift"));
    return c ? { w: c.width_mm, h: c.height_mm, r: variant(view.config, "arena")?.player_radius_mm ?? 600 } : { w: 40000, h: 40000, r: 500 };
}
function draw() {
    const { w, h, r } = bounds();
    const scale = Math.min(canvas.width / w, canvas.height / h);
    ctx.fillStyle = "#0b0e13";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#2b3442";
    ctx.strokeRect(0.5, 0.5, w * scale - 1, h * scale - 1);
    const drawn = { players: 0, projectiles: 0, pickups: 0 };
    const world = view.world;
    if (world) {
        const tick = world.tick;
        for (const e of world.entities) {
            const pos = component(e, "pos");
            if (!pos)
                continue;
            const projectile = component(e, "projectile");
            const pickup = component(e, "pickup");
            const player = component(e, "player");
            if (projectile) {
                const vel = component(e, "vel") || { vx: 0, vy: 0 };
                const age = Math.max(0, tick - projectile.fired_at);
                const x = (pos.x + vel.vx * age) * scale;
                const y = (pos.y + vel.vy * age) * scale;
                ctx.fillStyle = "#ffd166";
                ctx.beginPath();
                ctx.arc(x, y, 2.5, 0, Math.PI * 2);
                ctx.fill();
                drawn.projectiles++;
            }
            else if (pickup) {
                ctx.fillStyle = "#3ddc97";
                ctx.fillRect(pos.x * scale - 4, pos.y * scale - 1.5, 8, 3);
                ctx.fillRect(pos.x * scale - 1.5, pos.y * scale - 4, 3, 8);
                drawn.pickups++;
            }
            else if (player) {
                const hp = component(e, "hp");
                const dead = hp && hp.respawn_at !== null;
                const x = pos.x * scale;
                const y = pos.y * scale;
                const radius = Math.max(4, r * scale);
                ctx.fillStyle = dead ? "#3a404a" : `hsl(${(player.player * 67) % 360} 70% 60%)`;
                ctx.beginPath();
                ctx.arc(x, y, radius, 0, Math.PI * 2);
                ctx.fill();
                if (hp && !dead) {
                    ctx.fillStyle = "#ff6b6b";
                    ctx.fillRect(x - radius, y - radius - 6, 2 * radius, 3);
                    ctx.fillStyle = "#3ddc97";
                    ctx.fillRect(x - radius, y - radius - 6, (2 * radius * Math.max(0, hp.hp)) / 100, 3);
                }
                ctx.fillStyle = "#d8dee9";
                ctx.font = "11px system-ui";
                const score = component(e, "score");
                ctx.fillText(player.name + (score ? ` ${score.kills}/${score.deaths}` : ""), x + radius + 3, y + 4);
                drawn.players++;
            }
        }
    }
    view.drawn = drawn;
    const where = view.mode === "replay" ? "replay" : view.mode === "live" ? "live" : "";
    $("status").textContent =
        view.matchId === null
            ? "Pick a match or a replay."
            : `${where} · match ${view.matchId} · tick ${view.tick} · seq ${view.seq} · ${drawn.players} players · ` +
                `${drawn.projectiles} projectiles · ${drawn.pickups} pickups${view.ended ? " · ended" : ""}`;
}
// ---- charts ----------------------------------------------------------------------------
const tickUs = [];
const frameBytes = [];
let scoreSeries = [];
const COLORS = ["#6cb6ff", "#ff6b6b", "#3ddc97", "#ffd166", "#c792ea", "#f78c6c", "#89ddff", "#ff9cac"];
function drawCharts() {
    const a = $("chart-a");
    const b = $("chart-b");
    if (view.mode === "live") {
        drawChart(a, [{ name: "tick", color: COLORS[0], points: tickUs }], { title: "tick time", unit: " µs" });
        drawChart(b, [{ name: "frame", color: COLORS[2], points: frameBytes }], { title: "bytes per player per tick", unit: " B" });
    }
    else if (view.mode === "replay") {
        drawChart(a, scoreSeries, { title: "kills over ticks", steps: true });
        const ctxB = b.getContext("2d");
        ctxB.clearRect(0, 0, b.width, b.height);
    }
    view.charts = {
        tickUs: tickUs.length,
        frameBytes: frameBytes.length,
        score: scoreSeries.reduce((n, s) => n + s.points.length, 0),
    };
}
/** Kills per player over the replay's ticks, from its events (read a window at a time). */
async function loadScores(replay, generation) {
    const names = new Map();
    const kills = new Map();
    const window = 2000;
    for (let from = 1; from <= replay.ticks && generation === openGeneration; from += window) {
        const events = await getJson(`/replays/${replay.id}/events?from_tick=${from}&to_tick=${from + window - 1}`);
        for (const e of events) {
            const joined = variant(e.kind, "player_joined");
            if (joined) {
                names.set(joined.entity, joined.name);
                if (!kills.has(joined.entity))
                    kills.set(joined.entity, [[e.tick, 0]]);
            }
            const killed = variant(e.kind, "player_killed");
            if (killed && killed.killer !== null) {
                const series = kills.get(killed.killer) ?? [[0, 0]];
                series.push([e.tick, series[series.length - 1][1] + 1]);
                kills.set(killed.killer, series);
            }
        }
    }
    if (generation !== openGeneration)
        return;
    scoreSeries = [...kills].map(([entity, points], i) => ({
        name: names.get(entity) ?? `entity ${entity}`,
        color: COLORS[i % COLORS.length],
        points,
    }));
}
// ---- live ------------------------------------------------------------------------------
let spectator = null;
let poller = null;
let openGeneration = 0;
function stopAll() {
    openGeneration++;
    spectator?.close();
    spectator = null;
    if (poller)
        clearInterval(poller);
    poller = null;
    playing = false;
    $("play").textContent = "▶";
    tickUs.length = 0;
    frameBytes.length = 0;
    scoreSeries = [];
}
async function watchLive(id) {
    stopAll();
    const generation = openGeneration;
    const match = running.find((m) => m.id === id) ?? (await getJson("/matches")).find((m) => m.id === id);
    if (!match || match.state !== "running") {
        // Not running (any more): a finished match is a replay.
        if (replays.some((r) => r.id === id) || match)
            return go(`#/replay/${id}`, true);
        $("status").textContent = `match ${id} is not running here`;
        return;
    }
    Object.assign(view, { mode: "live", matchId: id, config: match.config, tick: 0, seq: 0, world: null, ended: false, logCount: 0 });
    $("controls").hidden = true;
    $("log").replaceChildren();
    void refreshLists();
    const s = await Spectator.watch(location.origin, id, { token: await getToken(), from: "live", format: "json", maxQueued: 0 });
    if (generation !== openGeneration)
        return s.close();
    spectator = s;
    s.on((m) => {
        if ("tick" in m) {
            const { tick, events } = m.tick;
            if (events.length > 0) {
                view.seq = events[events.length - 1].seq;
                logEvents(events, false);
            }
            view.tick = tick;
        }
        else if ("ended" in m || "closed" in m) {
            view.ended = true;
            if ("closed" in m)
                console.warn(`the feed closed with ${m.closed.code}: ${m.closed.reason}`);
        }
    });
    let busy = false;
    let lastSample = 0;
    poller = setInterval(async () => {
        if (busy)
            return;
        busy = true;
        try {
            const world = await getJson(`/matches/${id}/snapshot`);
            if (generation !== openGeneration)
                return;
            view.world = world;
            view.tick = Math.max(view.tick, world.tick);
            if (performance.now() - lastSample > 250) {
                lastSample = performance.now();
                const info = await getJson(`/matches/${id}`);
                if (generation !== openGeneration)
                    return;
                tickUs.push([info.tick, info.tick_us]);
                frameBytes.push([info.tick, info.frame_bytes]);
                for (const series of [tickUs, frameBytes])
                    while (series.length > 240)
                        series.shift();
            }
        }
        catch {
            // The match has ended (or the server is gone): keep the last world, stop asking.
            if (view.ended && poller) {
                clearInterval(poller);
                poller = null;
            }
        }
        finally {
            busy = false;
        }
    }, 50);
}
// ---- replay ----------------------------------------------------------------------------
let playing = false;
/** The replay (by open generation) whose seek loop is running, if any. */
let seekingIn = null;
let wanted = 0;
async function openReplay(id, tick) {
    stopAll();
    const generation = openGeneration;
    let replay = replays.find((r) => r.id === id);
    if (!replay) {
        replays = await getJson("/replays");
        replay = replays.find((r) => r.id === id);
    }
    if (!replay) {
        $("status").textContent = `no replay of match ${id} here`;
        return;
    }
    Object.assign(view, { mode: "replay", matchId: replay.id, config: replay.config, tick: 0, seq: 0, world: null, ended: true, logCount: 0 });
    $("controls").hidden = false;
    $("seek").max = String(replay.ticks);
    void refreshLists();
    const rejections = await getJson(`/replays/${replay.id}/rejections`);
    if (generation !== openGeneration)
        return;
    $("marks").replaceChildren(...rejections.map((r) => {
        const s = document.createElement("span");
        s.style.left = `${(100 * r.tick) / Math.max(1, replay.ticks)}%`;
        s.title = `tick ${r.tick}: player ${r.player} ${r.rule}`;
        return s;
    }));
    $("marks").dataset.count = String(rejections.length);
    void loadScores(replay, generation);
    await seekTo(tick ?? Math.min(1, replay.ticks));
}
async function seekTo(tick) {
    const max = Number($("seek").max);
    wanted = Math.max(0, Math.min(max, Math.round(tick)));
    const mine = openGeneration;
    if (seekingIn === mine)
        return;
    seekingIn = mine;
    try {
        while (true) {
            const target = wanted;
            const generation = openGeneration;
            const world = await getJson(`/replays/${view.matchId}/seek?tick=${target}`);
            if (generation !== openGeneration)
                return;
            view.world = world;
            view.tick = world.tick;
            view.seq = world.seq;
            $("seek").value = String(world.tick);
            $("seek-tick").textContent = `tick ${world.tick} / ${max}`;
            const events = await getJson(`/replays/${view.matchId}/events?from_tick=${Math.max(1, target - 120)}&to_tick=${target}`);
            logEvents(events, true);
            if (wanted === target)
                break;
        }
    }
    finally {
        if (seekingIn === mine)
            seekingIn = null;
    }
}
$("seek").addEventListener("input", () => seekTo(Number($("seek").value)));
$("back").onclick = () => seekTo(view.tick - 1);
$("forward").onclick = () => seekTo(view.tick + 1);
$("play").onclick = () => {
    playing = !playing;
    $("play").textContent = playing ? "⏸" : "▶";
};
$("kind").onchange = () => {
    if (view.mode === "replay")
        void seekTo(view.tick);
    else
        $("log").replaceChildren();
};
// ---- deep links ------------------------------------------------------------------------
/** Show `hash` (#/match/ID or #/replay/ID?tick=T), and put it in the address bar. */
function go(hash, replace = false) {
    if (location.hash !== hash) {
        if (replace)
            history.replaceState(null, "", hash);
        else
            history.pushState(null, "", hash);
    }
    route();
}
function route() {
    const m = /^#\/(match|replay)\/(\d+)(?:\?tick=(\d+))?$/.exec(location.hash);
    if (!m)
        return;
    const id = Number(m[2]);
    if (m[1] === "match")
        void watchLive(id);
    else
        void openReplay(id, m[3] === undefined ? null : Number(m[3]));
}
window.addEventListener("popstate", route);
window.addEventListener("hashchange", route);
let last = performance.now();
let carry = 0;
function frame(now) {
    if (playing && view.mode === "replay" && seekingIn === null) {
        carry += ((now - last) / 1000) * 60 * Number($("speed").value);
        if (carry >= 1) {
            const step = Math.floor(carry);
            carry -= step;
            const max = Number($("seek").max);
            if (view.tick >= max) {
                playing = false;
                $("play").textContent = "▶";
            }
            else
                void seekTo(view.tick + step);
        }
    }
    last = now;
    draw();
    drawCharts();
    requestAnimationFrame(frame);
}
void refreshHealth();
void refreshLists().then(route);
setInterval(refreshHealth, 2000);
setInterval(refreshLists, 3000);
requestAnimationFrame(frame);
