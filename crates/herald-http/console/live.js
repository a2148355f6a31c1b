// The organization's events, live over Herald's WebSocket, for every view that wants them.
//
// The token goes in the subprotocol `herald.bearer.<token>` (offered together with `herald`,
// which the server selects), so it never appears in a URL. Each event's id is remembered (in
// sessionStorage, per organization); a lost socket reconnects after a growing pause with
// `since=<that id>`, so Herald replays what was missed before going live again, and the status
// line says so while it happens. A close for expired or revoked credentials (1008) signs the
// user out instead of reconnecting; repeated failures to connect check the token and the
// resume point once, so a refused token or a resume point past retention never loops.

import { api, ApiError, Stale, currentEpoch, seg, socketUrl, token } from './api.js';

/** How many recent events are kept in memory for the views. */
export const KEEP = 200;

export class Live {
  /** `organizationId` keys the resume point; `refused(message)` signs the user out. */
  constructor(organizationId, refused) {
    this.key = `herald.lastEventId.${organizationId}`;
    this.refused = refused;
    this.epoch = currentEpoch();
    this.socket = null;
    this.timer = null;
    this.failures = 0;
    this.stopped = false;
    this.recent = [];
    this.listeners = new Set();
    this.statusListeners = new Set();
    this.status = { state: 'connecting', message: 'Connecting…' };
  }

  /** The id of the last event seen, from which a new socket resumes. */
  get lastId() {
    return sessionStorage.getItem(this.key);
  }

  /** Calls `listener(event)` for each event from now on; returns the unsubscribe function. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener(status)` now and on every change; returns the unsubscribe function. */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  setStatus(state, message) {
    this.status = { state, message };
    for (const listener of this.statusListeners) listener(this.status);
  }

  start() {
    this.connect();
  }

  /** Closes the socket for good (sign-out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, 'signed out');
    this.socket = null;
    this.listeners.clear();
    this.statusListeners.clear();
  }

  connect() {
    if (this.stopped || this.epoch !== currentEpoch()) return;
    const bearer = token();
    if (!bearer) return;
    const since = this.lastId;
    const url = socketUrl('events/ws');
    if (since) url.searchParams.set('since', since);
    let socket;
    try {
      socket = new WebSocket(url, ['herald', `herald.bearer.${bearer}`]);
    } catch (error) {
      this.setStatus('offline', `Live events unavailable: ${error.message}`);
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return;
      this.failures = 0;
      this.setStatus('live', since ? `Live (resumed after ${since})` : 'Live');
    });
    socket.addEventListener('message', (message) => {
      if (socket !== this.socket) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!event || typeof event.id !== 'string') return;
      sessionStorage.setItem(this.key, event.id);
      this.recent.unshift(event);
      if (this.recent.length > KEEP) this.recent.length = KEEP;
      for (const listener of this.listeners) listener(event);
    });
    socket.addEventListener('close', (close) => {
      if (socket !== this.socket || this.stopped) return;
      this.socket = null;
      if (close.code === 1008) {
        this.refused(close.reason || 'the token expired or was revoked');
        return;
      }
      this.failures += 1;
      this.retryLater(close);
    });
  }

  async retryLater(close) {
    // After two failed attempts in a row, find out whether the token or the resume point is
    // the problem rather than trying the same thing forever.
    if (this.failures >= 2) {
      try {
        await api.get('me');
        const since = this.lastId;
        if (since) await api.get(`events?limit=1&since=${seg(since)}`);
      } catch (error) {
        if (error instanceof Stale) return; // refused: already signed out
        if (error instanceof ApiError && error.status === 404) {
          sessionStorage.removeItem(this.key);
          this.setStatus(
            'reconnecting',
            'The resume point is no longer in the event log; reconnecting live from now (some events may be missing).',
          );
        }
      }
    }
    if (this.stopped || this.epoch !== currentEpoch()) return;
    const delay = Math.min(30, 2 ** Math.min(this.failures - 1, 5));
    const since = this.lastId;
    const why = close.code === 1013 ? 'fell too far behind' : `connection lost (code ${close.code})`;
    this.setStatus(
      'reconnecting',
      `Live events: ${why}; reconnecting in ${delay} s${since ? `, resuming after ${since}` : ''}…`,
    );
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }
}
