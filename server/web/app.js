// The tickforge web viewer: live matches through the spectator feed and the server's current
// world, finished matches as replays through the server's seek. Plain modern JavaScript; every
// request goes to the server that served this page.

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");

// What the page shows now; also read by the end-to-end test.
const view = {
  mode: "none", // "live" | "replay"
  matchId: null,
  config: null,
  tick: 0,
  seq: 0,
  world: null, // { tick, entities: [{ id, components: [...] }] }
  drawn: { players: 0, projectiles: 0, pickups: 0 },
  logCount: 0,
  ended: false,
};
window.tickforge = view;

const EVENT_KINDS = ["player_joined", "player_left", "player_spawned", "player_steered", "projectile_fired",
  "player_hit", "player_killed", "projectile_expired", "pickup_spawned", "pickup_collected", "player_drifted", "match_ended"];
for (const k of EVENT_KINDS) $("kind").append(new Option(k, k));

let token = null;
async function getToken() {
  if ($("token").value.trim()) return $("token").value.trim();
  if (token) return token;
  const r = await fetch("/auth/guest", { method: "POST", body: JSON.stringify({ name: "viewer", role: "spectator" }) });
  if (!r.ok) throw new Error("this server issues no guest tokens: paste a spectator token above");
  token = (await r.json()).token;
  return token;
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

// ---- health and lists -------------------------------------------------------------------

function metric(text, name) {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}

async function refreshHealth() {
  try {
    const [health, metrics] = await Promise.all([getJson("/healthz"), fetch("/metrics").then((r) => r.text())]);
    const p99 = metric(metrics, "tickforge_tick_duration_p99_seconds") * 1000;
    const ticks = metric(metrics, "tickforge_ticks_total");
    $("health").textContent = `${health.status} · ${health.matches_running} running · ${health.players} players · `
      + `${health.spectators} spectators · ${Number.isFinite(ticks) ? ticks : 0} ticks · tick p99 ${Number.isFinite(p99) ? p99.toFixed(2) : "–"} ms`;
  } catch (e) {
    $("health").textContent = `server unreachable: ${e.message}`;
  }
}

function item(label, detail, selected, onclick) {
  const li = document.createElement("li");
  li.className = "item" + (selected ? " selected" : "");
  li.innerHTML = `<span></span><small></small>`;
  li.firstChild.textContent = label;
  li.lastChild.textContent = detail;
  li.onclick = onclick;
  return li;
}

let replayList = [];
async function refreshLists() {
  try {
    const [matches, replays] = await Promise.all([getJson("/matches"), getJson("/replays")]);
    replayList = replays;
    const live = matches.filter((m) => m.state === "running");
    $("matches").replaceChildren(...live.map((m) => item(`match ${m.id} · ${m.game}`, `${m.players}/${m.max_players} · t${m.tick}`,
      view.mode === "live" && view.matchId === m.id, () => watchLive(m))));
    const done = replays.filter((r) => !r.running);
    $("replays").replaceChildren(...done.map((r) => item(`match ${r.id} · ${r.game}`, `${r.ticks} ticks`,
      view.mode === "replay" && view.matchId === r.id, () => openReplay(r))));
  } catch (e) {
    $("matches").replaceChildren(item("could not list matches", e.message, false, () => {}));
  }
}

// ---- the event log ------------------------------------------------------------------------

function logEvents(events, replace) {
  const kind = $("kind").value;
  const shown = kind ? events.filter((e) => Object.keys(e.kind)[0] === kind) : events;
  const lines = shown.map((e) => {
    const li = document.createElement("li");
    const name = Object.keys(e.kind)[0];
    li.innerHTML = `<span class="seq"></span> <span class="kind"></span> <span></span>`;
    li.children[0].textContent = `#${e.seq} t${e.tick}`;
    li.children[1].textContent = name;
    li.children[2].textContent = JSON.stringify(e.kind[name]);
    return li;
  });
  const log = $("log");
  if (replace) log.replaceChildren(...lines);
  else if ($("follow").checked) log.append(...lines);
  while (log.children.length > 500) log.firstChild.remove();
  view.logCount = replace ? lines.length : view.logCount + lines.length;
  $("log-count").textContent = `${view.logCount} shown`;
  if ($("follow").checked) log.parentElement.scrollTop = log.parentElement.scrollHeight;
}

// ---- drawing ---------------------------------------------------------------------------

function component(entity, name) {
  for (const c of entity.components) if (name in c) return c[name];
  return null;
}

function bounds() {
  const c = view.config && (view.config.arena || view.config.drift);
  return c ? { w: c.width_mm, h: c.height_mm, r: c.player_radius_mm || 600 } : { w: 40000, h: 40000, r: 500 };
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
      if (!pos) continue;
      const projectile = component(e, "projectile");
      const pickup = component(e, "pickup");
      const player = component(e, "player");
      if (projectile) {
        const vel = component(e, "vel") || { vx: 0, vy: 0 };
        const age = Math.max(0, tick - projectile.fired_at);
        const x = (pos.x + vel.vx * age) * scale, y = (pos.y + vel.vy * age) * scale;
        ctx.fillStyle = "#ffd166";
        ctx.beginPath(); ctx.arc(x, y, 2.5, 0, Math.PI * 2); ctx.fill();
        drawn.projectiles++;
      } else if (pickup) {
        ctx.fillStyle = "#3ddc97";
        ctx.fillRect(pos.x * scale - 4, pos.y * scale - 1.5, 8, 3);
        ctx.fillRect(pos.x * scale - 1.5, pos.y * scale - 4, 3, 8);
        drawn.pickups++;
      } else if (player) {
        const hp = component(e, "hp");
        const dead = hp && hp.respawn_at !== null;
        const x = pos.x * scale, y = pos.y * scale, radius = Math.max(4, r * scale);
        ctx.fillStyle = dead ? "#3a404a" : `hsl(${(player.player * 67) % 360} 70% 60%)`;
        ctx.beginPath(); ctx.arc(x, y, radius, 0, Math.PI * 2); ctx.fill();
        if (hp && !dead) {
          ctx.fillStyle = "#ff6b6b"; ctx.fillRect(x - radius, y - radius - 6, 2 * radius, 3);
          ctx.fillStyle = "#3ddc97"; ctx.fillRect(x - radius, y - radius - 6, 2 * radius * Math.max(0, hp.hp) / 100, 3);
        }
        ctx.fillStyle = "#d8dee9"; ctx.font = "11px system-ui";
        const score = component(e, "score");
        ctx.fillText(player.name + (score ? ` ${score.kills}/${score.deaths}` : ""), x + radius + 3, y + 4);
        drawn.players++;
      }
    }
  }
  view.drawn = drawn;
  const where = view.mode === "replay" ? "replay" : view.mode === "live" ? "live" : "";
  $("status").textContent = view.matchId === null ? "Pick a match or a replay."
    : `${where} · match ${view.matchId} · tick ${view.tick} · seq ${view.seq} · ${drawn.players} players · ${drawn.projectiles} projectiles · ${drawn.pickups} pickups${view.ended ? " · ended" : ""}`;
}

