// The dashboard page: polls state.json every second and redraws.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function rate(x) {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function renderGroups(st) {
  const root = document.getElementById("groups");
  root.replaceChildren();
  for (const g of st.groups) {
    const box = el("div", { class: "group", "data-group": g.name });
    box.append(el("h2", {}, g.name + (g.external ? " (external)" : "")));
    let figures = `${g.ready}/${g.servers} ready · declared ${g.replicas} · ${rate(g.messages_per_second)} msg/s`;
    if (g.external) figures += ` · ${g.clients} players`;
    box.append(el("div", { class: "figures" }, figures));
    for (const s of st.servers.filter((s) => s.group === g.name)) {
      const row = el("div", { class: "server state-" + s.state, "data-server": s.id, "data-state": s.state, title: s.reason || s.state });
      const left = el("div");
      left.append(el("strong", {}, s.id));
      if (s.reason) left.append(el("div", { class: "reason" }, s.reason));
      row.append(left);
      let right = rate(s.messages_per_second) + " msg/s";
      if (s.clients !== undefined && s.clients !== null) right += ` · ${s.clients} players`;
      row.append(el("span", {}, right));
      box.append(row);
    }
    root.append(box);
  }
}

function renderGraph(st) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const colW = 190, rowH = 46, top = 60;
  const pos = {};
  let rows = 1;
  st.groups.forEach((g, i) => {
    const x = 70 + i * colW;
    svg.append(el("svg:text", { x, y: 16, "text-anchor": "middle", class: "group" }, g.name));
    st.servers.filter((s) => s.group === g.name).forEach((s, j) => {
      pos[s.id] = { x, y: top + 14 + j * rowH, s };
      rows = Math.max(rows, j + 1);
    });
  });
  const width = Math.max(300, 70 * 2 + (st.groups.length - 1) * colW);
  const height = top + rows * rowH;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  // Idle links are thin and grey; busy ones blue, wider with their rate.
  // A link that skips columns bows upwards, clear of the nodes between.
  const labels = [];
  for (const l of st.links) {
    const a = pos[l.a], b = pos[l.b];
    if (!a || !b) continue;
    const span = Math.round(Math.abs(b.x - a.x) / colW);
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2 - (span > 1 ? 26 * (span - 1) : 0);
    const busy = l.linked && l.messages_per_second >= 0.05;
    const cls = "link " + (l.linked ? "linked" : "unlinked") + (busy ? " busy" : "");
    const d = `M ${a.x} ${a.y} Q ${2 * mx - (a.x + b.x) / 2} ${2 * my - (a.y + b.y) / 2} ${b.x} ${b.y}`;
    const path = el("svg:path", { d, class: cls, "data-link": l.a + " " + l.b });
    if (busy) path.setAttribute("stroke-width", String(1.5 + Math.min(4, Math.log10(1 + l.messages_per_second))));
    path.append(el("svg:title", {}, `${l.a} – ${l.b}: ${l.state}, ${rate(l.messages_per_second)} msg/s`));
    svg.append(path);
    if (busy) labels.push(el("svg:text", { x: mx, y: my - 3, "text-anchor": "middle", class: "rate" }, rate(l.messages_per_second) + "/s"));
  }
  svg.append(...labels);
  for (const { x, y, s } of Object.values(pos)) {
    const c = el("svg:circle", { cx: x, cy: y, r: 9, class: "state-" + s.state, "data-node": s.id });
    c.append(el("svg:title", {}, `${s.id}: ${s.state}${s.reason ? " (" + s.reason + ")" : ""}`));
    svg.append(c);
    svg.append(el("svg:text", { x, y: y + 22, "text-anchor": "middle" }, s.id));
  }
}

function renderEvents(st) {
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  for (const e of st.events) {
    const tr = el("tr");
    const what = { link: "link closed", client: "client left", refused: "handshake refused" }[e.kind] || e.kind;
    for (const v of [new Date(e.at).toLocaleTimeString(), e.group, what, e.reason, e.count]) tr.append(el("td", {}, String(v)));
    body.append(tr);
  }
  if (st.events.length === 0) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 5, class: "muted" }, "none since the dashboard started"));
    body.append(tr);
  }
}

function render(st) {
  document.getElementById("system").textContent = st.system;
  document.getElementById("updated").textContent = "updated " + new Date(st.at).toLocaleTimeString();
  const errs = document.getElementById("errors");
  errs.replaceChildren(...st.errors.map((e) => el("li", {}, e)));
  renderGroups(st);
  renderGraph(st);
  renderEvents(st);
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

async function poll() {
  try {
    const resp = await fetch("state.json", { cache: "no-store" });
    if (resp.ok) render(await resp.json());
    else document.getElementById("updated").textContent = "dashboard answered " + resp.status;
  } catch (err) {
    document.getElementById("updated").textContent = "dashboard unreachable: " + err;
  }
  setTimeout(poll, 1000);
}

poll();
