// stagepose monitor page: listens to the show's server-sent events and draws what it says. Read-only:
// it only ever GETs from the show process. Plain browser JavaScript, no build step, nothing fetched
// from elsewhere. Text goes in with textContent only (names come from the show file).
"use strict";

const STALE_AFTER_S = 3; // the show loop handed over no status for this long: it is not turning
const SILENT_AFTER_MS = 4000; // no event at all for this long: the connection is as good as gone

const $ = (id) => document.getElementById(id);
const cams = new Map(); // camera id -> {card, img, caption, want, shown, loading}
let source = null;
let lastMessage = 0;
let goneReason = null; // set once the show said bye or the connection dropped
let goneAt = null;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(value, digits = 1) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function clock(date) {
  return date.toLocaleTimeString([], { hour12: false });
}

// ------------------------------------------------------------------------------------- banner

function showBanner(kind, title, detail) {
  const banner = $("banner");
  banner.classList.remove("hidden", "stale");
  if (kind === "stale") banner.classList.add("stale");
  $("banner-title").textContent = title;
  $("banner-detail").textContent = detail;
  document.body.dataset.banner = kind;
}

function hideBanner() {
  $("banner").classList.add("hidden");
  document.body.dataset.banner = "";
}

function markGone(reason) {
  if (goneReason === null) goneAt = new Date();
  goneReason = reason;
  const conn = $("conn");
  conn.textContent = "disconnected";
  conn.className = "conn bad";
  for (const cam of cams.values()) cam.card.classList.add("lost");
  showBanner("gone", "SHOW PROCESS GONE", `${reason} (at ${clock(goneAt)}); retrying every second`);
}

// ------------------------------------------------------------------------------------ cameras

function camera(id) {
  let cam = cams.get(id);
  if (cam) return cam;
  const card = el("figure", "cam");
  card.id = `cam-${id}`;
  card.dataset.picture = "0";
  const wrap = el("div", "imgwrap");
  const img = el("img");
  img.alt = `camera ${id}`;
  wrap.appendChild(img);
  const caption = el("figcaption");
  card.append(wrap, caption);
  $("cameras").appendChild(card);
  cam = { card, img, caption, want: 0, shown: 0, loading: false, id };
  cams.set(id, cam);
  return cam;
}

// The browser pulls the newest picture when it has shown the previous one, so a slow browser skips
// pictures instead of queueing them. The picture is loaded off-screen and then put in place.
function fetchPicture(cam) {
  if (cam.loading || cam.want <= cam.shown) return;
  cam.loading = true;
  const n = cam.want;
  const next = new Image();
  next.alt = cam.img.alt;
  next.onload = () => {
    cam.img.replaceWith(next); // the loaded element itself: no second request, no second decode
    cam.img = next;
    cam.shown = n;
    cam.card.dataset.picture = String(n);
    cam.loading = false;
    fetchPicture(cam);
  };
  next.onerror = () => {
    cam.loading = false;
  };
  next.src = `frame/${encodeURIComponent(cam.id)}.jpg?n=${n}`;
}

function onFrame(message) {
  const cam = camera(message.camera);
  cam.want = Math.max(cam.want, message.n);
  fetchPicture(cam);
}

// Updates touch only what changed (text and class of existing nodes), so the browser re-lays-out and
// repaints as little as it can: a page open beside the show should cost the machine little.

function setText(node, text, cls) {
  const value = text === null || text === undefined ? "–" : String(text);
  if (node.textContent !== value) node.textContent = value;
  if (cls !== undefined && node.className !== cls) node.className = cls;
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}

