// The agents' live stream: a websocket opened with a one-minute ticket, resumed after a
// drop with `since=<last seq>`; frames whose seq was already seen are dropped.

const HEARTBEAT_MS = 30_000;
const MAX_BACKOFF_MS = 15_000;

export class LiveStream {
  /**
   * @param {object} options
   * @param {object} options.api      the REST client (for tickets)
   * @param {number} options.accountId
   * @param {number|null} options.since  the seq the lists were loaded at (null: live only)
   * @param {(frame) => void} options.onFrame
   * @param {(status) => void} options.onStatus   "connecting" | "online" | "reconnecting" | "offline"
   * @param {() => void} options.onResync         the log no longer reaches back to `since`
   */
  constructor({ api, accountId, since = null, onFrame, onStatus, onResync }) {
    Object.assign(this, { api, accountId, onFrame, onStatus, onResync });
    this.lastSeq = since;
    this.ws = null;
    this.stopped = true;
    this.attempt = 0;
    this.connections = 0;
    this.duplicatesDropped = 0;
    this.timer = null;
    this.heartbeat = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "bye");
    this.onStatus("offline");
  }

  send(action) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(action));
  }

  async connect() {
    if (this.stopped) return;
    this.onStatus(this.connections ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = (await this.api.post("/stream/tickets", {})).ticket;
    } catch (error) {
      if (error.status === 401 || error.status === 404) { this.stop(); return; }
      this.retry();
      return;
    }
    if (this.stopped) return;
    const query = new URLSearchParams({ ticket });
    if (this.lastSeq !== null && this.lastSeq !== undefined) query.set("since", String(this.lastSeq));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/accounts/${this.accountId}/stream?${query}`);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.connections += 1;
      this.onStatus("online");
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ action: "heartbeat", status: "online" }), HEARTBEAT_MS);
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.event === "resync.required") { this.onResync(); return; }
      if (frame.seq !== null && frame.seq !== undefined) {
        if (this.lastSeq !== null && this.lastSeq !== undefined && frame.seq <= this.lastSeq) {
          this.duplicatesDropped += 1;
          return;
        }
        this.lastSeq = frame.seq;
      }
      try { this.onFrame(frame); } catch (error) { console.error("applying a frame failed", frame, error); }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.heartbeat);
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.onStatus("reconnecting");
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  /** Drop the socket as a network failure would (used by tests and the "reconnect" path). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
  }
}
