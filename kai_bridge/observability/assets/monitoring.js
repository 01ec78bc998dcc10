// kai-bridge monitoring panel: polls /monitoring/snapshot.json and draws what it says.
// Plain DOM and canvas; every value from the server is set as text, never as HTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const HISTORY = 90; // points kept for the charts (3 minutes at 2 s)
  const history = [];
  let previous = null;

  const $ = (id) => document.getElementById(id);
  const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
  const ms = (n) => (n === null || n === undefined ? "–" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));
  const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(r >= 0.9995 || r === 0 ? 0 : 1) + "%");
  const rate = (r) => (r === null || r === undefined ? "–" : r >= 10 ? r.toFixed(1) : r.toFixed(2));
  const bytes = (b) => {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
    return b.toFixed(i ? 1 : 0) + " " + units[i];
  };
  const duration = (s) => {
    if (s === null || s === undefined) return "–";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  };

  function text(id, value) { const el = $(id); if (el) el.textContent = value; }
  function pill(id, state, label) { const el = $(id); el.dataset.state = state; el.textContent = label || state; }

  function fillTable(id, rows, cells) {
    const body = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const [value, cls, attrs] of cells(row)) {
        const td = document.createElement("td");
        td.textContent = value;
        if (cls) td.className = cls;
        for (const [k, v] of Object.entries(attrs || {})) td.dataset[k] = v;
        tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    body.replaceWith(fresh);
  }

  function kv(id, pairs) {
    const dl = $(id);
    dl.replaceChildren();
    for (const [key, value, state] of pairs) {
      const dt = document.createElement("dt"); dt.textContent = key;
      const dd = document.createElement("dd");
      if (state) { const span = document.createElement("span"); span.className = "pill"; span.dataset.state = state; span.textContent = value; dd.appendChild(span); }
      else dd.textContent = value;
      dl.append(dt, dd);
    }
  }

  function callRows(rows, key) {
    return (row) => [
      [row[key], null, key === "door" ? { door: row[key] } : { tool: row[key] }],
      [int(row.calls_total), "num", { calls: String(row.calls_total) }],
      [int(row.errors_total), "num"],
      [rate(row.recent.rate_per_s), "num"],
      [pct(row.recent.success_rate), "num"],
      [ms(row.recent.avg_ms), "num"],
      [ms(row.recent.p95_ms), "num"],
    ];
  }

  // ---- charts ------------------------------------------------------------------------------
  function lineChart(canvas, series, unit) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || Number(canvas.getAttribute("height")) || 140;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    const styles = getComputedStyle(document.documentElement);
    const muted = styles.getPropertyValue("--muted").trim() || "#667085";
    const line = styles.getPropertyValue("--line").trim() || "#e3e6eb";
    const left = 44, right = 8, top = 18, bottom = 16;
    const w = width - left - right, h = height - top - bottom;
    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    max = max > 0 ? max * 1.15 : 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = muted;
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 3; i += 1) {
      const y = top + h - (h * i) / 3;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
      const label = max * i / 3;
      ctx.fillText(label >= 100 ? Math.round(label) : label.toFixed(label >= 10 ? 0 : 2), 2, y + 4);
    }
    ctx.fillText(unit, 2, 11);
    let legendX = left;
    for (const s of series) {
      const n = s.values.length;
      ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
      let started = false;
      s.values.forEach((v, i) => {
        if (v === null) { started = false; return; }
        const x = left + (w * (i + HISTORY - n)) / (HISTORY - 1); // newest at the right edge
        const y = top + h - (h * v) / max;
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      });
      ctx.stroke();
      const lastIndex = s.values.length - 1;
      if (lastIndex >= 0 && s.values[lastIndex] !== null) { // mark the newest point (a lone point draws no line)
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(left + w, top + h - (h * s.values[lastIndex]) / max, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.fillStyle = s.color; ctx.fillRect(legendX, 4, 10, 4);
      ctx.fillStyle = muted; ctx.fillText(s.label, legendX + 14, 10);
      legendX += ctx.measureText(s.label).width + 34;
    }
  }

  function drawCharts() {
    const styles = getComputedStyle(document.documentElement);
    const a = styles.getPropertyValue("--accent").trim() || "#2f6feb";
    const b = styles.getPropertyValue("--accent2").trim() || "#c2410c";
    const bad = styles.getPropertyValue("--bad").trim() || "#c62828";
    lineChart($("chart-rate"), [
      { label: "calls/s", color: a, values: history.map((p) => p.callRate) },
      { label: "errors/s", color: bad, values: history.map((p) => p.errorRate) },
    ], "/s");
    lineChart($("chart-latency"), [
      { label: "p95 ms", color: b, values: history.map((p) => p.p95) },
      { label: "avg ms", color: a, values: history.map((p) => p.avg) },
    ], "ms");
    lineChart($("chart-process"), [
      { label: "CPU %", color: a, values: history.map((p) => p.cpu) },
      { label: "RSS MiB", color: b, values: history.map((p) => p.rss) },
    ], "");
  }

  function errorBars(kinds) {
    const svg = $("errors-chart");
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    $("errors-empty").hidden = kinds.length > 0;
    const rowH = 22, labelW = 150;
    svg.setAttribute("height", String(Math.max(1, kinds.length) * rowH));
    const max = kinds.reduce((m, k) => Math.max(m, k.count), 0) || 1;
    const width = svg.clientWidth || 320;
    kinds.forEach((k, i) => {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", "0"); label.setAttribute("y", String(i * rowH + 15));
      label.textContent = k.kind;
      const bar = document.createElementNS(ns, "rect");
      const w = Math.max(2, ((width - labelW - 60) * k.count) / max);
      bar.setAttribute("x", String(labelW)); bar.setAttribute("y", String(i * rowH + 4));
      bar.setAttribute("width", String(w)); bar.setAttribute("height", "14"); bar.setAttribute("class", "bar");
      const count = document.createElementNS(ns, "text");
      count.setAttribute("x", String(labelW + w + 6)); count.setAttribute("y", String(i * rowH + 15));
      count.textContent = int(k.count);
      svg.append(label, bar, count);
    });
  }

  // ---- one snapshot ------------------------------------------------------------------------
  function render(s) {
    pill("status", s.status);
    pill("mode", s.mode, s.mode === "sandbox" ? "SANDBOX" : "LIVE");
    text("version", "v" + s.version);
    text("uptime", duration(s.uptime_s));
    text("updated", new Date(s.at * 1000).toLocaleTimeString());
    const warning = $("warning");
    warning.hidden = !s.warning;
    warning.textContent = s.warning || "";
    const minutes = Math.round(s.recent_period_s / 60);
    text("recent-label", "calls/s, last " + (minutes >= 1 ? minutes + " min" : Math.round(s.recent_period_s) + " s"));

    const c = s.calls;
    text("tool-calls-total", int(c.tool_calls_total));
    text("success-rate", pct(c.success_rate_total));
    text("request-rate", rate(c.recent.rate_per_s));
    text("avg-ms", ms(c.recent.avg_ms));
    text("p95-ms", ms(c.recent.p95_ms));
    text("error-rate", c.recent.calls ? pct(c.recent.errors / c.recent.calls) : "–");
    text("http-requests-total", int(s.http.requests_total));
    text("coze-attempts-total", int(s.coze.attempts_total));
    text("coze-errors-total", int(s.coze.errors_total));

    fillTable("doors", c.doors, callRows(c.doors, "door"));
    fillTable("tools", c.tools, callRows(c.tools, "tool"));
    errorBars(s.errors_by_kind);
    kv("services", Object.entries(s.services).map(([name, state]) => [name, state, state]));

    const z = s.coze;
    text("coze-base", (s.mode === "sandbox" ? "embedded sandbox " : "") + z.base_url);
    const rotated = z.token.rotations ? ", rotated " + int(z.token.rotations) + "×" : "";
    text("coze-auth", z.token.mode === "jwt" ? "JWT OAuth (kid " + z.token.kid + rotated +
      (z.token.from_previous_key ? "; the old key's token is draining" : "") + ")" : "personal access token" + rotated);
    text("coze-token-age", z.token.mode === "jwt" ? duration(z.token.age_s) : "n/a (static token)");
    text("coze-token-left", z.token.mode === "jwt" ? duration(z.token.seconds_left) : "n/a");
    text("coze-exchanges", z.token.mode === "jwt" ? int(z.token.exchanges) + " / " + int(z.token.refreshes) +
      (z.token.exchange_failures ? " (" + int(z.token.exchange_failures) + " failed)" : "") : "n/a");
    pill("coze-breaker", z.breaker.state, z.breaker.state.replace("_", "-"));
    text("coze-breaker-detail", "opened " + int(z.breaker.opened_count) + "×, " + int(z.breaker.rejected_count) + " fast-failed");
    text("coze-retries", int(z.counters.retries || 0) + " / " + int(z.counters.reauths || 0));
    text("coze-last-error", z.last_error ? z.last_error.at + " " + z.last_error.where + " code " + z.last_error.code +
      (z.last_error.logid ? " logid " + z.last_error.logid : "") + ": " + z.last_error.message : "none");
    fillTable("coze-endpoints", z.endpoints, (e) => [
      [e.endpoint], [int(e.attempts_total), "num"], [int(e.errors_total), "num"],
      [ms(e.recent.avg_ms), "num"], [ms(e.recent.p95_ms), "num"],
    ]);

    const q = z.quota;
    if (q) {
      const full = q.waiting > 0 || q.use >= 0.9;
      pill("coze-quota-state", full ? "degraded" : "ok", full ? "at the quota" : "on");
      text("coze-quota", rate(q.per_second) + " requests/s, bursts of " + int(q.burst) + ", wait up to " + q.max_wait + " s");
      text("coze-quota-use", pct(q.use) + " (" + rate(q.rate_per_s) + "/s over the last " + Math.round(q.period_s) + " s)");
      text("coze-quota-waits", int(q.waited) + " / " + int(q.refused) + (q.waiting ? ", " + int(q.waiting) + " waiting now" : ""));
    } else {
      pill("coze-quota-state", "unknown", "off");
      text("coze-quota", "none configured (coze_quota_per_second = 0)");
      text("coze-quota-use", "n/a");
      text("coze-quota-waits", "n/a");
    }
    fillTable("coze-groups", z.groups, (g) => [
      [g.group + (g.documented_qps ? " *" : ""), null, { group: g.group }], [int(g.attempts_total), "num", { attempts: String(g.attempts_total) }],
      [rate(g.recent.rate_per_s), "num"], [int(g.rate_limited_total), "num"],
      [g.quota_waits_total === null ? "–" : int(g.quota_waits_total), "num", { waits: String(g.quota_waits_total) }],
    ]);

    $("upstreams-empty").hidden = s.upstreams.length > 0;
    fillTable("upstreams", s.upstreams, (u) => [
      [u.name], [u.state, null, { state: u.state }], [int(u.tool_count), "num"], [int(u.calls), "num"],
      [int(u.failures), "num"], [u.last_error || "", "msg"],
    ]);

    const wh = s.webhooks;
    $("webhooks-empty").hidden = wh.connected;
    const pairs = wh.events.map((e) => [e.result + (e.reason ? " (" + e.reason + ")" : ""), int(e.count)]);
    if (wh.inbox) for (const [status, count] of Object.entries(wh.inbox)) pairs.push(["inbox " + status, int(count)]);
    if (wh.connected && pairs.length === 0) pairs.push(["inbox", "empty: no event received yet"]);
    kv("webhooks", pairs);

    const p = s.process;
    let cpu = null;
    if (previous && p.cpu_seconds_total !== null && previous.process.cpu_seconds_total !== null && s.at > previous.at) {
      cpu = (100 * (p.cpu_seconds_total - previous.process.cpu_seconds_total)) / (s.at - previous.at);
    }
    text("cpu", cpu === null ? (p.cpu_seconds_total === null ? "n/a" : int(p.cpu_seconds_total) + " s in all") :
      cpu.toFixed(1) + "% of one core");
    text("rss", bytes(p.rss_bytes));
    text("fds", p.open_fds === null ? "n/a" : int(p.open_fds) + (p.max_fds ? " of " + int(p.max_fds) : ""));

    $("recent-errors-empty").hidden = s.recent_errors.length > 0;
    fillTable("recent-errors", s.recent_errors, (e) => [
      [e.at.replace("T", " ").replace("Z", "")], [e.kind], [e.where], [e.code], [e.logid || "–"], [e.message, "msg"],
    ]);

    let callRate = null, errorRate = null;
    if (previous && s.at > previous.at) {
      const dt = s.at - previous.at;
      callRate = Math.max(0, c.tool_calls_total - previous.calls.tool_calls_total) / dt;
      errorRate = Math.max(0, c.tool_errors_total - previous.calls.tool_errors_total) / dt;
    }
    history.push({ callRate, errorRate, p95: c.recent.p95_ms, avg: c.recent.avg_ms, cpu,
      rss: p.rss_bytes === null ? null : p.rss_bytes / 1048576 });
    while (history.length > HISTORY) history.shift();
    drawCharts();
    previous = s;
  }

  async function poll() {
    try {
      const response = await fetch("/monitoring/snapshot.json", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      pill("live", "live", "live");
      document.body.dataset.loaded = "true";
    } catch (err) {
      pill("live", "offline", "offline: " + err.message);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  window.addEventListener("resize", drawCharts);
  poll();
})();