function caption(cam, info, performers) {
  if (!cam.parts) {
    const name = el("b", null, info.id);
    const state = el("span");
    const stats = el("span", "stats");
    const who = el("span");
    const error = el("div", "err");
    cam.caption.append(name, " ", state, " ", stats, who, error);
    cam.parts = { state, stats, who, error };
  }
  const parts = cam.parts;
  setText(parts.state, info.state, `state s-${info.state}`);
  setText(parts.stats, `${fmt(info.fps)} fps · drops ${info.dropped ?? "–"} · reconn ${info.reconnects ?? "–"} · ` +
    `lat ${fmt(info.latency_p50_ms, 0)}/${fmt(info.latency_p95_ms, 0)} ms`);
  const who = performers.map((p) => `${p.name} ${p.state}`).join(" · ");
  const worst = performers.some((p) => p.state !== "tracked") ? "s-lost" : "s-tracked";
  setText(parts.who, who ? ` · ${who}` : "", performers.length ? worst : "");
  setText(parts.error, info.error || "");
  setData(cam.card, "state", info.state);
  const gone = goneReason !== null;
  if (cam.card.classList.contains("live") !== (info.state === "live" && !gone)) cam.card.classList.toggle("live");
  const lost = !["live", "ended", "starting"].includes(info.state) || gone;
  if (cam.card.classList.contains("lost") !== lost) cam.card.classList.toggle("lost");
}

// ------------------------------------------------------------------------------------- tables

// rows: [{key, data: {...}, cells: [[text, className, colour], ...]}]; rows are kept by key, updated in place.
function syncTable(id, rows) {
  const body = $(id).querySelector("tbody");
  const keys = rows.map((r) => r.key).join("\n");
  if (body.dataset.keys !== keys) {
    body.replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      r.cells.forEach(() => tr.appendChild(el("td")));
      return tr;
    }));
    body.dataset.keys = keys;
  }
  rows.forEach((r, i) => {
    const tr = body.children[i];
    for (const [key, value] of Object.entries(r.data || {})) setData(tr, key, value);
    r.cells.forEach(([text, cls, colour], k) => {
      const td = tr.children[k];
      setText(td, text, cls || "");
      if (colour && td.dataset.colour !== colour) {
        td.dataset.colour = colour;
        td.style.color = colour;
      }
    });
  });
}

const n0 = (value) => [value ?? "–", "num"];
const n1 = (value) => [fmt(value), "num"];

function onStatus(status) {
  setText($("show"), status.show);
  const title = `${status.show}: stagepose monitor`;
  if (document.title !== title) document.title = title;
  setText($("mode"), status.mode);
  setText($("minconf"), status.min_confidence);
  const tracked = status.performers.filter((p) => p.state === "tracked").length;
  setText($("summary"), `${fmt(status.elapsed_s, 0)} s · ${status.backend} · ${tracked}/${status.performers.length} ` +
    `performers tracked${status.note ? " · " + status.note : ""}`);

  for (const info of status.cameras) {
    caption(camera(info.id), info, status.performers.filter((p) => p.camera === info.id));
  }
  syncTable("performers", status.performers.map((p) => ({
    key: `${p.camera}/${p.osc_name}`,
    data: { performer: p.osc_name, state: p.state },
    cells: [[p.name, "", p.colour], [p.camera], [p.state, `s-${p.state}`], [`${p.joints_seen}/${p.joints}`, "num"],
      [p.stage_m ? `${fmt(p.stage_m[0], 2)}, ${fmt(p.stage_m[1], 2)}` : "–", "num"]],
  })));
  syncTable("camtable", status.cameras.map((c) => ({
    key: c.id,
    data: { camera: c.id, state: c.state },
    cells: [[c.id], [c.state, `s-${c.state}`], n1(c.fps), n1(c.source_fps), n0(c.dropped), n0(c.reconnects),
      n0(c.decode_errors), [`${fmt(c.latency_p50_ms)} / ${fmt(c.latency_p95_ms)}`, "num"]],
  })));
  syncTable("osc", status.osc.map((d) => ({
    key: d.name,
    cells: [[d.name], [d.target], n0(d.datagrams_sent), [d.send_errors, d.send_errors ? "num err" : "num"],
      [d.last_error || ""]],
  })));
  setText($("record"), status.record_error ? `keypoint record NOT WRITING: ${status.record_error}` : "",
    status.record_error ? "err" : "note");

  const lat = status.latency;
  setText($("latency-summary"), lat.count
    ? `p50 ${fmt(lat.p50_ms)} ms · p95 ${fmt(lat.p95_ms)} ms over ${lat.count} frames`
    : "no frame processed in the last minute");
  drawChart(lat);

  const m = status.monitor;
  setText($("monitor-stats"), `pages open ${m.pages} · pictures ${m.pictures} (skipped, never fetched: ` +
    `${m.pictures_unfetched}) · events dropped ${m.events_dropped} · drawing ${fmt(m.render_ms_p50)} ms per picture`);

  if (goneReason === null) {
    if (status.mode === "live" && status.status_age_s !== null && status.status_age_s > STALE_AFTER_S) {
      showBanner("stale", "SHOW NOT RESPONDING", `no update from the show loop for ${fmt(status.status_age_s, 0)} s`);
    } else if (document.body.dataset.banner) {
      hideBanner();
    }
  }
}