// ---- live ------------------------------------------------------------------------------

let socket = null;
let poller = null;
function stopAll() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  if (poller) { clearInterval(poller); poller = null; }
  playing = false; $("play").textContent = "▶";
}

async function watchLive(match) {
  stopAll();
  Object.assign(view, { mode: "live", matchId: match.id, config: match.config, tick: 0, seq: 0, world: null, ended: false, logCount: 0 });
  $("controls").hidden = true;
  $("log").replaceChildren();
  refreshLists();
  const t = await getToken();
  socket = new WebSocket(`${location.origin.replace(/^http/, "ws")}/spectate/${match.id}?from=live&format=json&token=${encodeURIComponent(t)}`);
  socket.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    // One message per tick: its events and the state hash (a string: it exceeds 2^53).
    if (msg.tick) {
      const { tick, events } = msg.tick;
      if (events.length > 0) { view.seq = events[events.length - 1].seq; logEvents(events, false); }
      view.tick = tick;
    } else if (msg.ended) view.ended = true;
  };
  socket.onclose = () => { view.ended = true; };
  let busy = false;
  poller = setInterval(async () => {
    if (busy) return;
    busy = true;
    try { view.world = await getJson(`/matches/${match.id}/snapshot`); view.tick = Math.max(view.tick, view.world.tick); }
    catch { /* the match may have ended: keep the last world */ }
    finally { busy = false; }
  }, 50);
}

// ---- replay ----------------------------------------------------------------------------

let playing = false;
let seeking = false;
let wanted = 0;

async function openReplay(replay) {
  stopAll();
  Object.assign(view, { mode: "replay", matchId: replay.id, config: replay.config, tick: 0, seq: 0, world: null, ended: true, logCount: 0 });
  $("controls").hidden = false;
  $("seek").max = String(replay.ticks);
  refreshLists();
  const rejections = await getJson(`/replays/${replay.id}/rejections`);
  $("marks").replaceChildren(...rejections.map((r) => {
    const s = document.createElement("span");
    s.style.left = `${(100 * r.tick) / Math.max(1, replay.ticks)}%`;
    s.title = `tick ${r.tick}: player ${r.player} ${r.rule}`;
    return s;
  }));
  $("marks").dataset.count = String(rejections.length);
  await seekTo(Math.min(1, replay.ticks));
}

async function seekTo(tick) {
  const max = Number($("seek").max);
  wanted = Math.max(0, Math.min(max, Math.round(tick)));
  if (seeking) return;
  seeking = true;
  try {
    while (true) {
      const target = wanted;
      const world = await getJson(`/replays/${view.matchId}/seek?tick=${target}`);
      view.world = world; view.tick = world.tick; view.seq = world.seq;
      $("seek").value = String(world.tick);
      $("seek-tick").textContent = `tick ${world.tick} / ${max}`;
      const events = await getJson(`/replays/${view.matchId}/events?from_tick=${Math.max(1, target - 120)}&to_tick=${target}`);
      logEvents(events, true);
      if (wanted === target) break;
    }
  } finally { seeking = false; }
}

$("seek").addEventListener("input", () => seekTo(Number($("seek").value)));
$("back").onclick = () => seekTo(view.tick - 1);
$("forward").onclick = () => seekTo(view.tick + 1);
$("play").onclick = () => { playing = !playing; $("play").textContent = playing ? "⏸" : "▶"; };
$("kind").onchange = () => { if (view.mode === "replay") seekTo(view.tick); else $("log").replaceChildren(); };

let last = performance.now();
let carry = 0;
function frame(now) {
  if (playing && view.mode === "replay" && !seeking) {
    const tickRate = 60;
    carry += ((now - last) / 1000) * tickRate * Number($("speed").value);
    if (carry >= 1) {
      const step = Math.floor(carry);
      carry -= step;
      const max = Number($("seek").max);
      if (view.tick >= max) { playing = false; $("play").textContent = "▶"; }
      else seekTo(view.tick + step);
    }
  }
  last = now;
  draw();
  requestAnimationFrame(frame);
}

refreshHealth();
refreshLists();
setInterval(refreshHealth, 2000);
setInterval(refreshLists, 3000);
requestAnimationFrame(frame);
