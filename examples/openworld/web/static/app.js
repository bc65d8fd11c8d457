// The open world in a browser: one player per tab, on top of the
// TypeScript SDK. The messages are the open world's (examples/openworld,
// package documentation): big-endian, a ref being u8 n | n bytes server ID
// | u64 client ID.
//
// window.openworld exposes the page's state and a move, for tests.

import { connect, refString } from "./sdk/index.js";

// Tags of the messages between a player and the system.
const Tag = { move: 1, chat: 2, welcome: 10, moved: 11, view: 12, gone: 13, chatLine: 14 };

// How often the player may step (the client servers allow 50 messages/s)
// and how far one step goes, in map units.
const stepEveryMs = 60;
const stepUnits = 24;
// The part of the map the canvas shows around the player, in map units.
const viewUnits = 1024;

const params = new URLSearchParams(location.search);
const cfg = await (await fetch("config.json")).json();
const regionWidth = cfg.mapSize / cfg.regions;
const palette = ["#6cb6ff", "#f2a65a", "#8ce99a", "#e599f7", "#ffd43b", "#63e6be", "#ff8787", "#b197fc"];
const owners = [...new Set(cfg.owners)].sort();
const ownerColor = (name) => palette[owners.indexOf(name) % palette.length];

const state = {
  connected: false,
  error: null,
  me: null, // {ref, name, x, y, region, server}
  target: null, // where a click sent the player
  players: new Map(), // ref → {x, y, region}
  names: new Map(), // ref → name, learned from chat lines
  chat: [], // {from, name, text}
  rtts: [], // the last round trips of the player's moves, ms
  directory: null, // listed game servers, or null without a directory
};
let client = null;
let lastStep = 0;
const keys = new Set();

// ---- encoding ----

const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });

class In {
  constructor(b) {
    this.b = b;
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.o = 0;
  }
  need(n) {
    if (this.o + n > this.b.length) throw new Error("truncated message");
  }
  u8() { this.need(1); return this.b[this.o++]; }
  u16() { this.need(2); const x = this.v.getUint16(this.o); this.o += 2; return x; }
  i32() { this.need(4); const x = this.v.getInt32(this.o); this.o += 4; return x; }
  u64() { this.need(8); const x = this.v.getBigUint64(this.o); this.o += 8; return x; }
  str8() { const n = this.u8(); this.need(n); const s = text.decode(this.b.subarray(this.o, this.o + n)); this.o += n; return s; }
  rest() { const s = text.decode(this.b.subarray(this.o)); this.o = this.b.length; return s; }
  ref() { const server = this.str8(); return refString({ server, id: this.u64() }); }
  end() { if (this.o !== this.b.length) throw new Error("trailing bytes"); }
}

function step(x, y, stamp) {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setInt32(0, x);
  v.setInt32(4, y);
  v.setBigUint64(8, stamp);
  return b;
}

// ---- the session ----

// join connects as a player, with the name and spawn point of the page's
// URL when it has them (?name=&x=&y=), on client server ?server=N or one
// chosen at random.
async function join() {
  const i = params.has("server") ? Number(params.get("server")) % cfg.urls.length : Math.floor(Math.random() * cfg.urls.length);
  const url = new URL(cfg.urls[i]);
  for (const k of ["name", "x", "y"]) if (params.has(k)) url.searchParams.set(k, params.get(k));
  if (!params.has("x")) {
    // Near the centre, where the bots walk.
    url.searchParams.set("x", String(Math.round(cfg.mapSize / 2 + (Math.random() - 0.5) * 400)));
    url.searchParams.set("y", String(Math.round(cfg.mapSize / 2 + (Math.random() - 0.5) * 400)));
  }
  try {
    client = await connect({ url: url.toString() });
  } catch (err) {
    fail(err);
    return;
  }
  state.connected = true;
  state.error = null;
  state.players.clear();
  client.on("message", (m) => {
    try {
      onMessage(m.tag, m.payload);
    } catch (err) {
      console.error("bad message", m.tag, err);
    }
  });
  client.on("close", (err) => fail(err));
}

