// The playable page: the visitor in an arena match against the server's bots, through the
// client library. WASD or the arrow keys move, the mouse aims and a click fires. What is
// drawn runs one tick behind the mirror and is interpolated between the last two ticks, so
// that 60 Hz updates look smooth at any refresh rate.
//
// Settings in the address: ?bots=N (default 3), &behavior=fight|wander|idle, &score_limit=K,
// &name=NAME.

import { Session, createMatch, guestToken, variant, type ArenaConfig, type EntityState, type SessionMessage } from "../src/index.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>("arena");
const ctx = canvas.getContext("2d")!;
const params = new URLSearchParams(location.search);

interface Body {
  x: number;
  y: number;
}
/** One tick of what is drawn: each entity's position, and the tick's arrival time. */
interface Frame {
  tick: number;
  at: number;
  pos: Map<number, Body>;
}

// What the page shows; also read by the end-to-end test.
const game = {
  matchId: null as number | null,
  entity: null as number | null,
  tick: 0,
  hp: 0,
  kills: 0,
  deaths: 0,
  shots: 0,
  ended: null as string | null,
  feed: [] as string[],
  /** The screen position of a world position (for tests that aim with the mouse). */
  toScreen(x: number, y: number): { x: number; y: number } {
    const r = canvas.getBoundingClientRect();
    return { x: r.left + x * scale * (r.width / canvas.width), y: r.top + y * scale * (r.height / canvas.height) };
  },
  /** Other living players' positions in the mirror. */
  others(): { entity: number; x: number; y: number }[] {
    const w = session?.world;
    if (!w) return [];
    return w
      .ids()
      .filter((id) => id !== game.entity && w.get(id, "player") && w.get<{ respawn_at: number | null }>(id, "hp")?.respawn_at === null)
      .map((id) => ({ entity: id, ...w.get<Body>(id, "pos")! }));
  },
};
(window as unknown as { tickforgePlay: typeof game }).tickforgePlay = game;

let session: Session | null = null;
let rules: ArenaConfig | null = null;
let scale = 1;
let previous: Frame | null = null;
let current: Frame | null = null;

function positions(entities: EntityState[], tick: number): Frame {
  const pos = new Map<number, Body>();
  for (const e of entities) {
    for (const c of e.components) {
      const p = variant(c, "pos");
      if (p) pos.set(e.id, { x: p.x, y: p.y });
    }
  }
  return { tick, at: performance.now(), pos };
}

async function start(): Promise<void> {
  $("overlay").hidden = true;
  $("status").textContent = "joining…";
  session?.close();
  session = null;
  sentVelocity = "0,0";
  const name = params.get("name") ?? `player-${Math.floor(Math.random() * 1000)}`;
  const token = await guestToken(location.origin, { name });
  const config: { [k: string]: number } = { max_players: 8, time_limit_ticks: 3 * 60 * 60 };
  if (params.get("score_limit")) config.score_limit = Number(params.get("score_limit"));
  const match = await createMatch(location.origin, token, {
    game: "arena",
    config,
    bots: Number(params.get("bots") ?? 3),
    bot_behavior: (params.get("behavior") ?? "fight") as "fight" | "wander" | "idle",
  });
  const s = await Session.join(location.origin, { token, matchId: match.id, name, maxQueued: 0 });
  session = s;
  rules = variant(s.rules, "arena") ?? null;
  Object.assign(game, { matchId: s.matchId, entity: s.entity, ended: null, feed: [], shots: 0 });
  previous = current = positions(s.world!.entities(), s.world!.tick);
  lastScores.clear();
  for (const e of s.world!.entities()) {
    const sc = s.world!.get<{ kills: number; deaths: number }>(e.id, "score");
    if (sc) lastScores.set(e.id, { kills: sc.kills, deaths: sc.deaths });
  }
  $("status").textContent = `match ${s.matchId} · you are ${name}`;
  $<HTMLAnchorElement>("replay").href = `/#/replay/${s.matchId}`;
  s.on(onMessage);
}

