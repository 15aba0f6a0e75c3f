// lightwork's status page: fetches stats.json every few seconds and fills the tables.
// Every value goes in through textContent, never as HTML: task names and routes come from
// the application and its requests.
"use strict";

const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
const STATES = ["completed", "failed", "timed_out", "cancelled", "dropped", "offloaded"];
const TOTALS = [
  ["scheduled", "scheduled"], ["queued", "queued"], ["in_flight", "running"],
  ...STATES.map((s) => [s, s.replace("_", " ")]),
  ["slow", "slow warnings"], ["blocking", "blocking warnings"],
];
const TOP = 10;

function seconds(s) {
  if (s === null || s === undefined) return "\u2013";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
  return s.toFixed(s < 10 ? 2 : 1) + " s";
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.append(td);
    }
    return tr;
  }));
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = document.querySelectorAll("#" + tableId + " th").length;
    td.className = "none";
    td.textContent = "none";
    tr.append(td);
    body.append(tr);
  }
}

function render(stats) {
  const totals = document.getElementById("totals");
  totals.replaceChildren(...TOTALS.map(([key, label]) => {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = String(stats.totals[key]);
    dd.dataset.key = key;
    const group = document.createElement("div");
    group.append(dt, dd);
    return group;
  }));

  fill("running", stats.running.map((t) => [
    t.id, t.name, t.state, seconds(t.duration_s), seconds(t.blocked_s), t.route ?? "\u2013",
  ]));

  const tasks = Object.entries(stats.tasks);
  const ended = tasks.filter(([, t]) => t.duration_s.count > 0);
  fill("slowest", ended
    .map(([name, t]) => [name, t.duration_s.sum / t.duration_s.count, t])
    .sort((a, b) => b[1] - a[1]).slice(0, TOP)
    .map(([name, mean, t]) => [
      name, seconds(mean), seconds(t.duration_s.max), t.duration_s.count, t.slow,
    ]));
  fill("blocking", ended
    .filter(([, t]) => t.blocked_s.sum > 0 || t.blocking > 0)
    .sort((a, b) => b[1].blocked_s.sum - a[1].blocked_s.sum).slice(0, TOP)
    .map(([name, t]) => [name, seconds(t.blocked_s.sum), seconds(t.blocked_s.max), t.blocking]));
  fill("tasks", tasks
    .sort((a, b) => b[1].scheduled - a[1].scheduled)
    .map(([name, t]) => [
      name, t.scheduled, t.queued, t.in_flight, ...STATES.map((s) => t[s]),
    ]));
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const response = await fetch("stats.json", { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error("the server answered " + response.status);
    render(await response.json());
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
    updated.className = "";
  } catch (error) {
    updated.textContent = "Could not refresh: " + error.message;
    updated.className = "error";
  }
  setTimeout(refresh, refreshMs);
}

refresh();