function fail(err) {
  state.connected = false;
  state.error = String(err && err.message ? err.message : err);
  client = null;
  setTimeout(join, 2000); // rejoin: a new session, a new ref
}

function onMessage(tag, p) {
  const r = new In(p);
  switch (tag) {
    case Tag.welcome: {
      const x = r.i32(), y = r.i32(), name = r.str8();
      r.end();
      state.me = { ref: refString(client.ref), name, x, y, region: regionOf(x), server: client.ref.server };
      break;
    }
    case Tag.moved: {
      const ref = r.ref(), x = r.i32(), y = r.i32(), region = r.u16(), stamp = r.u64();
      r.end();
      if (state.me && ref === state.me.ref) {
        if (stamp !== 0n) {
          state.rtts.push(performance.now() - Number(stamp) / 1000);
          if (state.rtts.length > 100) state.rtts.shift();
        }
        return;
      }
      state.players.set(ref, { x, y, region });
      break;
    }
    case Tag.view: {
      const n = r.u16();
      for (let i = 0; i < n; i++) {
        const ref = r.ref(), x = r.i32(), y = r.i32(), region = r.u16();
        if (!state.me || ref !== state.me.ref) state.players.set(ref, { x, y, region });
      }
      r.end();
      break;
    }
    case Tag.gone:
      state.players.delete(r.ref());
      break;
    case Tag.chatLine: {
      const from = r.ref(), name = r.str8(), said = r.rest();
      state.names.set(from, name);
      state.chat.push({ from, name, text: said });
      if (state.chat.length > 200) state.chat.shift();
      showChat({ name, text: said });
      break;
    }
  }
}

// moveTo sends the player to (x, y), clamped to the map, stamped with the
// page's clock (µs) so that the owner's echo gives the round trip.
function moveTo(x, y) {
  if (!client || !state.me) return false;
  const me = state.me;
  me.x = Math.max(0, Math.min(cfg.mapSize - 1, Math.round(x)));
  me.y = Math.max(0, Math.min(cfg.mapSize - 1, Math.round(y)));
  me.region = regionOf(me.x);
  try {
    client.send(Tag.move, step(me.x, me.y, BigInt(Math.round(performance.now() * 1000))));
  } catch (err) {
    console.warn("move", err);
  }
  return true;
}

// tick steps the player along the held keys, or towards its target.
function tick(now) {
  if (!state.me || now - lastStep < stepEveryMs) return;
  let dx = 0, dy = 0;
  if (keys.has("ArrowLeft") || keys.has("a")) dx -= 1;
  if (keys.has("ArrowRight") || keys.has("d")) dx += 1;
  if (keys.has("ArrowUp") || keys.has("w")) dy -= 1;
  if (keys.has("ArrowDown") || keys.has("s")) dy += 1;
  if (dx !== 0 || dy !== 0) {
    state.target = null;
  } else if (state.target) {
    const tx = state.target.x - state.me.x, ty = state.target.y - state.me.y;
    const d = Math.hypot(tx, ty);
    if (d < 1) {
      state.target = null;
      return;
    }
    const s = Math.min(1, stepUnits / d);
    dx = (tx * s) / stepUnits;
    dy = (ty * s) / stepUnits;
  } else {
    return;
  }
  lastStep = now;
  moveTo(state.me.x + dx * stepUnits, state.me.y + dy * stepUnits);
}

const regionOf = (x) => Math.floor((Math.max(0, Math.min(cfg.mapSize - 1, x)) * cfg.regions) / cfg.mapSize);

// ---- the server directory ----

const fields = { name: 1, level: 2, players: 3, max: 4, port: 5 };

