// SPDX-License-Identifier: MIT
// halod's live status page: reads v1/status every 500 ms and draws it.  Names
// are set as text, never as markup.  The data-* attributes say what a row
// shows in a form tests can read (test/integration/test_ui.py).
"use strict";

const PERIOD_MS = 500;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function badge(text, kind) {
  return el("span", { class: "badge " + kind }, text);
}

const STATE_KIND = {
  ONLINE: "ok", OFFLINE: "bad", UNKNOWN: "muted",
  ENABLED: "ok", DISABLED: "bad",
  "IN-SERVICE": "ok", "OUT-OF-SERVICE": "bad", "OTHER-NODE": "muted",
  UNLOCKED: "ok", LOCKED: "warn", "LOCKED-INSTANTIATION": "warn", "SHUTTING-DOWN": "warn",
  INSTANTIATED: "ok", INSTANTIATING: "warn", TERMINATING: "warn", RESTARTING: "warn",
  UNINSTANTIATED: "muted", "INSTANTIATION-FAILED": "bad", "TERMINATION-FAILED": "bad",
  "FULLY-ASSIGNED": "ok", "PARTIALLY-ASSIGNED": "warn", UNASSIGNED: "bad",
  PRIMARY: "info", SECONDARY: "muted", SECONDARY_RELAY: "muted", NONE: "muted",
};

function state(s) {
  return badge(s, STATE_KIND[s] || "muted");
}

function duration(sec) {
  return sec < 1 ? Math.round(sec * 1000) + " ms" : sec.toFixed(2) + " s";
}

function nodeCards(doc) {
  return doc.nodes.map((n) => el("div", {
    class: "card node", "data-node": n.name, "data-state": n.state, "data-coordinator": n.coordinator,
  },
  el("div", { class: "name" }, n.name), " ", state(n.state),
  n.coordinator ? el("div", {}, badge("coordinator", "info")) : null,
  n.local ? el("div", { class: "quiet" }, "this page's node") : null));
}

// The primary's name as a database's status gives it: its own on the primary, the one it follows elsewhere.
function primaryOf(c) {
  return c.state === "PRIMARY" ? c.nodeid : c.primary;
}

