// Sessions: their status (kept current by `session.status` events), create and delete for
// tokens that may manage them, and the QR code to scan while a session waits for one.

import { api, describe, seg, Stale } from './api.js';
import { badge, confirmButton, field, h, notice, replace, time } from './dom.js';

const STATUS_KIND = { WORKING: 'ok', FAILED: 'bad', STOPPED: 'off', STARTING: 'wait', SCAN_QR: 'wait' };

export function mount(container, route, ctx) {
  const status = h('div', { class: 'status-line' });
  const list = h('div', { class: 'cards', id: 'session-list' }, h('p', { class: 'loading' }, 'Loading sessions…'));
  let alive = true;

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
        field('Connected as', session.me ? session.me.id : '—'),
        field('Updated', time(session.updatedAt))),
      session.status === 'SCAN_QR' ? qr(session) : null,
      ctx.can('manage') ? h('div', { class: 'actions' },
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
    unsubscribe();
  };
}

/**
 * Where the QR code to scan goes while a session is `SCAN_QR`. Herald does not serve the
 * code yet, so this says what to do instead of showing a picture.
 */
export function qr(session) {
  return h('div', { class: 'qr', 'data-qr': session.id },
    h('div', { class: 'qr-box', 'aria-hidden': 'true' }),
    h('p', null, 'This session waits for its QR code to be scanned in the phone’s app. ',
      'The code will show here once Herald’s engine can serve it.'));
}