function onMessage(m: SessionMessage): void {
  const s = session!;
  if ("tick" in m) {
    const w = s.world!;
    game.tick = w.tick;
    const me = s.entity!;
    game.hp = w.get<{ hp: number }>(me, "hp")?.hp ?? 0;
    const score = w.get<{ kills: number; deaths: number }>(me, "score");
    game.kills = score?.kills ?? 0;
    game.deaths = score?.deaths ?? 0;
    killFeed(m.tick.delta?.changed ?? []);
    previous = current;
    current = positions(w.entities(), w.tick);
  } else if ("snapshot" in m) {
    previous = current = positions(s.world!.entities(), s.world!.tick);
  } else if ("match_ended" in m) {
    const winner = m.match_ended.winner;
    const mine = winner !== null && winner === s.player;
    game.ended = m.match_ended.reason;
    $("result").textContent = mine ? "You won!" : winner === null ? "No winner." : "Match over.";
    $("overlay").hidden = false;
  } else if ("closed" in m && !game.ended) {
    $("status").textContent = `disconnected: ${m.closed.reason || m.closed.code}`;
  }
}

/** Who killed whom, from the tick's score changes: victims' deaths and killers' kills went up. */
const lastScores = new Map<number, { kills: number; deaths: number }>();
function killFeed(changed: EntityState[]): void {
  const w = session!.world!;
  const killers: number[] = [];
  const victims: number[] = [];
  for (const e of changed) {
    for (const c of e.components) {
      const sc = variant(c, "score");
      if (!sc) continue;
      const before = lastScores.get(e.id) ?? { kills: 0, deaths: 0 };
      if (sc.kills > before.kills) killers.push(e.id);
      if (sc.deaths > before.deaths) victims.push(e.id);
      lastScores.set(e.id, { kills: sc.kills, deaths: sc.deaths });
    }
  }
  const name = (id: number) => w.get<{ name: string }>(id, "player")?.name ?? `#${id}`;
  victims.forEach((v, i) => {
    const k = killers[i];
    game.feed.unshift(k === undefined ? `${name(v)} died` : `${name(k)} ✕ ${name(v)}`);
  });
  game.feed.length = Math.min(game.feed.length, 6);
}

// ---- input -----------------------------------------------------------------------------

const held = new Set<string>();
const KEYS: { [key: string]: [number, number] } = {
  w: [0, -1], arrowup: [0, -1], s: [0, 1], arrowdown: [0, 1], a: [-1, 0], arrowleft: [-1, 0], d: [1, 0], arrowright: [1, 0],
};
let sentVelocity = "0,0";
function steer(): void {
  if (!session?.isOpen || session.entity === null || !rules) return;
  let dx = 0;
  let dy = 0;
  for (const k of held) {
    const d = KEYS[k];
    if (d) (dx += d[0]), (dy += d[1]);
  }
  const length = Math.hypot(dx, dy) || 1;
  const speed = rules.max_speed_mm_per_tick;
  const v = [Math.trunc((dx / length) * speed), Math.trunc((dy / length) * speed)] as const;
  const key = v.join(",");
  if (key === sentVelocity) return;
  sentVelocity = key;
  session.move(v[0], v[1]);
}
window.addEventListener("keydown", (e) => {
  const k = e.key.toLowerCase();
  if (!(k in KEYS)) return;
  e.preventDefault();
  held.add(k);
  steer();
});
window.addEventListener("keyup", (e) => {
  held.delete(e.key.toLowerCase());
  steer();
});
window.addEventListener("blur", () => {
  held.clear();
  steer();
});

let mouse: Body | null = null;
canvas.addEventListener("mousemove", (e) => {
  const r = canvas.getBoundingClientRect();
  mouse = { x: ((e.clientX - r.left) * (canvas.width / r.width)) / scale, y: ((e.clientY - r.top) * (canvas.height / r.height)) / scale };
});
canvas.addEventListener("mousedown", (e) => {
  e.preventDefault();
  const s = session;
  if (!s?.isOpen || s.entity === null || !mouse) return;
  const me = s.world!.get<Body>(s.entity, "pos");
  if (!me) return;
  const dx = mouse.x - me.x;
  const dy = mouse.y - me.y;
  if (dx === 0 && dy === 0) return;
  game.shots++;
  s.fire(dx, dy);
});
function begin(): void {
  start().catch((e: Error) => {
    $("status").textContent = `could not start: ${e.message}`;
    $("overlay").hidden = false;
  });
}
$("rematch").onclick = begin;

