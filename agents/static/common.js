/* livechat agent pages: small shared helpers (DOM building, time formats, a reconnecting
 * WebSocket), an ES module imported by the dashboard (agent.js, tickets.js, desk/*.js) and the
 * supervisor view (supervisor.js). Text from visitors and agents only ever reaches the page
 * through textContent / text nodes, never as HTML. */

/** createElement with properties; children are nodes or plain text (made text nodes). */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** 75 -> "1m 15s"; 600 -> "10m"; 4000 -> "1h 06m". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? m + "m " + String(s % 60).padStart(2, "0") + "s" : m + "m";
  return m % 60 ? Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m" : Math.floor(m / 60) + "h";
}

export function clock(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export const now = () => Date.now() / 1000;

export function randomId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const wsUrl = (path) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;

/** The connection state line in the top bar. */
export function showConn(state, detail) {
  const node = document.getElementById("conn");
  if (!node) return;
  node.className = "conn conn-" + state;
  node.textContent = detail || { open: "Live", wait: "Connecting…", lost: "Connection lost" }[state] || state;
}

/**
 * A WebSocket that reconnects with exponential back-off (0.3 s doubling to 15 s, with
 * jitter) after network loss or a hub restart. A 1008 close (policy: no or wrong
 * session) is handed to onPolicy instead of retried blindly.
 */
export class Socket {
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.delay = 300;
    this.ws = null;
    this.timer = null;
    window.addEventListener("online", () => this.retryNow());
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    showConn("wait");
    let ws;
    try {
      ws = new WebSocket(wsUrl(this.path));
    } catch (err) {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      showConn("open");
      if (this.handlers.open) this.handlers.open();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      this.delay = 300;
      this.handlers.frame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.handlers.closed) this.handlers.closed(event);
      if (event.code === 1008 && this.handlers.policy) {
        this.handlers.policy(event, () => this.schedule());
        return;
      }
      this.schedule();
    });
  }

  schedule() {
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, 15000);
    showConn("lost", "Reconnecting in " + Math.max(1, Math.round(wait / 1000)) + "s…");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  retryNow() {
    if (!this.ws) {
      this.delay = 300;
      this.connect();
    }
  }

  /** Drop the connection as a network loss would (for trying the reconnect path). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the page");
  }

  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}

/** After a 1008 close: back to the login page if the session is gone, else retry later. */
export async function checkSession(retry) {
  try {
    const response = await fetch("/api/canned", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      location.assign("/agent/login");
      return;
    }
  } catch (err) {
    /* network down: just retry */
  }
  retry();
}

