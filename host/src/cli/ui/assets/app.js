// The pipelines page: runs from Temporal visibility, a run's DAG live (polled once a second,
// as a person running `pipeline status` would), and the workflow's signals and updates as
// buttons. Everything that came from a run (ids, notes, outputs, params) is put into the page
// as text (textContent, SVG text nodes), never as markup: plugins write step notes.
"use strict";

const CSRF = document.querySelector('meta[name="mlx-csrf"]').content;
const TEMPORAL_UI = document.querySelector('meta[name="mlx-temporal-ui"]').content;
const view = document.getElementById("view");
const errorBox = document.getElementById("error");
let timer = null;
let selected = null;
// Per step of the run on screen: the (round, loss) points its heartbeats reported while the
// page watched, and finished steps' outputs (fetched once).
let curves = new Map();
let outputs = new Map();
let expanded = new Map();
let drafts = new Map();
// What the run's history says of a step, fetched again only when its state or attempt changes.
let histories = new Map();
// Per training step: when its checkpoint journal was last read, and whether it is final.
let journals = new Map();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) node.addEventListener(ev, f);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  errorBox.textContent = message || "";
  errorBox.hidden = !message;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-mlx-csrf": CSRF },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const time = (ms) => (ms ? new Date(ms).toLocaleString() : "");