async function watchDirectory() {
  const url = params.get("directory") || cfg.directory;
  if (!url) return;
  const app = params.get("app") || cfg.directoryApp;
  let c;
  try {
    c = await connect({ url, dialTimeoutMs: 5000 });
    const view = await c.view(Object.values(fields).map((secondary) => ({ primary: app, secondary })));
    const show = () => {
      const servers = new Map();
      for (const row of view.rows()) {
        const ref = refString(row.uploader);
        const s = servers.get(ref) ?? { ref, host: row.addr.replace(/:\d+$/, "") };
        const d = row.data;
        const u32 = () => (d.length === 4 ? new DataView(d.buffer, d.byteOffset, 4).getUint32(0) : 0);
        switch (row.key.secondary) {
          case fields.name: s.name = text.decode(d); break;
          case fields.level: s.level = text.decode(d); break;
          case fields.players: s.players = u32(); break;
          case fields.max: s.max = u32(); break;
          case fields.port: s.port = u32(); break;
        }
        servers.set(ref, s);
      }
      // A server is listed once its name and port rows exist.
      state.directory = [...servers.values()].filter((s) => s.name && s.port).sort((a, b) => a.name.localeCompare(b.name));
      showDirectory();
    };
    view.on("change", show);
    show();
    c.on("close", () => {
      state.directory = null;
      showDirectory();
    });
  } catch (err) {
    console.warn("no server directory at", url, String(err));
    c?.close();
  }
}

// ---- drawing ----

const canvas = document.getElementById("map");
const g = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

