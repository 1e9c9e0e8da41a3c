// meshnode live propagation view. Plain JavaScript, no build step.
//
// Talks to every node's JSON-RPC over WebSocket: `meshnode_nodeInfo` (peer id, head,
// mempool), `getpeerinfo` (the peer graph), and the `meshnode_subscribe("blockArrivals")`
// subscription (one record per block per node: firstSeenUs, firstFrom, publishedUs, …).
// The node list comes from `nodes.json` (served by `meshnode devnet --dashboard` and
// `meshnode dashboard`) or from `?rpc=URL,URL,…`; without either, a form asks for URLs.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const KEEP_BLOCKS = 200;
  const state = {
    nodes: [],
    byPeer: new Map(),
    edges: new Map(),
    blocks: new Map(),
    current: null,
    redraw: false,
  };

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function setStatus(text, error) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.classList.toggle("error", !!error);
  }

  // One JSON-RPC 2.0 connection over WebSocket: calls by id, subscription notifications to
  // `onNotify`. Failures reject the call; nothing is thrown past the caller.
  class Rpc {
    constructor(url, onNotify, onClose) {
      this.url = url.replace(/^http/, "ws");
      this.next = 1;
      this.pending = new Map();
      this.ws = new WebSocket(this.url);
      this.ready = new Promise((resolve, reject) => {
        this.ws.onopen = () => resolve();
        this.ws.onerror = () => reject(new Error("cannot connect to " + this.url));
      });
      this.ws.onmessage = (ev) => {
        let m;
        try {
          m = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (m.id !== undefined && this.pending.has(m.id)) {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.error) p.reject(new Error(m.error.message));
          else p.resolve(m.result);
        } else if (m.params && m.params.subscription !== undefined) {
          onNotify(m.params.result);
        }
      };
      this.ws.onclose = () => {
        for (const p of this.pending.values()) p.reject(new Error("connection closed"));
        this.pending.clear();
        onClose();
      };
    }

    call(method, params) {
      return new Promise((resolve, reject) => {
        if (this.ws.readyState !== WebSocket.OPEN) {
          reject(new Error("not connected"));
          return;
        }
        const id = this.next++;
        this.pending.set(id, { resolve, reject });
        this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params: params || [] }));
      });
    }
  }

  function layout() {
    const g = document.getElementById("graph");
    g.replaceChildren();
    svg("g", { id: "edges" }, g);
    const nodesLayer = svg("g", { id: "nodes-layer" }, g);
    const n = state.nodes.length;
    const r = n > 1 ? 270 : 0;
    const radius = Math.max(6, Math.min(18, 700 / Math.max(n, 1)));
    state.nodes.forEach((node, i) => {
      const a = (2 * Math.PI * i) / n - Math.PI / 2;
      node.x = 320 + r * Math.cos(a);
      node.y = 320 + r * Math.sin(a);
      node.g = svg("g", { class: "node", "data-node": node.name }, nodesLayer);
      node.circle = svg("circle", { cx: node.x, cy: node.y, r: radius }, node.g);
      const label = svg("text", { x: node.x, y: node.y + radius + 12 }, node.g);
      label.textContent = node.name;
      const title = svg("title", {}, node.g);
      title.textContent = node.name + " " + node.url;
    });
  }

  function markDown(node, why) {
    node.down = true;
    node.g.classList.add("down");
    setStatus(node.name + ": " + (why || "disconnected"), true);
    scheduleDraw();
  }

  async function connect(node) {
    node.rpc = new Rpc(node.url, (rec) => onArrival(node, rec), () => markDown(node));
    try {
      await node.rpc.ready;
      const info = await node.rpc.call("meshnode_nodeInfo");
      node.peerId = info.peerId;
      node.head = info.head.height;
      node.mempool = info.mempool.size;
      state.byPeer.set(node.peerId, node);
      await node.rpc.call("meshnode_subscribe", ["blockArrivals"]);
    } catch (e) {
      markDown(node, e.message);
    }
  }

  // The arrival time of a record on its node: first gossip delivery, or publication on the
  // producer, or validation (a block that came by sync).
  function arrivalUs(rec) {
    if (rec.firstSeenUs != null) return rec.firstSeenUs;
    if (rec.publishedUs != null) return rec.publishedUs;
    return rec.validatedUs;
  }

  function onArrival(node, rec) {
    const t = arrivalUs(rec);
    if (t == null || !rec.hash) return;
    let b = state.blocks.get(rec.hash);
    if (!b) {
      b = { hash: rec.hash, height: rec.height, arrivals: new Map(), publishedUs: null };
      state.blocks.set(rec.hash, b);
      while (state.blocks.size > KEEP_BLOCKS) {
        state.blocks.delete(state.blocks.keys().next().value);
      }
    }
    if (rec.publishedUs != null) b.publishedUs = rec.publishedUs;
    b.arrivals.set(node.name, { t, from: rec.firstFrom, node });
    node.seen = (node.seen || 0) + 1;
    node.head = Math.max(node.head || 0, rec.height || 0);
    if (!state.current || b.height > state.current.height || b === state.current) {
      state.current = b;
    }
    scheduleDraw();
  }

  // The time a block started from: its publication, else its earliest arrival.
  function origin(b) {
    if (b.publishedUs != null) return b.publishedUs;
    let min = Infinity;
    for (const a of b.arrivals.values()) min = Math.min(min, a.t);
    return min;
  }

  function edgeKey(a, b) {
    return a < b ? a + "|" + b : b + "|" + a;
  }

  async function poll() {
    await Promise.all(
      state.nodes
        .filter((n) => !n.down && n.peerId)
        .map(async (n) => {
          try {
            const [info, peers] = await Promise.all([
              n.rpc.call("meshnode_nodeInfo"),
              n.rpc.call("getpeerinfo"),
            ]);
            n.head = info.head.height;
            n.mempool = info.mempool.size;
            n.peerIds = peers.map((p) => p.peer_id);
          } catch (_) {
            // The close handler marks the node down; a failed poll is retried next time.
          }
        }),
    );
    const seen = new Set();
    for (const n of state.nodes) {
      for (const p of n.peerIds || []) {
        const m = state.byPeer.get(p);
        if (m) seen.add(edgeKey(n.name, m.name));
      }
    }
    const layer = document.getElementById("edges");
    for (const [k, line] of state.edges) {
      if (!seen.has(k)) {
        line.remove();
        state.edges.delete(k);
      }
    }
    const byName = new Map(state.nodes.map((n) => [n.name, n]));
    for (const k of seen) {
      if (state.edges.has(k)) continue;
      const [a, b] = k.split("|").map((x) => byName.get(x));
      state.edges.set(
        k,
        svg("line", { class: "edge", x1: a.x, y1: a.y, x2: b.x, y2: b.y, "data-edge": k }, layer),
      );
    }
    const up = state.nodes.filter((n) => !n.down).length;
    if (up === state.nodes.length) {
      setStatus(up + " nodes connected, " + state.edges.size + " links");
    }
    scheduleDraw();
  }

  function scheduleDraw() {
    if (state.redraw) return;
    state.redraw = true;
    requestAnimationFrame(() => {
      state.redraw = false;
      drawWave();
      drawCdf();
      drawTable();
    });
  }

  function drawWave() {
    const b = state.current;
    if (!b) return;
    const t0 = origin(b);
    const order = [...b.arrivals.values()].sort((x, y) => x.t - y.t);
    const rank = new Map(order.map((a, i) => [a.node.name, i]));
    const last = Math.max(order.length - 1, 1);
    for (const n of state.nodes) {
      const r = rank.get(n.name);
      if (r === undefined) {
        n.g.classList.remove("lit");
        n.g.removeAttribute("data-wave-rank");
        n.circle.style.fill = "";
      } else {
        n.g.classList.add("lit");
        n.g.setAttribute("data-wave-rank", String(r));
        n.circle.style.fill = "hsl(" + Math.round(120 - (120 * r) / last) + ", 70%, 48%)";
      }
    }
    for (const line of state.edges.values()) line.classList.remove("delivery");
    for (const a of order) {
      const from = a.from && state.byPeer.get(a.from);
      if (!from) continue;
      const line = state.edges.get(edgeKey(from.name, a.node.name));
      if (line) line.classList.add("delivery");
    }
    const wave = document.getElementById("wave");
    wave.dataset.hash = b.hash;
    wave.dataset.height = String(b.height);
    wave.dataset.reached = String(order.length);
    wave.dataset.total = String(state.nodes.length);
    const spread = order.length ? (order[order.length - 1].t - t0) / 1000 : 0;
    wave.textContent =
      "block #" + b.height + " " + b.hash.slice(0, 12) + "…: reached " + order.length + " of " +
      state.nodes.length + " nodes, the last " + spread.toFixed(1) + " ms after it was published";
    const ol = document.getElementById("order");
    ol.replaceChildren();
    for (const a of order) {
      const li = document.createElement("li");
      li.textContent = a.node.name + " +" + ((a.t - t0) / 1000).toFixed(1) + " ms";
      ol.appendChild(li);
    }
  }

  function drawCdf() {
    const delays = [];
    for (const b of state.blocks.values()) {
      const t0 = origin(b);
      for (const a of b.arrivals.values()) {
        if (a.t > t0) delays.push((a.t - t0) / 1000);
      }
    }
    delays.sort((x, y) => x - y);
    const c = document.getElementById("cdf");
    c.replaceChildren();
    const [W, H, L, B] = [420, 240, 40, 24];
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - 10, y2: H - B }, c);
    svg("line", { class: "axis", x1: L, y1: 10, x2: L, y2: H - B }, c);
    const note = document.getElementById("cdf-note");
    if (!delays.length) {
      note.textContent = "(no arrivals yet)";
      return;
    }
    const max = delays[Math.min(delays.length - 1, Math.floor(delays.length * 0.99))] || 1;
    const x = (d) => L + ((W - 10 - L) * Math.min(d, max)) / max;
    const y = (f) => H - B - (H - B - 10) * f;
    let path = "M" + x(0) + "," + y(0);
    delays.forEach((d, i) => {
      path += " L" + x(d).toFixed(1) + "," + y((i + 1) / delays.length).toFixed(1);
    });
    svg("path", { class: "cdf-line", d: path }, c);
    for (const f of [0, 0.5, 1]) {
      const t = svg("text", { class: "tick", x: x(max * f), y: H - 8, "text-anchor": "middle" }, c);
      t.textContent = (max * f).toFixed(0) + " ms";
      const u = svg("text", { class: "tick", x: L - 4, y: y(f) + 3, "text-anchor": "end" }, c);
      u.textContent = f.toFixed(1);
    }
    const p50 = delays[Math.floor(delays.length * 0.5)];
    const p95 = delays[Math.min(delays.length - 1, Math.floor(delays.length * 0.95))];
    note.textContent =
      "(" + delays.length + " arrivals over " + state.blocks.size + " blocks; p50 " +
      p50.toFixed(1) + " ms, p95 " + p95.toFixed(1) + " ms)";
  }

  function drawTable() {
    const body = document.querySelector("#nodes tbody");
    body.replaceChildren();
    for (const n of state.nodes) {
      const tr = document.createElement("tr");
      tr.dataset.node = n.name;
      for (const v of [
        n.name + (n.down ? " (down)" : ""),
        n.head ?? "",
        (n.peerIds || []).length,
        n.mempool ?? "",
        n.seen || 0,
      ]) {
        const td = document.createElement("td");
        td.textContent = String(v);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  async function nodeList() {
    const q = new URLSearchParams(location.search).get("rpc");
    if (q) {
      return q
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map((url, i) => ({ name: "node" + i, url }));
    }
    try {
      const r = await fetch("nodes.json", { cache: "no-store" });
      if (r.ok) return (await r.json()).map((n) => ({ name: n.name, url: n.rpc_url }));
    } catch (_) {
      // Opened without a server that lists nodes: ask.
    }
    return [];
  }

  async function main() {
    const list = await nodeList();
    if (!list.length) {
      const form = document.getElementById("attach");
      form.hidden = false;
      setStatus("no nodes given");
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const urls = document.getElementById("urls").value.split(/\s+/).filter(Boolean);
        location.search = "?rpc=" + encodeURIComponent(urls.join(","));
      });
      return;
    }
    document.getElementById("view").hidden = false;
    state.nodes = list.map((n) => ({ name: n.name, url: n.url }));
    layout();
    setStatus("connecting to " + state.nodes.length + " nodes…");
    await Promise.all(state.nodes.map(connect));
    await poll();
    setInterval(poll, 2000);
  }

  main().catch((e) => setStatus(String(e), true));
})();
