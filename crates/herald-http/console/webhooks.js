// Webhooks: the list, create and edit, enable/disable, delete, and a test ping that opens
// the resulting delivery's attempt timeline.
//
// Each webhook is drawn by `card`, whose parts (`facts`, `actions`) are where later fields
// go: a signing scheme, health, or a secret rotation that shows the new secret once.

import { api, describe, seg, Stale } from './api.js';
import { badge, confirmButton, field, h, notice, replace, time } from './dom.js';

const POLICIES = ['exponential', 'linear', 'constant'];
let firstListShown = false;

export function mount(container, route, ctx) {
  const [id, action] = route.segments;
  if (id === 'new') return form(container, null, ctx);
  if (id && action === 'edit') return form(container, id, ctx);
  return list(container, ctx);
}

function list(container, ctx) {
  const body = h('div', { class: 'cards', id: 'webhook-list' }, h('p', { class: 'loading' }, 'Loading webhooks…'));
  const status = h('div', { class: 'status-line' });
  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Webhooks'),
      ctx.can('manage')
        ? h('a', { class: 'button', href: ctx.link('webhooks', ['new']), id: 'new-webhook' }, 'New webhook')
        : null,
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh')),
    status,
    body);

  async function load() {
    try {
      const page = await api.get('webhooks');
      replace(body, page.data.length === 0
        ? notice('info', 'No webhooks yet.')
        : page.data.map((webhook) => card(webhook, ctx, { status, reload: load })));
      if (!firstListShown) {
        firstListShown = true;
        performance.mark('herald:webhooks-shown');
      }
    } catch (error) {
      if (!(error instanceof Stale)) replace(body, notice('error', describe(error)));
    }
  }
  load();
}

/** One webhook as a card: what it is, and the buttons the token may use. */
export function card(webhook, ctx, { status, reload }) {
  return h('article', { class: 'card webhook', 'data-id': webhook.id },
    h('div', { class: 'card-head' },
      h('span', { class: 'url' }, webhook.url),
      webhook.active ? badge('active', 'ok') : badge('disabled', 'off')),
    h('dl', { class: 'facts' }, facts(webhook)),
    h('div', { class: 'actions' }, actions(webhook, ctx, { status, reload })));
}

function facts(webhook) {
  const headers = Object.entries(webhook.customHeaders || {});
  const retry = webhook.retryPolicy || {};
  return [
    field('Id', h('code', null, webhook.id)),
    field('Events', webhook.events.join(', ')),
    field('Session', webhook.sessionId || 'all sessions'),
    field('Retries', retry.attempts === 1
      ? 'none (1 attempt)'
      : `${retry.attempts} attempts, ${retry.policy} from ${retry.delaySeconds} s`),
    headers.length ? field('Headers', headers.map(([k, v]) => h('div', null, `${k}: ${v}`))) : null,
    field('Updated', time(webhook.updatedAt)),
  ];
}

function actions(webhook, ctx, { status, reload }) {
  if (!ctx.can('manage')) return [];
  const path = `webhooks/${seg(webhook.id)}`;
  const run = async (what, call) => {
    replace(status, notice('info', `${what}…`));
    try {
      await call();
      replace(status);
      reload();
    } catch (error) {
      if (!(error instanceof Stale)) replace(status, notice('error', `${what}: ${describe(error)}`));
    }
  };
  return [
    h('a', { class: 'button secondary', href: ctx.link('deliveries', [], { webhook: webhook.id }) }, 'Deliveries'),
    h('button', {
      type: 'button', 'data-action': 'test',
      onclick: async () => {
        replace(status, notice('info', 'Sending a test event…'));
        try {
          const sent = await api.post(`${path}/test`);
          ctx.go(ctx.link('deliveries', [webhook.id, sent.deliveryId]));
        } catch (error) {
          if (!(error instanceof Stale)) replace(status, notice('error', `Test: ${describe(error)}`));
        }
      },
    }, 'Test'),
    h('a', { class: 'button secondary', href: ctx.link('webhooks', [webhook.id, 'edit']), 'data-action': 'edit' }, 'Edit'),
    h('button', {
      type: 'button', class: 'secondary', 'data-action': 'toggle',
      onclick: () => run(webhook.active ? 'Disabling' : 'Enabling',
        () => api.patch(path, { active: !webhook.active })),
    }, webhook.active ? 'Disable' : 'Enable'),
    confirmButton('Delete', 'Really delete?', () => run('Deleting', () => api.del(path)),
      { 'data-action': 'delete' }),
  ];
}

/** `Name: value` lines ⇄ a header object. */
function headerLines(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}