function draw() {
  const W = canvas.width, H = canvas.height, scale = W / viewUnits;
  g.clearRect(0, 0, W, H);
  const me = state.me;
  const cx = me ? me.x : cfg.mapSize / 2, cy = me ? me.y : cfg.mapSize / 2;
  const x0 = Math.max(0, Math.min(cfg.mapSize - viewUnits, cx - viewUnits / 2));
  const y0 = Math.max(0, Math.min(cfg.mapSize - viewUnits, cy - viewUnits / 2));
  const sx = (x) => (x - x0) * scale, sy = (y) => (y - y0) * scale;

  // Regions: strips tinted by their owner, the player's neighbourhood
  // (what it sees) brighter.
  const first = Math.floor(x0 / regionWidth), last = Math.min(cfg.regions - 1, Math.floor((x0 + viewUnits) / regionWidth));
  for (let r = first; r <= last; r++) {
    const left = sx(r * regionWidth), width = regionWidth * scale;
    const owner = cfg.owners[r];
    const near = me && Math.abs(r - me.region) <= 1;
    g.globalAlpha = near ? 0.22 : 0.08;
    g.fillStyle = owner ? ownerColor(owner) : "#8b93a1";
    g.fillRect(left, 0, width, H);
    g.globalAlpha = 1;
    g.strokeStyle = "#3a4250";
    g.beginPath();
    g.moveTo(Math.round(left) + 0.5, 0);
    g.lineTo(Math.round(left) + 0.5, H);
    g.stroke();
    g.save();
    g.translate(left + width / 2 + 4, 8);
    g.rotate(Math.PI / 2);
    g.fillStyle = owner ? ownerColor(owner) : "#8b93a1";
    g.font = "11px system-ui, sans-serif";
    g.fillText(owner ? `${owner} · r${r}` : `region ${r}`, 0, 0);
    g.restore();
  }

  // Players: the others, then this one on top.
  g.font = "11px system-ui, sans-serif";
  for (const [ref, p] of state.players) {
    // A player that has not chatted is known by its ref only: shorten it.
    dot(sx(p.x), sy(p.y), "#e4e6eb", state.names.get(ref) ?? ref.replace(/#\d*(\d{4})$/, "#…$1"));
  }
  if (me) {
    if (state.target) {
      g.strokeStyle = "#ffd43b";
      g.setLineDash([4, 4]);
      g.beginPath();
      g.moveTo(sx(me.x), sy(me.y));
      g.lineTo(sx(state.target.x), sy(state.target.y));
      g.stroke();
      g.setLineDash([]);
    }
    dot(sx(me.x), sy(me.y), "#ffd43b", me.name + " (you)", true);
  }
  if (!state.connected) {
    g.fillStyle = "rgba(20,22,27,0.7)";
    g.fillRect(0, 0, W, H);
    g.fillStyle = "#ff8f8f";
    g.font = "16px system-ui, sans-serif";
    g.fillText(state.error ? `disconnected: ${state.error} (rejoining)` : "joining…", 20, H / 2);
  }
}

function dot(x, y, color, label, ring) {
  g.fillStyle = color;
  g.beginPath();
  g.arc(x, y, ring ? 7 : 5, 0, 2 * Math.PI);
  g.fill();
  if (ring) {
    g.strokeStyle = "#14161b";
    g.lineWidth = 2;
    g.stroke();
    g.lineWidth = 1;
  }
  g.fillStyle = color;
  g.fillText(label, x + 9, y + 4);
}

function showStatus() {
  const me = state.me;
  $("me").textContent = me ? `${me.name} (${me.ref})` : state.error ?? "joining…";
  $("me").className = state.connected ? "" : "error";
  $("server").textContent = me ? me.server : "–";
  $("pos").textContent = me ? `${me.x}, ${me.y}` : "–";
  $("region").textContent = me ? `${me.region}${cfg.owners[me.region] ? ", owned by " + cfg.owners[me.region] : ""}` : "–";
  $("near").textContent = String(state.players.size);
  $("rtt").textContent = state.rtts.length ? `p50 ${p50(state.rtts).toFixed(2)} ms (last ${state.rtts.length})` : "–";
}

function showOwners() {
  const box = $("owners");
  for (const o of owners) {
    const span = document.createElement("span");
    span.style.background = ownerColor(o);
    span.textContent = `${o}: ${cfg.owners.filter((x) => x === o).length} regions`;
    box.append(span);
  }
}

function showChat(line) {
  const li = document.createElement("li");
  const b = document.createElement("b");
  b.textContent = line.name + ": ";
  li.append(b, line.text);
  const ol = $("lines");
  ol.append(li);
  while (ol.children.length > 200) ol.firstChild.remove();
  ol.scrollTop = ol.scrollHeight;
}

function showDirectory() {
  const section = $("directory");
  section.hidden = state.directory === null;
  const body = $("servers");
  body.replaceChildren();
  for (const s of state.directory ?? []) {
    const tr = document.createElement("tr");
    for (const v of [s.name, s.level ?? "", `${s.players ?? 0}/${s.max ?? 0}`, `${s.host}:${s.port}`]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
}

const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

// ---- input ----

addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement) return;
  if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "a", "d", "w", "s"].includes(e.key)) {
    keys.add(e.key);
    e.preventDefault();
  }
});
addEventListener("keyup", (e) => keys.delete(e.key));
addEventListener("blur", () => keys.clear());
canvas.addEventListener("click", (e) => {
  if (!state.me) return;
  const rect = canvas.getBoundingClientRect(), scale = canvas.width / viewUnits;
  const x0 = Math.max(0, Math.min(cfg.mapSize - viewUnits, state.me.x - viewUnits / 2));
  const y0 = Math.max(0, Math.min(cfg.mapSize - viewUnits, state.me.y - viewUnits / 2));
  state.target = { x: x0 + (e.clientX - rect.left) / scale, y: y0 + (e.clientY - rect.top) / scale };
});
$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("text");
  const said = input.value.trim();
  if (said === "" || !client) return;
  if (utf8.encode(said).length <= 256) client.send(Tag.chat, utf8.encode(said));
  input.value = "";
});

function frame(now) {
  tick(now);
  draw();
  showStatus();
  requestAnimationFrame(frame);
}

window.openworld = {
  moveTo,
  say: (s) => client?.send(Tag.chat, utf8.encode(s)),
  state: () => ({
    connected: state.connected,
    error: state.error,
    me: state.me,
    players: Object.fromEntries(state.players),
    chat: state.chat,
    rtts: state.rtts,
    directory: state.directory,
  }),
};

showOwners();
requestAnimationFrame(frame);
join();
watchDirectory();
