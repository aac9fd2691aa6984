"use strict";
// The page of `redis-log-handler web`. Every value from a record reaches the DOM through textContent, never as
// HTML; the server's Content-Security-Policy allows this file and no inline script.

const MAX_ROWS = 2000; // rows kept in the page; older ones are read again from Redis when scrolled back to
const PAGE_ROWS = 200; // rows per history request
const FRAME_ROWS = 300; // the most rows one frame adds: more at once and the page stutters
const FILTERS = ["level", "logger", "source", "grep", "since", "until"];
const PAIRS = ["field", "extra"]; // may repeat in the address; "a=1; b=2" in the form
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const MAX_BARS = 60;
const CHART_EVERY_MS = 1000; // the chart is redrawn at most this often while records arrive
const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000,
  600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000]; // ms per bar: round steps
const COLOURS = {DEBUG: "#9a9a94", INFO: "#3b6fd4", WARNING: "#d19a00", ERROR: "#d1342a", CRITICAL: "#7a0d07",
  other: "#7f7f7f"};

const $ = (id) => document.getElementById(id);
const shownRows = new WeakMap(); // row element -> the row it shows (for the detail pane)
const view = {
  info: null,
  query: new URLSearchParams(window.location.search),
  cursor: {}, // history: where each shard's older records start
  after: null, // live: the ids each shard was read after
  done: false,
  loadingOlder: false,
  generation: 0, // bumped when the filters change: answers to an older view are dropped
  pending: [], // live rows not shown yet (batched per frame, or held while the view is paused)
  unseen: 0, // live rows that arrived while paused
  gapBelow: false, // rows at the bottom were dropped to keep older ones: "new" reloads the newest
  chartDue: false,
  received: 0, // live rows received since the page opened (benchmarks/web.py reads it)
};

function filterQuery() {
  const query = new URLSearchParams();
  for (const name of [...FILTERS, ...PAIRS]) {
    for (const value of view.query.getAll(name)) if (value) query.append(name, value);
  }
  return query;
}

function setState(text, kind) {
  const state = $("state");
  state.textContent = text;
  state.className = `state ${kind || ""}`;
}

function showProblem(text) {
  const problem = $("problem");
  problem.textContent = text || "";
  problem.hidden = !text;
}