function parseHeaderLines(textValue) {
  const headers = {};
  for (const line of textValue.split('\n')) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon < 1) throw new Error(`"${line.trim()}" is not a "Name: value" header line`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The create (id null) or edit form. */
function form(container, id, ctx) {
  const status = h('div', { class: 'status-line' });
  replace(container, h('p', { class: 'loading' }, 'Loading…'));
  let alive = true;
  (async () => {
    try {
      const [webhook, types, sessionList] = await Promise.all([
        id ? api.get(`webhooks/${seg(id)}`) : null,
        api.get('event-types'),
        ctx.can('read') ? api.get('sessions') : null,
      ]);
      if (alive) draw(webhook, types.data, sessionList && sessionList.data);
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(container, notice('error', describe(error)));
    }
  })();

  function draw(webhook, types, sessions) {
    const current = webhook || {
      url: '', events: ['*'], sessionId: null, customHeaders: {}, active: true,
      retryPolicy: { policy: 'exponential', delaySeconds: 2, attempts: 15 },
    };
    const url = h('input', { id: 'wh-url', type: 'url', required: true, value: current.url, placeholder: 'https://example.com/webhooks/herald' });
    const all = h('input', { type: 'checkbox', id: 'wh-all', checked: current.events.includes('*') });
    const boxes = types
      .filter((t) => t.name !== 'webhook.test')
      .map((t) => {
        const box = h('input', { type: 'checkbox', value: t.name, checked: current.events.includes(t.name) });
        return h('label', { class: 'check', title: t.description }, box, t.name);
      });
    const session = sessions
      ? h('select', { id: 'wh-session' },
        h('option', { value: '' }, 'All sessions'),
        sessions.map((s) => h('option', { value: s.id, selected: s.id === current.sessionId }, `${s.name} (${s.id})`)))
      : h('input', { id: 'wh-session', value: current.sessionId || '', placeholder: 'all sessions' });
    const secret = h('input', { id: 'wh-secret', type: 'password', autocomplete: 'new-password', placeholder: id ? 'unchanged' : 'optional, 16 to 256 characters' });
    const removeSecret = id ? h('input', { type: 'checkbox', id: 'wh-remove-secret' }) : null;
    const headers = h('textarea', { id: 'wh-headers', rows: 3, placeholder: 'X-Tenant: acme', value: headerLines(current.customHeaders) });
    const policy = h('select', { id: 'wh-policy' },
      POLICIES.map((p) => h('option', { value: p, selected: p === current.retryPolicy.policy }, p)));
    const delay = h('input', { id: 'wh-delay', type: 'number', min: 1, max: 3600, value: current.retryPolicy.delaySeconds });
    const attempts = h('input', { id: 'wh-attempts', type: 'number', min: 1, max: 30, value: current.retryPolicy.attempts });
    const active = h('input', { type: 'checkbox', id: 'wh-active', checked: current.active });

    const submit = async (event) => {
      event.preventDefault();
      let body;
      try {
        const chosen = boxes.map((l) => l.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
        body = {
          url: url.value.trim(),
          events: all.checked || chosen.length === 0 ? ['*'] : chosen,
          sessionId: session.value.trim() || null,
          customHeaders: parseHeaderLines(headers.value),
          retryPolicy: { policy: policy.value, delaySeconds: Number(delay.value), attempts: Number(attempts.value) },
          active: active.checked,
        };
      } catch (error) {
        replace(status, notice('error', error.message));
        return;
      }
      if (secret.value) body.secret = secret.value;
      else if (removeSecret && removeSecret.checked) body.secret = null;
      replace(status, notice('info', 'Saving…'));
      try {
        if (id) await api.patch(`webhooks/${seg(id)}`, body);
        else await api.post('webhooks', body);
        ctx.go(ctx.link('webhooks'));
      } catch (error) {
        if (!(error instanceof Stale)) replace(status, notice('error', describe(error)));
      }
    };

    replace(container,
      h('form', { class: 'panel', id: 'webhook-form', method: 'post', onsubmit: submit },
        h('h2', null, id ? 'Edit webhook' : 'New webhook'),
        h('label', { for: 'wh-url' }, 'URL'), url,
        h('fieldset', null, h('legend', null, 'Events'),
          h('label', { class: 'check' }, all, 'All events (*)'),
          h('div', { class: 'checks' }, boxes)),
        h('label', { for: 'wh-session' }, 'Session'), session,
        h('label', { for: 'wh-secret' }, id ? 'New signing secret' : 'Signing secret'), secret,
        removeSecret ? h('label', { class: 'check' }, removeSecret, 'Remove the secret (send unsigned)') : null,
        h('label', { for: 'wh-headers' }, 'Custom headers (one "Name: value" per line)'), headers,
        h('fieldset', { class: 'row' }, h('legend', null, 'Retries'),
          h('label', null, 'Policy', policy),
          h('label', null, 'First delay (s)', delay),
          h('label', null, 'Attempts', attempts)),
        h('label', { class: 'check' }, active, 'Active'),
        status,
        h('div', { class: 'actions' },
          h('button', { type: 'submit', id: 'wh-save' }, id ? 'Save' : 'Create'),
          h('a', { class: 'button secondary', href: ctx.link('webhooks') }, 'Cancel'))));
    url.focus();
  }
  return () => {
    alive = false;
  };
}
