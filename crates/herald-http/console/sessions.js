// Sessions: their status (kept current by `session.status` events), create, restart and
// delete for tokens that may manage them, and the QR code to scan while a session waits for
// one — drawn in the page from the text Herald's engine returns, by the vendored encoder in
// `vendor/qrcode.js` (no network, no image from anywhere else).

import { api, ApiError, describe, seg, Stale } from './api.js';
import { badge, confirmButton, field, h, notice, replace, time } from './dom.js';
import { QRCode, QRErrorCorrectLevel } from './qrcode.js';

const SVG = 'http://www.w3.org/2000/svg';
// WhatsApp's QR code changes every 20 s or so; fetch it again well before.
const QR_REFRESH_MS = 15000;

const STATUS_KIND = { WORKING: 'ok', FAILED: 'bad', STOPPED: 'off', STARTING: 'wait', SCAN_QR: 'wait' };

export function mount(container, route, ctx) {
  const status = h('div', { class: 'status-line' });
  const list = h('div', { class: 'cards', id: 'session-list' }, h('p', { class: 'loading' }, 'Loading sessions…'));
  let alive = true;
  // The QR refresh timers of the cards on screen; cleared when the cards are redrawn.
  const timers = new Set();
  const clearTimers = () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };

  const name = h('input', { id: 'session-name', required: true, placeholder: 'sales', maxlength: 200 });
  const create = ctx.can('manage')
    ? h('form', {
      class: 'row panel', id: 'new-session', method: 'post',
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api.post('sessions', { name: name.value.trim() });
          name.value = '';
          replace(status);
          load();
        } catch (error) {
          if (!(error instanceof Stale)) replace(status, notice('error', describe(error)));
        }
      },
    }, h('label', { for: 'session-name' }, 'New session '), name, h('button', { type: 'submit' }, 'Create'))
    : null;

  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Sessions'),
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh')),
    create,
    status,
    list);

  async function load() {
    try {
      const page = await api.get('sessions');
      if (!alive) return;
      clearTimers();
      replace(list, page.data.length
        ? page.data.map((s) => card(s))
        : notice('info', 'No sessions yet.'));
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(list, notice('error', describe(error)));
    }
  }

  function card(session) {
    return h('article', { class: 'card session', 'data-id': session.id, 'data-status': session.status },
      h('div', { class: 'card-head' },
        h('strong', null, session.name),
        badge(session.status, STATUS_KIND[session.status])),
      h('dl', { class: 'facts' },
        field('Id', h('code', null, session.id)),
        field('Engine session', h('code', null, session.engineSession || session.id)),
        field('Connected as', session.me ? session.me.id : '—'),
        field('Updated', time(session.updatedAt))),
      session.status === 'SCAN_QR' ? qr(session, timers, () => alive) : null,
      ctx.can('manage') ? h('div', { class: 'actions' },
        session.status === 'FAILED' || session.status === 'STOPPED' ? h('button', {
          type: 'button', 'data-action': 'restart',
          onclick: async () => {
            replace(status, notice('info', `Restarting ${session.name}…`));
            try {
              await api.post(`sessions/${seg(session.id)}/restart`);
              replace(status);
              load();
            } catch (error) {
              if (!(error instanceof Stale)) replace(status, notice('error', `Restart: ${describe(error)}`));
            }
          },
        }, 'Restart') : null,
        confirmButton('Delete', 'Really delete?', async () => {
          try {
            await api.del(`sessions/${seg(session.id)}`);
            load();
          } catch (error) {
            if (!(error instanceof Stale)) replace(status, notice('error', describe(error)));
          }
        }, { 'data-action': 'delete' })) : null);
  }

  load();
  const unsubscribe = ctx.live
    ? ctx.live.subscribe((event) => {
      if (event.event === 'session.status') load();
    })
    : () => {};
  return () => {
    alive = false;
    clearTimers();
    unsubscribe();
  };
}

/** The QR code of `value` as an SVG element (one path of dark modules, a 4-module margin). */
export function qrSvg(value) {
  const code = new QRCode(-1, QRErrorCorrectLevel.L);
  code.addData(value);
  code.make();
  const n = code.getModuleCount();
  let d = '';
  for (let row = 0; row < n; row += 1) {
    for (let col = 0; col < n; col += 1) {
      if (code.isDark(row, col)) d += `M${col + 4},${row + 4}h1v1h-1z`;
    }
  }
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${n + 8} ${n + 8}`);
  svg.setAttribute('class', 'qr-code');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code to scan with the phone');
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.dataset.modules = String(n);
  const back = document.createElementNS(SVG, 'rect');
  back.setAttribute('width', String(n + 8));
  back.setAttribute('height', String(n + 8));
  back.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(back, path);
  return svg;
}

/**
 * The QR code to scan while a session is `SCAN_QR`: fetched from Herald, drawn as an SVG, and
 * fetched again every QR_REFRESH_MS while the card is on screen (the engine's code changes).
 */
export function qr(session, timers, alive) {
  const picture = h('div', { class: 'qr-picture' }, h('p', { class: 'loading' }, 'Fetching the QR code…'));
  const raw = h('pre', { class: 'qr-text' });
  const box = h('div', { class: 'qr', 'data-qr': session.id },
    picture,
    h('div', null,
      h('p', null, 'Scan this code in the phone’s WhatsApp app (Linked devices → Link a device). It is fetched again every 15 seconds, as the engine renews it.'),
      h('details', null, h('summary', null, 'The code as text'), raw)));
  async function load() {
    try {
      const answer = await api.get(`sessions/${seg(session.id)}/qr`);
      if (!alive()) return;
      raw.textContent = answer.value;
      box.dataset.value = answer.value;
      try {
        replace(picture, qrSvg(answer.value));
      } catch (error) {
        replace(picture, notice('error', `The code is too long to draw (${error.message}); use the text below.`));
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (box.isConnected) load();
      }, QR_REFRESH_MS);
      timers.add(timer);
    } catch (error) {
      if (!alive() || error instanceof Stale) return;
      // 409: the session left SCAN_QR meanwhile, or its engine never uses a QR code.
      replace(picture, error instanceof ApiError && error.status === 409
        ? notice('info', `No QR code to show: ${describe(error)}.`)
        : notice('error', describe(error)));
    }
  }
  load();
  return box;
}