function cdbView(doc) {
  const c = doc.cdb;
  if (!c) return [el("p", { class: "quiet" }, "not configured on this node")];
  const secs = (c.secondaries || []).map((s) => (typeof s === "string" ? s : s.nodeid || JSON.stringify(s)));
  const rows = [
    ["role here", el("span", { id: "cdb-role", "data-role": c.state }, state(c.state))],
    ["primary", primaryOf(c) || "—"],
    ["secondaries", secs.length ? secs.join(", ") : "—"],
    ["last transaction", c.last_txid && !/^0@/.test(c.last_txid) ? c.last_txid : "none yet"],
  ];
  if (c.roles_follow) rows.push(["roles follow", c.roles_follow + " (writer: " + (c.writer || "—") + ")"]);
  const out = [el("table", { class: "kv" }, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))))];
  // The cdb-subtree groups' databases (docs/cdb.md, "Several groups, one subtree each"): one row each.
  const subs = c.subtrees || [];
  if (subs.length) {
    out.push(el("table", { class: "list", id: "cdb-subtrees" },
      el("thead", {}, el("tr", {}, ...["subtree", "role here", "primary", "secondaries", "roles follow"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...subs.map((t) => el("tr", {
        class: "subtree", "data-subtree": t.subtree, "data-role": t.state, "data-primary": primaryOf(t) || "",
      },
      el("td", {}, t.subtree), el("td", {}, state(t.state)), el("td", {}, primaryOf(t) || "—"),
      el("td", {}, (t.secondaries || []).map((s) => (typeof s === "string" ? s : s.nodeid)).join(", ") || "—"),
      el("td", {}, t.roles_follow + " (writer: " + (t.writer || "—") + ")"))))));
  }
  return out;
}

function unitOf(sg, name) {
  return sg.service_units.find((u) => u.name === name);
}

function placement(sg, names) {
  if (!names.length) return "—";
  const span = el("span", {});
  names.forEach((n, i) => {
    const u = unitOf(sg, n);
    if (i) span.append(", ");
    span.append(el("b", {}, n), el("span", { class: "where" }, u ? " @ " + u.node : ""));
  });
  return span;
}

function siTable(sg) {
  const rows = sg.service_instances.map((si) => {
    const pending = si.assignments.filter((a) => a.pending).map((a) => a.su + " → " + a.target);
    return el("tr", {
      class: "si", "data-si": si.name, "data-active": si.actives.join(" "), "data-standby": si.standbys.join(" "),
    },
    el("td", {}, el("b", {}, si.name)),
    el("td", {}, state(si.assignment), si.admin !== "UNLOCKED" ? [" ", state(si.admin)] : null),
    el("td", { class: "active" }, placement(sg, si.actives)),
    el("td", { class: "standby" }, placement(sg, si.standbys)),
    el("td", {}, pending.join(", ") || (si.switchover ? "switchover" : "")));
  });
  return el("table", {},
    el("thead", {}, el("tr", {}, ...["SI", "assignment", "ACTIVE", "STANDBY", "pending"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

// Another node's components: this node knows their names, not their processes.
function remoteComp(c, node) {
  return el("div", { class: "comp", "data-component": c.name }, c.name, el("span", { class: "where" }, " (on " + node + ")"));
}

function compCell(c) {
  const r = c.recovery;
  return el("div", { class: "comp", "data-component": c.name, "data-recovery": r ? r.state : null },
    c.name, " ", state(c.presence), c.pid ? el("span", { class: "where" }, " pid " + c.pid) : null,
    r ? [" ", badge("recovery " + r.state, r.state === "IDLE" ? "muted" : "warn")] : null);
}

function suTable(sg, here) {
  const rows = sg.service_units.map((u) => el("tr", { class: "su", "data-su": u.name },
    el("td", {}, el("b", {}, u.name)),
    el("td", {}, u.node),
    el("td", {}, state(u.admin), " ", state(u.oper), " ", state(u.readiness)),
    el("td", {}, (u.components || []).map((c) => (u.node === here || here === undefined ? compCell(c) : remoteComp(c, u.node)))),
    el("td", {}, u.last_failure || "", u.last_recovery && u.last_recovery !== u.last_failure ? el("div", { class: "where" }, "→ " + u.last_recovery) : null)));
  return el("table", {},
    el("thead", {}, el("tr", {}, ...["unit", "node", "states", "components", "last failure → recovery"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function groups(doc) {
  return doc.service_groups.map((sg) => el("div", { class: "group", "data-sg": sg.name },
    el("h3", {}, sg.name, el("span", { class: "model" }, sg.redundancy)),
    siTable(sg), suTable(sg, doc.nodes.length > 1 ? doc.node : undefined)));
}

function failoverRows(doc) {
  return (doc.failovers || []).map((f) => el("tr", {
    class: "failover", "data-si": f.si, "data-from": f.from, "data-to": f.to, "data-reason": f.reason || "",
    "data-seconds": f.seconds,
  },
  el("td", {}, new Date(f.at * 1000).toLocaleTimeString()),
  el("td", {}, f.si),
  el("td", {}, f.from, el("span", { class: "where" }, " @ " + f.from_node)),
  el("td", {}, f.to, el("span", { class: "where" }, " @ " + f.to_node)),
  el("td", {}, f.reason || el("span", { class: "where", title: "decided by the coordinator of the time" }, "(decided elsewhere)")),
  el("td", {}, duration(f.seconds))));
}

function draw(doc) {
  document.getElementById("cluster").textContent = doc.cluster;
  document.getElementById("meta").textContent =
    "node " + doc.node + " · coordinator " + (doc.coordinator || "none") + " · store " + doc.store + " · halod " + doc.version;
  document.getElementById("nodes").replaceChildren(...nodeCards(doc));
  document.getElementById("cdb").replaceChildren(...cdbView(doc));
  const fo = failoverRows(doc);
  document.querySelector("#failovers tbody").replaceChildren(...fo);
  document.getElementById("failovers").hidden = fo.length === 0;
  document.getElementById("no-failovers").hidden = fo.length > 0;
  document.getElementById("groups").replaceChildren(el("h2", {}, "Service groups"), ...groups(doc));
}

function live(ok, text) {
  const l = document.getElementById("live");
  l.className = "live " + (ok ? "up" : "down");
  l.textContent = text;
  if (ok) l.setAttribute("data-updated", String(Date.now()));
}

async function poll() {
  try {
    const r = await fetch("v1/status", { cache: "no-store", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error("HTTP " + r.status);
    draw(await r.json());
    live(true, "live · " + new Date().toLocaleTimeString());
  } catch (e) {
    live(false, "halod unreachable (" + e.message + "), retrying");
  }
  setTimeout(poll, PERIOD_MS);
}

poll();