async function getJSON(path, query) {
  const response = await fetch(`${path}?${query.toString()}`, {credentials: "same-origin"});
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = {error: `${response.status} ${response.statusText}`};
  }
  if (!response.ok) {
    const error = new Error(body.error || `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function firstLine(value) {
  const line = text(value);
  const end = line.indexOf("\n");
  return end < 0 ? line : `${line.slice(0, end)} …`;
}

function rowElement(row) {
  const element = document.createElement("div");
  element.className = "row";
  element.dataset.key = row.key;
  element.dataset.id = row.id;
  const part = (name, value) => {
    const span = document.createElement("span");
    span.className = name;
    span.textContent = value;
    element.appendChild(span);
    return span;
  };
  if (row.poison !== undefined) {
    part("time", row.id);
    part("poison", `not a log record: ${row.poison}`);
  } else {
    const record = row.record;
    part("time", text(record["@timestamp"]));
    part(`level level-${LEVELS.includes(record.level) ? record.level : "other"}`, text(record.level));
    part("logger", text(record.logger));
    part("message", firstLine(record.message));
    const extra = record.extra && typeof record.extra === "object" ? Object.entries(record.extra) : [];
    if (extra.length) part("extra", extra.map(([name, value]) => `${name}=${text(value)}`).join(" "));
    if (record.exception) part("extra", "(traceback)");
  }
  shownRows.set(element, row);
  element.stamp = row.record ? Date.parse(row.record["@timestamp"]) : NaN; // for the chart
  element.level = row.record && LEVELS.includes(row.record.level) ? row.record.level : "other";
  return element;
}

function showDetail(row, element) {
  for (const selected of document.querySelectorAll(".row.selected")) selected.classList.remove("selected");
  element.classList.add("selected");
  const shown = row.poison !== undefined ? {id: row.id, key: row.key, not_a_record: row.poison} :
    {id: row.id, key: row.key, ...row.record};
  $("detail-text").textContent = JSON.stringify(shown, null, 2);
  $("detail").hidden = false;
}

function atBottom() {
  const rows = $("rows");
  return rows.scrollHeight - rows.scrollTop - rows.clientHeight < 24;
}

// History ----------------------------------------------------------------------------------------------------

function updateEdge() {
  $("top").textContent = view.done ? "start of the records Redis keeps" :
    view.loadingOlder ? "loading older records…" : "scroll up for older records";
}

async function loadOlder(first) {
  if (view.loadingOlder || (view.done && !first)) return;
  view.loadingOlder = true;
  updateEdge();
  const generation = view.generation;
  const query = filterQuery();
  query.set("limit", String(PAGE_ROWS));
  if (!first) query.set("cursor", JSON.stringify(view.cursor));
  try {
    const page = await getJSON("/api/older", query);
    if (generation !== view.generation) return;
    showProblem("");
    view.cursor = page.cursor;
    view.done = page.done;
    if (first) {
      view.after = page.newest;
      setState(view.info.follow ? "live" : "not following", view.info.follow ? "live" : "");
    }
    const list = $("list");
    const rows = $("rows");
    const before = rows.scrollHeight;
    const fragment = document.createDocumentFragment();
    for (const row of page.rows) fragment.appendChild(rowElement(row));
    list.insertBefore(fragment, list.firstChild);
    if (first) {
      rows.scrollTop = rows.scrollHeight;
    } else {
      rows.scrollTop += rows.scrollHeight - before; // the rows in view stay where they were
      while (list.childElementCount > MAX_ROWS) { // keep the older ones the user went back to see
        list.removeChild(list.lastChild);
        view.gapBelow = true;
      }
      if (view.gapBelow) showNewButton();
    }
    scheduleChart();
  } catch (error) {
    if (generation === view.generation) showProblem(error.message);
  } finally {
    if (generation === view.generation) {
      view.loadingOlder = false;
      updateEdge();
      if (!view.done && $("rows").scrollTop < 40) window.setTimeout(() => loadOlder(false), 0);
    }
  }
}

// Live ---------------------------------------------------------------------------------------------------------

async function follow(generation) {
  let wait = 250;
  while (generation === view.generation) {
    const query = filterQuery();
    query.set("after", JSON.stringify(view.after || {}));
    try {
      const answer = await getJSON("/api/newer", query);
      if (generation !== view.generation) return;
      view.after = answer.after;
      setState("live", "live");
      showProblem("");
      wait = 250;
      if (answer.rows.length) {
        view.pending.push(...answer.rows);
        view.unseen += answer.rows.length;
        view.received += answer.rows.length;
        window.requestAnimationFrame(showPending);
      }
    } catch (error) {
      if (generation !== view.generation) return;
      setState(`Redis unreachable: retrying (${error.message})`, "down");
      await new Promise((resolve) => window.setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 4000);
    }
  }
}

function showPending() {
  if (!view.pending.length) return;
  if (view.gapBelow || !atBottom()) { // paused: hold the rows (at most a page's worth), say how many
    if (view.pending.length > MAX_ROWS) {
      view.pending = [];
      view.gapBelow = true; // more arrived than the page keeps: "newest" reloads them from Redis
    }
    showNewButton();
    return;
  }
  if (view.pending.length > FRAME_ROWS) { // faster than a frame can draw: show the newest, the rest is history
    appendRows(view.pending.slice(-FRAME_ROWS), true);
  } else {
    appendRows(view.pending, false);
  }
  view.pending = [];
  view.unseen = 0;
}

function appendRows(rows, replace) {
  const list = $("list");
  const fragment = document.createDocumentFragment();
  for (const row of rows.slice(-MAX_ROWS)) fragment.appendChild(rowElement(row));
  const excess = list.childElementCount + fragment.childElementCount - MAX_ROWS;
  if (replace || excess >= list.childElementCount) {
    list.replaceChildren(fragment);
  } else {
    list.appendChild(fragment);
    if (excess > 0) { // drop the oldest rows in one operation
      const range = document.createRange();
      range.setStartBefore(list.firstChild);
      range.setEndBefore(list.children[excess]);
      range.deleteContents();
    }
  }
  if (replace || excess > 0) {
    // History goes on from the oldest row still shown of each shard; a shard with none shown, from the last
    // entry read of it (included: a cursor is an exclusive upper bound).
    view.cursor = {};
    for (const element of list.children) {
      if (!(element.dataset.key in view.cursor)) view.cursor[element.dataset.key] = element.dataset.id;
      if (Object.keys(view.cursor).length === view.info.keys.length) break;
    }
    for (const key of view.info.keys) {
      if (!(key in view.cursor) && view.after && view.after[key]) {
        const [ms, seq] = view.after[key].split("-").map(Number);
        view.cursor[key] = `${ms}-${seq + 1}`;
      }
    }
    view.done = false;
    updateEdge();
  }
  $("rows").scrollTop = $("rows").scrollHeight;
  scheduleChart();
}

function showNewButton() {
  const button = $("new");
  button.textContent = view.gapBelow ? "newest records ↓" : `${view.unseen} new ↓`;
  button.hidden = false;
}

function resumeAtBottom() {
  $("new").hidden = true;
  if (view.gapBelow) {
    start();
    return;
  }
  view.unseen = 0;
  appendRows(view.pending, false);
  view.pending = [];
}

// Chart --------------------------------------------------------------------------------------------------------

function scheduleChart() {
  if (view.chartDue) return;
  view.chartDue = true;
  window.setTimeout(() => {
    view.chartDue = false;
    drawChart();
  }, CHART_EVERY_MS);
}

function drawChart() {
  const canvas = $("chart");
  const width = canvas.clientWidth || 900;
  canvas.width = width;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const stamps = [];
  for (const element of $("list").children) {
    if (!Number.isNaN(element.stamp)) stamps.push([element.stamp, element.level]);
  }
  const totals = {};
  for (const [, level] of stamps) totals[level] = (totals[level] || 0) + 1;
  canvas.dataset.totals = JSON.stringify(totals); // what the bars add up to, by level (the tests read it)
  if (!stamps.length) return;
  let first = Infinity;
  let last = -Infinity;
  for (const [time] of stamps) {
    first = Math.min(first, time);
    last = Math.max(last, time);
  }
  const step = STEPS.find((candidate) => (last - first) / candidate < MAX_BARS) || STEPS[STEPS.length - 1];
  const origin = Math.floor(first / step) * step;
  const buckets = Math.floor((last - origin) / step) + 1;
  const counts = Array.from({length: buckets}, () => ({}));
  for (const [time, level] of stamps) {
    const bucket = Math.floor((time - origin) / step);
    counts[bucket][level] = (counts[bucket][level] || 0) + 1;
  }
  const highest = Math.max(...counts.map((bucket) => Object.values(bucket).reduce((a, b) => a + b, 0)));
  const plotHeight = canvas.height - 16;
  const barWidth = width / Math.max(buckets, MAX_BARS / 2);
  counts.forEach((bucket, index) => {
    let y = plotHeight;
    for (const level of [...LEVELS, "other"]) {
      const height = ((bucket[level] || 0) / highest) * plotHeight;
      if (!height) continue;
      context.fillStyle = COLOURS[level];
      context.fillRect(index * barWidth + 1, y - height, barWidth - 2, height);
      y -= height;
    }
  });
  context.fillStyle = "#6b6b66";
  context.font = "11px system-ui";
  const per = step < 1000 ? `${step} ms` : step < 60000 ? `${step / 1000} s` : `${step / 60000} min`;
  context.fillText(`from ${new Date(origin).toISOString()}: ${per} per bar, highest ${highest} records`,
    2, canvas.height - 3);
}

// The fleet ----------------------------------------------------------------------------------------------------

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.appendChild(td);
}

async function refreshFleet() {
  try {
    const fleet = await getJSON("/api/fleet", new URLSearchParams());
    const body = $("producers").tBodies[0];
    body.replaceChildren();
    if (fleet.producers_error) {
      const row = document.createElement("tr");
      cell(row, `producers cannot be read (${fleet.producers_error})`);
      row.firstChild.colSpan = 11;
      body.appendChild(row);
    }
    for (const beat of fleet.producers) {
      const row = document.createElement("tr");
      const dropped = beat.dropped ? `${beat.dropped} (overflow ${beat.dropped_overflow || 0}, closed ` +
        `${beat.dropped_closed || 0}, error ${beat.dropped_error || 0})` : "0";
      const values = [beat.field, beat.host, beat.pid, beat.mode, beat.state, `${Math.round(beat.age)}s`,
        beat.rate === null || beat.rate === undefined ? "-" : Math.round(beat.rate), beat.accepted, beat.written,
        dropped, beat.buffered];
      values.forEach((value, index) => cell(row, text(value), index === 4 && beat.state !== "ok" ? "stale" : ""));
      body.appendChild(row);
    }
    const keys = $("keys");
    keys.replaceChildren();
    for (const report of fleet.keys) {
      const item = document.createElement("li");
      let line = `${report.key}: ${report.error ? `cannot be read (${report.error})` : report.type}`;
      if (report.length !== undefined) line += `, ${report.length} entries`;
      if (report.memory) line += `, ${report.memory} bytes`;
      if (report.oldest_age !== undefined && report.oldest_age !== null) {
        line += `, oldest ${Math.round(report.oldest_age)}s old`;
      }
      for (const group of report.groups || []) {
        line += `; group ${group.name}: ${group.pending} pending, lag ${group.lag === null ? "?" : group.lag}`;
      }
      item.textContent = line;
      keys.appendChild(item);
    }
  } catch (error) {
    // the live view says when Redis is unreachable
  }
}

// Filters and start ---------------------------------------------------------------------------------------------

function fillForm() {
  const form = $("filters");
  for (const name of FILTERS) form.elements[name].value = view.query.get(name) || "";
  const level = (view.query.get("level") || "").toUpperCase();
  form.elements.level.value = LEVELS.includes(level) ? level : "";
  for (const name of PAIRS) form.elements[name].value = view.query.getAll(name).join("; ");
}

function readForm() {
  const form = $("filters");
  const query = new URLSearchParams();
  for (const name of FILTERS) if (form.elements[name].value.trim()) query.set(name, form.elements[name].value.trim());
  for (const name of PAIRS) {
    for (const pair of form.elements[name].value.split(";")) if (pair.trim()) query.append(name, pair.trim());
  }
  return query;
}

function start() {
  view.generation += 1;
  view.cursor = {};
  view.after = null;
  view.done = false;
  view.loadingOlder = false;
  view.pending = [];
  view.unseen = 0;
  view.gapBelow = false;
  $("new").hidden = true;
  $("list").replaceChildren();
  $("detail").hidden = true;
  const generation = view.generation;
  loadOlder(true).then(() => {
    if (generation === view.generation && view.info.follow) follow(generation);
  });
}

function applyFilters(query) {
  view.query = query;
  const search = query.toString();
  window.history.pushState(null, "", search ? `?${search}` : window.location.pathname);
  start();
}

async function main() {
  fillForm();
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters(readForm());
  });
  for (const name of ["level", "source"]) {
    $("filters").elements[name].addEventListener("change", () => applyFilters(readForm()));
  }
  $("clear").addEventListener("click", () => {
    applyFilters(new URLSearchParams());
    fillForm();
  });
  window.addEventListener("popstate", () => {
    view.query = new URLSearchParams(window.location.search);
    fillForm();
    start();
  });
  $("rows").addEventListener("scroll", () => {
    if ($("rows").scrollTop < 40) loadOlder(false);
    if (atBottom() && !view.gapBelow && (view.pending.length || view.unseen)) resumeAtBottom();
  });
  $("new").addEventListener("click", resumeAtBottom);
  $("list").addEventListener("click", (event) => {
    const element = event.target.closest(".row");
    if (element && shownRows.has(element)) showDetail(shownRows.get(element), element);
  });
  $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
  for (;;) {
    try {
      view.info = await getJSON("/api/info", new URLSearchParams());
      break;
    } catch (error) {
      setState(`cannot reach the page's server: retrying (${error.message})`, "down");
      await new Promise((resolve) => window.setTimeout(resolve, 1000));
    }
  }
  $("title").textContent = `${view.info.key} (${view.info.mode}) at ${view.info.server}`;
  document.title = `${view.info.key}: redis-log-handler web`;
  if (view.info.note) {
    $("note").textContent = view.info.note;
    $("note").hidden = false;
  }
  setState(view.info.follow ? "connecting" : "not following", "");
  start();
  refreshFleet();
  window.setInterval(refreshFleet, 3000);
}

main();