function duration(start, end) {
  if (!start) return "";
  const s = Math.max(0, Math.round(((end || Date.now()) - start) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const badge = (state) => el("span", { class: `state s-${state}`, "data-state": state }, state);

// Runs --------------------------------------------------------------------------------------

async function showRuns(params) {
  const pipeline = el("input", { type: "search", placeholder: "pipeline name", value: params.get("pipeline") || "" });
  const state = el("select", {},
    ...["", "running", "succeeded", "failed", "cancelled", "terminated", "timed_out"].map((s) =>
      el("option", { value: s }, s || "any state")));
  state.value = params.get("state") || "";
  const apply = () => { location.hash = `#/?pipeline=${encodeURIComponent(pipeline.value)}&state=${encodeURIComponent(state.value)}`; };
  pipeline.addEventListener("change", apply);
  state.addEventListener("change", apply);
  const body = el("tbody");
  view.replaceChildren(el("h1", {}, "Runs"), el("div", { class: "filters" }, pipeline, state),
    el("table", { id: "runs" },
      el("thead", {}, el("tr", {}, ...["Run", "Pipeline", "State", "Started", "Duration", "Failing step"].map((h) => el("th", {}, h)))),
      body));
  const refresh = async () => {
    const q = new URLSearchParams({ pipeline: pipeline.value, state: state.value });
    const data = await api(`/api/runs?${q}`);
    body.replaceChildren(...data.runs.map((r) => el("tr", { "data-run": r.workflow_id },
      el("td", {}, el("a", { href: `#/run/${encodeURIComponent(r.workflow_id)}` }, r.workflow_id)),
      el("td", {}, r.pipeline),
      el("td", {}, badge(r.state)),
      el("td", {}, time(r.start_ms)),
      el("td", {}, duration(r.start_ms, r.close_ms)),
      el("td", { class: "failing" }, r.failing_step || ""))));
    if (!data.runs.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no runs")));
  };
  await poll(refresh, 5000);
}

// Schedules and plugins ----------------------------------------------------------------------

const runLink = (id) => el("a", { href: `#/run/${encodeURIComponent(id)}` }, id);

async function showSchedules() {
  const body = el("tbody");
  view.replaceChildren(el("h1", {}, "Schedules"), el("table", { id: "schedules" },
    el("thead", {}, el("tr", {}, ...["Schedule", "Times", "Paused", "Next runs", "Recent runs"].map((h) => el("th", {}, h)))),
    body));
  await poll(async () => {
    const data = await api("/api/schedules");
    body.replaceChildren(...data.schedules.map((s) => el("tr", { "data-schedule": s.id },
      el("td", {}, s.id), el("td", {}, s.times || ""),
      el("td", {}, s.paused ? `yes${s.note ? ` (${s.note})` : ""}` : "no"),
      el("td", {}, ...s.next_ms.map((t) => el("div", {}, time(t)))),
      el("td", {}, ...s.recent.slice(-5).reverse().map((r) => el("div", {}, runLink(r.workflow_id), " ", el("span", { class: "muted" }, time(r.started_ms))))))));
    if (!data.schedules.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no pipeline schedules")));
  }, 10000);
}

async function showPlugins() {
  const list = el("div", { id: "plugins" });
  view.replaceChildren(el("h1", {}, "Plugins"), list);
  await poll(async () => {
    const data = await api("/api/plugins");
    if (!data.workers.length) {
      list.replaceChildren(el("p", { class: "muted" }, "No workers given: start the page with --worker http://HOST:PORT (a worker's health_address)."));
      return;
    }
    const operation = (o) => el("details", {},
      el("summary", {}, o.name),
      el("div", { class: "muted" }, o.description),
      el("pre", {}, JSON.stringify(o.input_schema, null, 2)));
    const plugin = (p) => el("tr", { "data-plugin": p.name },
      el("td", {}, el("strong", {}, p.name), " ", p.version, el("div", { class: "muted" }, p.description)),
      el("td", { class: "muted" }, p.digest),
      el("td", {}, ...p.operations.map(operation)));
    const worker = (w) => el("div", { class: "panel", "data-worker": w.worker },
      el("h2", {}, w.worker),
      w.error ? el("p", { class: "error" }, w.error)
        : el("table", {}, el("tbody", {}, ...(w.plugins || []).map(plugin))));
    list.replaceChildren(...data.workers.map(worker));
  }, 60000);
}

// A run --------------------------------------------------------------------------------------

function layers(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const visit = (s, seen) => {
    if (depth.has(s.id)) return depth.get(s.id);
    if (seen.has(s.id)) return 0;
    seen.add(s.id);
    const d = Math.max(-1, ...(s.depends_on || []).filter((d) => byId.has(d)).map((d) => visit(byId.get(d), seen))) + 1;
    depth.set(s.id, d);
    return d;
  };
  steps.forEach((s) => visit(s, new Set()));
  return depth;
}

function drawDag(status) {
  const W = 170, H = 46, GX = 60, GY = 18;
  const depth = layers(status.steps);
  const rows = new Map();
  const pos = new Map();
  for (const s of status.steps) {
    const d = depth.get(s.id);
    const r = rows.get(d) || 0;
    rows.set(d, r + 1);
    pos.set(s.id, { x: 10 + d * (W + GX), y: 10 + r * (H + GY) });
  }
  const width = 20 + (Math.max(0, ...depth.values()) + 1) * (W + GX);
  const height = 20 + Math.max(1, ...rows.values()) * (H + GY);
  const root = svg("svg", { class: "dag", id: "dag", viewBox: `0 0 ${width} ${height}`, height });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#98a2b3" }));
  defs.append(marker);
  root.append(defs);
  for (const s of status.steps) {
    for (const d of s.depends_on || []) {
      const a = pos.get(d), b = pos.get(s.id);
      if (!a) continue;
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}` }));
    }
  }
  for (const s of status.steps) {
    const p = pos.get(s.id);
    const g = svg("g", { class: `node${s.id === selected ? " selected" : ""}`, "data-step": s.id, "data-state": s.status, transform: `translate(${p.x},${p.y})` });
    g.append(svg("rect", { class: `s-${s.status}`, width: W, height: H }));
    g.append(svg("text", { x: 8, y: 18 }, s.id));
    let sub = s.status;
    if (s.cached_from) sub += " (cached)";
    if (s.attempt > 1) sub += ` · attempt ${s.attempt}`;
    if (s.items) sub += ` · ${s.items.filter((i) => i.status === "succeeded").length}/${s.items.length}`;
    g.append(svg("text", { x: 8, y: 36, class: "muted" }, sub));
    g.addEventListener("click", () => { selected = s.id; render(lastRun); });
    root.append(g);
  }
  return root;
}

const PICTURE = /^\/artifacts\/[^?#]+\.(svg|png)$/;

function pictures(value, found = []) {
  if (typeof value === "string" && PICTURE.test(value)) found.push(value);
  else if (value && typeof value === "object") Object.values(value).forEach((v) => pictures(v, found));
  return found;
}

// Loss by round as a line, drawn from the points in hand.
function lossChart(points) {
  const W = 320, H = 150, P = 30;
  const root = svg("svg", { class: "curve", viewBox: `0 0 ${W} ${H}`, width: W, height: H, "data-points": points.length });
  if (points.length < 2) {
    root.append(svg("text", { x: P, y: H / 2 }, "waiting for more rounds"));
    return root;
  }
  const rounds = points.map((p) => p.round), losses = points.map((p) => p.loss);
  const [r0, r1] = [Math.min(...rounds), Math.max(...rounds)];
  const [l0, l1] = [Math.min(...losses), Math.max(...losses)];
  const x = (r) => P + ((r - r0) / Math.max(1, r1 - r0)) * (W - 2 * P);
  const y = (l) => H - P - ((l - l0) / Math.max(1e-12, l1 - l0)) * (H - 2 * P);
  root.append(svg("polyline", { fill: "none", stroke: "#1570ef", "stroke-width": 2,
    points: points.map((p) => `${x(p.round)},${y(p.loss)}`).join(" ") }));
  root.append(svg("text", { x: P, y: H - 8 }, `round ${r0}`), svg("text", { x: W - P - 60, y: H - 8 }, `round ${r1}`));
  root.append(svg("text", { x: 2, y: P - 8 }, `loss ${l1.toPrecision(4)}`), svg("text", { x: 2, y: H - P + 14 }, `${l0.toPrecision(4)}`));
  return root;
}

function trackProgress(run) {
  for (const [activity, p] of Object.entries(run.progress || {})) {
    if (!p || typeof p.round !== "number" || typeof p.loss !== "number") continue;
    const points = curves.get(activity) || [];
    if (!points.length || points[points.length - 1].round < p.round) points.push({ round: p.round, loss: p.loss });
    curves.set(activity, points);
  }
}

// The rounds a training step checkpointed (those before the page opened included), merged
// into its curve; read again every 10 s while it runs.
function loadJournal(run, step) {
  const seen = journals.get(step.id);
  const now = Date.now();
  if (seen && (seen.done || now - seen.at < 10000)) return;
  journals.set(step.id, { at: now, done: false });
  const rows = (histories.get(step.id) || {}).rows;
  const input = (rows && rows[0] && rows[0].input) || {};
  const progress = (run.progress || {})[step.id];
  const dir = (input.output_dir || "/artifacts/model").replace(/\/$/, "");
  const path = (progress && progress.checkpoint && progress.checkpoint.path) || `${dir}/checkpoint.jsonl`;
  api(`/api/journal?id=${encodeURIComponent(run.workflow_id)}&path=${encodeURIComponent(path)}`)
    .then((answer) => {
      const byRound = new Map((curves.get(step.id) || []).map((p) => [p.round, p]));
      for (const r of answer.rounds) byRound.set(r.round, r);
      curves.set(step.id, [...byRound.values()].sort((a, b) => a.round - b.round));
      journals.set(step.id, { at: now, done: step.status !== "running" });
      if (lastRun) render(lastRun);
    })
    .catch(() => {});
}

function outputSection(run, step) {
  const key = step.id;
  const section = el("div", { id: "output" });
  const known = outputs.get(key);
  if (known === undefined) {
    outputs.set(key, null);
    api(`/api/output?id=${encodeURIComponent(run.workflow_id)}&step=${encodeURIComponent(step.id)}`)
      .then((answer) => { outputs.set(key, answer.output); if (lastRun) render(lastRun); })
      .catch((e) => outputs.set(key, { error: e.message }));
    return section;
  }
  if (known === null) return section;
  const found = pictures(known);
  if (found.length && run.files) {
    section.append(el("h2", {}, "Plots"));
    for (const path of found) {
      section.append(el("figure", {}, el("img", { class: "plot", alt: path,
        src: `/api/file?id=${encodeURIComponent(run.workflow_id)}&path=${encodeURIComponent(path)}` }),
        el("figcaption", { class: "muted" }, path)));
    }
  }
  // Open by default when there is nothing else to see; a person's toggle survives redraws.
  const open = expanded.has(key) ? expanded.get(key) : !found.length;
  section.append(el("details", { open: open ? "" : null, on: { toggle: (e) => expanded.set(key, e.target.open) } },
    el("summary", {}, "Output"), el("pre", {}, JSON.stringify(known, null, 2))));
  return section;
}

function historySection(run, step) {
  const section = el("div", { id: "history" });
  const version = `${step.status}/${step.attempt}/${(step.items || []).length}`;
  const known = histories.get(step.id);
  if (!known || known.version !== version) {
    histories.set(step.id, { version, rows: known ? known.rows : null });
    api(`/api/step?id=${encodeURIComponent(run.workflow_id)}&step=${encodeURIComponent(step.id)}`)
      .then((answer) => { histories.set(step.id, { version, rows: answer.activities }); if (lastRun) render(lastRun); })
      .catch(() => {});
  }
  const rows = (histories.get(step.id) || {}).rows;
  if (!rows || !rows.length) return section;
  section.append(el("h2", {}, "Input"), el("pre", { id: "input" }, JSON.stringify(rows[0].input, null, 2)));
  section.append(el("h2", {}, "Attempts"), el("table", { id: "attempts" },
    el("thead", {}, el("tr", {}, ...["Activity", "Attempt", "Worker", "Started", "Outcome", "Message"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, r.activity_id), el("td", {}, r.attempt ?? ""), el("td", {}, r.worker ?? ""),
      el("td", {}, time(r.started_ms)), el("td", {}, r.outcome), el("td", {}, r.message ?? ""))))));
  return section;
}

function stepPanel(run, step) {
  if (!step) return el("div", { class: "panel muted" }, "Click a step to see it.");
  const rows = [
    ["kind", step.kind], ["state", badge(step.status)], ["attempt", step.attempt ?? ""],
    ["started", time(step.started_at_ms)], ["duration", duration(step.started_at_ms, step.ended_at_ms)],
    ["output", step.output_ref ?? ""],
    ["cached from", step.cached_from ? `${step.cached_from.workflow_id} / ${step.cached_from.step}` : ""],
  ];
  const panel = el("div", { class: "panel", id: "step" }, el("h2", {}, step.id),
    el("dl", {}, ...rows.filter(([, v]) => v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  if (step.note) panel.append(el("h2", {}, "Note"), el("pre", { id: "note" }, step.note));
  const progress = (run.progress || {})[step.id];
  if (step.status === "running" && progress) {
    panel.append(el("h2", {}, "Progress"), el("pre", { id: "progress" }, JSON.stringify(progress)));
  }
  if (run.files && step.kind.endsWith(".train_model") && step.status !== "pending") loadJournal(run, step);
  const points = curves.get(step.id);
  if (points && points.length) panel.append(el("h2", {}, "Training loss"), lossChart(points));
  if (step.status === "succeeded" && step.output_ref) panel.append(outputSection(run, step));
  if (!step.kind.startsWith("approval")) panel.append(historySection(run, step));
  if (step.items) {
    panel.append(el("h2", {}, "Items"), el("table", {}, el("tbody", {}, ...step.items.map((it, i) =>
      el("tr", {}, el("td", {}, String(i)), el("td", {}, JSON.stringify(it.item)), el("td", {}, badge(it.status)), el("td", {}, it.note || ""))))));
  }
  const actions = el("div", { class: "actions" });
  if (step.status === "waiting_approval") {
    // What a person typed survives the once-a-second redraw.
    const comment = el("textarea", { id: "comment", placeholder: "comment (optional)",
      on: { input: (e) => drafts.set(step.id, e.target.value) } });
    comment.value = drafts.get(step.id) || "";
    panel.append(el("h2", {}, "Approval"), comment);
    actions.append(
      el("button", { class: "primary", id: "approve", on: { click: () => act(run, { action: "approve", step: step.id, comment: comment.value }) } }, "Approve"),
      el("button", { class: "danger", id: "reject", on: { click: () => act(run, { action: "reject", step: step.id, comment: comment.value }) } }, "Reject"));
  }
  if (step.status === "running") {
    actions.append(el("button", { class: "danger", id: "cancel-step", on: { click: () => act(run, { action: "cancel_step", step: step.id, comment: "cancelled from the web page" }) } }, "Cancel step"));
  }
  panel.append(actions);
  return panel;
}

async function act(run, request) {
  try {
    const answer = await api("/api/action", { id: run.workflow_id, ...request });
    showError("");
    await refreshRun(run.workflow_id);
    return answer;
  } catch (e) {
    showError(`${request.action} refused: ${e.message}`);
  }
}

let lastRun = null;

function render(run) {
  lastRun = run;
  trackProgress(run);
  const s = run.status;
  const head = el("div", {}, el("h1", {}, run.workflow_id, " ", badge(s ? s.state : run.execution)),
    el("p", { class: "muted" }, s ? `pipeline ${s.pipeline} · ` : "", `run ${run.run_id} · `,
      TEMPORAL_UI ? el("a", { href: `${TEMPORAL_UI}${encodeURIComponent(run.workflow_id)}/${encodeURIComponent(run.run_id)}/history`, target: "_blank", rel: "noopener" }, "in Temporal's UI") : ""));
  if (!s) {
    view.replaceChildren(head, el("p", { class: "panel" }, run.error || "no status"));
    return;
  }
  if (!selected) selected = (s.steps.find((x) => x.status === "waiting_approval") || {}).id || null;
  const runActions = el("div", { class: "actions" });
  if (s.state === "running") runActions.append(el("button", { id: "pause", on: { click: () => act(run, { action: "pause" }) } }, "Pause"));
  if (s.state === "paused") runActions.append(el("button", { id: "resume", on: { click: () => act(run, { action: "resume" }) } }, "Resume"));
  const params = el("div", { class: "panel" }, el("h2", {}, "Params"),
    el("dl", {}, ...Object.entries(s.params || {}).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, JSON.stringify(v))])));
  if (s.state === "running" || s.state === "paused") {
    const name = el("input", { placeholder: "param", id: "param-name" });
    const value = el("input", { placeholder: "value (JSON or text)", id: "param-value" });
    params.append(el("div", { class: "actions" }, name, value,
      el("button", { id: "set-param", on: { click: () => act(run, { action: "set_param", name: name.value, value: value.value }) } }, "Set")));
  }
  const step = s.steps.find((x) => x.id === selected);
  view.replaceChildren(head, runActions,
    s.failure ? el("p", { class: "error" }, s.failure) : "",
    el("div", { class: "layout" }, drawDag(s), el("div", {}, stepPanel(run, step), params)));
}

async function refreshRun(id) {
  render(await api(`/api/run?id=${encodeURIComponent(id)}`));
}

async function showRun(id) {
  selected = null;
  curves = new Map();
  outputs = new Map();
  histories = new Map();
  journals = new Map();
  await poll(() => refreshRun(id), 1000);
}

// Routing and polling -------------------------------------------------------------------------

async function poll(refresh, every) {
  const mine = {};
  timer = mine;
  while (timer === mine) {
    // A step panel being typed into is not redrawn under the person's cursor.
    const typing = document.activeElement && ["TEXTAREA", "INPUT", "SELECT"].includes(document.activeElement.tagName) && view.contains(document.activeElement);
    if (!typing) {
      try { await refresh(); showError(""); } catch (e) { showError(e.message); }
    }
    // A closed run changes no more: its page looks again only now and then.
    const closed = lastRun && view.contains(document.getElementById("dag")) && lastRun.execution !== "running";
    await new Promise((r) => setTimeout(r, closed ? Math.max(every, 10000) : every));
  }
}

function route() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const m = path.match(/^\/run\/(.+)$/);
  if (m) showRun(decodeURIComponent(m[1]));
  else if (path === "/schedules") showSchedules();
  else if (path === "/plugins") showPlugins();
  else showRuns(new URLSearchParams(query || ""));
}

window.addEventListener("hashchange", route);
route();
