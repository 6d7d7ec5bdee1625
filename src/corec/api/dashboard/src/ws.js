// Live updates over the API's WebSocket (`/ws?token=...`): subscribe to streams, hand
// each event to the page, and reconnect with backoff when the connection drops.

const MAX_BACKOFF_MS = 30_000;

export class LiveSocket {
  /**
   * @param {object} o
   * @param {() => string|null} o.getToken  current access token
   * @param {string[]} o.channels           streams to subscribe to
   * @param {(msg: object) => void} o.onEvent         each {"type":"event",...} message
   * @param {(state: string, detail?: string) => void} o.onStatus  connecting|live|offline|stopped
   * @param {(reconnect: boolean) => void} o.onLive    subscribed (reconnect: after a loss)
   * @param {() => Promise<boolean>} o.onAuthFailed    close 4401: refresh tokens, true to retry
   */
  constructor({ getToken, channels, onEvent, onStatus, onLive, onAuthFailed }) {
    this.getToken = getToken;
    this.channels = channels;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onLive = onLive;
    this.onAuthFailed = onAuthFailed;
    this.ws = null;
    this.stopped = true;
    this.attempts = 0;
    this.everLive = false;
    this.timer = null;
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const token = encodeURIComponent(this.getToken() || "");
    return `${scheme}//${window.location.host}/ws?token=${token}`;
  }

  start() {
    this.stopped = false;
    this.everLive = false;
    this.attempts = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      try {
        ws.close(1000, "bye");
      } catch {
        /* ignore */
      }
    }
    this.onStatus("stopped");
  }

  /** Reconnect now (e.g. after the tokens were refreshed following a 4401). */
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      try {
        this.ws.close(1000, "reconnect");
      } catch {
        /* ignore */
      }
      this.ws = null;
    }
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    if (!this.getToken()) {
      this.onStatus("offline", "signed out");
      return;
    }
    this.onStatus("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleReconnect(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: "subscribe", channels: this.channels }));
    };
    ws.onmessage = (message) => {
      let msg;
      try {
        msg = JSON.parse(message.data);
      } catch {
        return;
      }
      if (msg.type === "event") {
        try {
          this.onEvent(msg);
        } catch (err) {
          console.error("dashboard: event handler failed", err, msg);
        }
      } else if (msg.type === "subscribed") {
        const reconnect = this.everLive;
        this.everLive = true;
        this.attempts = 0;
        this.onStatus("live");
        this.onLive(reconnect);
      } else if (msg.type === "error") {
        console.warn("dashboard: WebSocket error message", msg);
      } else if (msg.type === "dropped") {
        // The server could not keep up with us; it closes the socket (4008). Start over.
        this.onStatus("offline", "dropped: " + (msg.reason || "too slow"));
        try {
          ws.close(1000, "dropped");
        } catch {
          /* ignore */
        }
      }
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = async (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (event.code === 4401) {
        this.onStatus("offline", "re-authenticating");
        const ok = await this.onAuthFailed();
        if (ok && !this.stopped) this.scheduleReconnect("signed in again");
        return;
      }
      this.scheduleReconnect(event.reason || `closed (${event.code})`);
    };
  }

  scheduleReconnect(reason, fixedDelay) {
    if (this.stopped) return;
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempts);
    const delay = fixedDelay ?? Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempts += 1;
    this.onStatus("offline", `${reason}; retrying in ${Math.ceil(delay / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
