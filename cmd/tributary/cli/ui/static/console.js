// The console's little script: counters refreshed from the admin API every
// second, a chart of events per second, action buttons, and the live tail.
"use strict";

function say(text) {
  const m = document.getElementById("message");
  m.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { m.textContent = ""; }, 5000);
}

function age(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function markStates() {
  for (const el of document.querySelectorAll(".state")) el.dataset.state = el.textContent.trim();
}

function setFields(row, obj) {
  for (const cell of row.querySelectorAll("[data-field]")) {
    const f = cell.dataset.field;
    let v = obj[f];
    if (f === "checkpoint_time" || f === "caught_up") v = age(v);
    else if (f === "lag_seconds") v = (v || 0).toFixed(1);
    cell.textContent = v === undefined || v === null ? "" : v;
  }
}

const history = new Array(120).fill(0);
let lastTotal = null;

function drawChart() {
  const line = document.getElementById("chart-line");
  if (!line) return;
  const max = Math.max(1, ...history);
  const step = 600 / (history.length - 1);
  line.setAttribute("points", history.map((v, i) => (i * step).toFixed(1) + "," + (118 - v / max * 110).toFixed(1)).join(" "));
}

async function refresh() {
  let st;
  try {
    const r = await fetch("/v1/connectors", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    st = await r.json();
  } catch (e) {
    say("status: " + e.message);
    return;
  }
  document.getElementById("stream-state").textContent = st.stream.state;
  let total = 0;
  for (const c of st.connectors || []) {
    total += c.events_emitted;
    const row = document.querySelector('tr[data-connector="' + CSS.escape(c.name) + '"]');
    if (row) setFields(row, c);
  }
  for (const s of st.sinks || []) {
    const row = document.querySelector('tr[data-sink="' + CSS.escape(s.name) + '"]');
    if (row) setFields(row, s);
  }
  markStates();
  if (lastTotal !== null) {
    history.push(Math.max(0, total - lastTotal));
    if (history.length > 120) history.shift();
    document.getElementById("rate").textContent = history[history.length - 1];
  }
  lastTotal = total;
  drawChart();
}

async function act(button) {
  const [method, path] = button.dataset.action.split(" ");
  button.disabled = true;
  try {
    const r = await fetch(path, { method, headers: { "Content-Type": "application/json" }, body: button.dataset.body || "" });
    const body = await r.json().catch(() => ({}));
    let text = body.error || body.status || (r.ok ? "done" : String(r.status));
    if (body.results) text = body.results.map((x) => x.error || x.status).join("; ");
    say(path + ": " + text);
    if (r.ok && document.body.dataset.page === "deadletters") setTimeout(() => location.reload(), 300);
  } finally {
    button.disabled = false;
  }
  if (document.body.dataset.page === "overview") refresh();
}

function follow(type) {
  if (follow.source) follow.source.close();
  const state = document.getElementById("tail-state");
  const tbody = document.querySelector("#tail tbody");
  const src = new EventSource("/ui/events" + (type ? "?type=" + encodeURIComponent(type) : ""));
  follow.source = src;
  src.addEventListener("open", () => { state.textContent = "following " + (type || "every type"); });
  src.addEventListener("error", () => { state.textContent = "reconnecting"; });
  src.addEventListener("cloudevent", (m) => {
    const ev = JSON.parse(m.data);
    const tr = document.createElement("tr");
    for (const v of [ev.time, ev.type, ev.subject, ev.id, JSON.stringify(ev.data)]) {
      const td = document.createElement("td");
      td.textContent = v || "";
      tr.appendChild(td);
    }
    tr.dataset.type = ev.type;
    tbody.prepend(tr);
    while (tbody.rows.length > 200) tbody.deleteRow(-1);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  markStates();
  for (const b of document.querySelectorAll("button[data-action]")) b.addEventListener("click", () => act(b));
  const page = document.body.dataset.page;
  if (page === "overview") {
    refresh();
    setInterval(refresh, 1000);
  }
  if (page === "tail") {
    const form = document.getElementById("tail-form");
    form.addEventListener("submit", (e) => { e.preventDefault(); follow(document.getElementById("tail-type").value); });
    const t = new URLSearchParams(location.search).get("type") || "";
    document.getElementById("tail-type").value = t;
    follow(t);
  }
});