// ---- drawing ---------------------------------------------------------------------------

function lerp(a: Body | undefined, b: Body, t: number): Body {
  return a ? { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t } : b;
}

function draw(now: number): void {
  const w = session?.world;
  const width = rules?.width_mm ?? 40000;
  const height = rules?.height_mm ?? 40000;
  scale = Math.min(canvas.width / width, canvas.height / height);
  ctx.fillStyle = "#0b0e13";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#2b3442";
  ctx.strokeRect(0.5, 0.5, width * scale - 1, height * scale - 1);
  if (w && current && previous && rules) {
    const tickMs = 1000 / (session!.tickRateHz || 60);
    // Draw between the last two ticks: t runs from 0 to 1 over one tick after `current` came.
    const t = Math.min(1, Math.max(0, (now - current.at) / tickMs));
    const renderTick = previous.tick + t * (current.tick - previous.tick);
    const r = Math.max(4, rules.player_radius_mm * scale);
    for (const id of w.ids()) {
      const at = current.pos.get(id);
      if (!at) continue;
      const projectile = w.get<{ fired_at: number; shooter: number }>(id, "projectile");
      if (projectile) {
        const vel = w.get<{ vx: number; vy: number }>(id, "vel") ?? { vx: 0, vy: 0 };
        const age = Math.max(0, renderTick - projectile.fired_at);
        ctx.fillStyle = projectile.shooter === game.entity ? "#ffffff" : "#ffd166";
        ctx.beginPath();
        ctx.arc((at.x + vel.vx * age) * scale, (at.y + vel.vy * age) * scale, 3, 0, Math.PI * 2);
        ctx.fill();
        continue;
      }
      const p = lerp(previous.pos.get(id), at, t);
      if (w.get(id, "pickup") !== undefined) {
        ctx.fillStyle = "#3ddc97";
        ctx.fillRect(p.x * scale - 5, p.y * scale - 2, 10, 4);
        ctx.fillRect(p.x * scale - 2, p.y * scale - 5, 4, 10);
        continue;
      }
      const player = w.get<{ player: number; name: string }>(id, "player");
      if (!player) continue;
      const hp = w.get<{ hp: number; respawn_at: number | null }>(id, "hp");
      const dead = hp?.respawn_at !== null && hp?.respawn_at !== undefined;
      const mine = id === game.entity;
      ctx.fillStyle = dead ? "#3a404a" : mine ? "#6cb6ff" : `hsl(${(player.player * 67) % 360} 65% 58%)`;
      ctx.beginPath();
      ctx.arc(p.x * scale, p.y * scale, r, 0, Math.PI * 2);
      ctx.fill();
      if (mine) {
        ctx.strokeStyle = "#ffffff";
        ctx.stroke();
      }
      if (hp && !dead) {
        ctx.fillStyle = "#ff6b6b";
        ctx.fillRect(p.x * scale - r, p.y * scale - r - 7, 2 * r, 3);
        ctx.fillStyle = "#3ddc97";
        ctx.fillRect(p.x * scale - r, p.y * scale - r - 7, (2 * r * Math.max(0, hp.hp)) / rules.max_health, 3);
      }
      ctx.fillStyle = "#d8dee9";
      ctx.font = "12px system-ui";
      ctx.fillText(player.name, p.x * scale + r + 4, p.y * scale + 4);
    }
    if (mouse) {
      ctx.strokeStyle = "#6cb6ff";
      ctx.beginPath();
      ctx.arc(mouse.x * scale, mouse.y * scale, 7, 0, Math.PI * 2);
      ctx.stroke();
    }
  }
  $("hp").textContent = String(game.hp);
  $("score").textContent = `${game.kills} / ${game.deaths}`;
  $("tick").textContent = String(game.tick);
  $("feed").replaceChildren(
    ...game.feed.map((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      return li;
    }),
  );
  requestAnimationFrame(draw);
}

requestAnimationFrame(draw);
begin();