// -------------------------------------------------------------------------------------- chart

function drawChart(lat) {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const left = 40;
  const bottom = h - 18;
  g.clearRect(0, 0, w, h);
  const top = Math.max(50, ...lat.p95.filter((v) => v !== null)) * 1.1;
  const x = (t) => left + (1 + t / lat.window_s) * (w - left - 8);
  const y = (v) => bottom - (v / top) * (bottom - 8);
  g.strokeStyle = "#2c333d";
  g.fillStyle = "#8b95a3";
  g.font = "11px system-ui, sans-serif";
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(w - 8, y(v));
    g.stroke();
    g.fillText(`${Math.round(v)}`, 4, y(v) + 4);
  }
  g.textAlign = "center";
  for (const t of [-60, -45, -30, -15]) g.fillText(`${t} s`, x(t), h - 4);
  g.textAlign = "right";
  g.fillText("now", x(0), h - 4);
  g.textAlign = "left";
  for (const [key, colour] of [["p95", "#e63c3c"], ["p50", "#50c850"]]) {
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    lat.t.forEach((t, i) => {
      const v = lat[key][i];
      if (v === null) return;
      if (i === 0) g.moveTo(x(t), y(v));
      else g.lineTo(x(t), y(v));
    });
    g.stroke();
    g.fillStyle = colour;
    g.fillText(key, w - 40, key === "p95" ? 14 : 28);
  }
  g.lineWidth = 1;
}

// ------------------------------------------------------------------------------------ the stream

function connect() {
  source = new EventSource("events");
  source.onopen = () => {
    lastMessage = Date.now();
    goneReason = null;
    hideBanner();
    $("conn").textContent = "connected";
    $("conn").className = "conn ok";
  };
  const listen = (kind, handler) => source.addEventListener(kind, (event) => {
    lastMessage = Date.now();
    if (goneReason !== null && kind !== "bye") {
      source.onopen(); // data flows again after a silence: the show is back
    }
    handler(JSON.parse(event.data));
  });
  listen("hello", (hello) => {
    $("show").textContent = hello.show;
    $("mode").textContent = hello.mode;
  });
  listen("status", (status) => {
    if (goneReason === null) onStatus(status);
  });
  listen("frame", onFrame);
  listen("bye", (bye) => markGone(bye.reason));
  source.onerror = () => {
    if (source.readyState !== EventSource.OPEN) {
      markGone(goneReason || "the connection to the show process dropped");
    }
    if (source.readyState === EventSource.CLOSED) {
      // refused (for example too many pages open): EventSource gives up, so start again
      setTimeout(connect, 2000);
    }
  };
}

setInterval(() => {
  if (goneReason === null && lastMessage && Date.now() - lastMessage > SILENT_AFTER_MS) {
    markGone(`no data from the show process for ${Math.round((Date.now() - lastMessage) / 1000)} s`);
  }
}, 1000);

connect();
