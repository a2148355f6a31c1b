// Webhooks: the list (with each webhook's signing scheme, health, rate limit and delivery
// stats), create and edit, enable/disable, delete, a test ping that opens the resulting
// delivery's attempt timeline, and secret rotation.
//
// A secret Herald generates (at create, or at a rotation) is shown exactly once, by
// `secretOnce`, from memory: it is never stored by the console, so a reload or another visit
// cannot show it again — as Herald itself never shows it again.

import { api, describe, seg, Stale } from './api.js';
import { badge, confirmButton, field, h, notice, replace, time } from './dom.js';

const POLICIES = ['exponential', 'linear', 'constant'];
const SIGNING = {
  waha: 'WAHA (HMAC-SHA512 in X-Webhook-Hmac)',
  standard: 'Standard Webhooks (webhook-signature)',
};
const DISABLED_BECAUSE = {
  gone: 'its receiver answered 410 Gone',
  failing: 'it kept failing without a success',
  manual: 'a user disabled it',
};
const HEALTH_KIND = { healthy: 'ok', failing: 'bad', paused: 'wait' };
const WINDOWS = ['1h', '24h', '7d'];
let firstListShown = false;
// A secret from a create, waiting for the list to show it once (memory only, then dropped).
let pendingSecret = null;

export function mount(container, route, ctx) {
  const [id, action] = route.segments;
  if (id === 'new') return form(container, null, ctx);
  if (id && action === 'edit') return form(container, id, ctx);
  return list(container, ctx);
}

function list(container, ctx) {
  const body = h('div', { class: 'cards', id: 'webhook-list' }, h('p', { class: 'loading' }, 'Loading webhooks…'));
  const status = h('div', { class: 'status-line' });
  const reveal = h('div', { id: 'secret-reveal' });
  const reveal1 = pendingSecret;
  pendingSecret = null;
  if (reveal1) replace(reveal, secretOnce(reveal1.secret, reveal1.note, () => replace(reveal)));
  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Webhooks'),
      ctx.can('manage')
        ? h('a', { class: 'button', href: ctx.link('webhooks', ['new']), id: 'new-webhook' }, 'New webhook')
        : null,
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh')),
    reveal,
    status,
    body);
  const show = (secret, note) => replace(reveal, secretOnce(secret, note, () => replace(reveal)));

  async function load() {
    try {
      const page = await api.get('webhooks');
      replace(body, page.data.length === 0
        ? notice('info', 'No webhooks yet.')
        : page.data.map((webhook) => card(webhook, ctx, { status, reload: load, show })));
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

/**
 * A secret shown once: selectable, with a copy button, and a plain statement that Herald will
 * not show it again. `note` adds a line (e.g. until when the previous secret keeps signing).
 */
export function secretOnce(secret, note, dismiss) {
  const value = h('input', { id: 'secret-value', class: 'secret', readonly: true, value: secret, spellcheck: 'false', 'aria-label': 'The new signing secret' });
  const copied = h('span', { class: 'muted', role: 'status' });
  return h('div', { class: 'panel reveal', id: 'secret-once', role: 'alert' },
    h('strong', null, 'New signing secret — shown once'),
    h('p', null, 'Herald will never show this secret again. Copy it now into the receiver that checks the signatures.'),
    value,
    note ? h('p', { class: 'muted' }, note) : null,
    h('div', { class: 'actions' },
      h('button', {
        type: 'button', id: 'secret-copy',
        onclick: async () => {
          value.select();
          try {
            await navigator.clipboard.writeText(secret);
            copied.textContent = 'Copied.';
          } catch {
            copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
          }
        },
      }, 'Copy'),
      h('button', { type: 'button', class: 'secondary', id: 'secret-done', onclick: dismiss }, 'I have stored it'),
      copied));
}

/** The health badge: healthy, failing (with the streak) or paused (until when). */
export function healthBadge(health) {
  if (!health) return null;
  let label = health.state;
  if (health.state === 'failing') label = `failing · ${health.consecutiveFailures} in a row`;
  if (health.state === 'paused') {
    label = health.pausedUntil ? `paused until ${time(health.pausedUntil)}` : 'paused (probing)';
  }
  const b = badge(label, HEALTH_KIND[health.state]);
  b.dataset.health = health.state;
  b.classList.add('health');
  return b;
}

/** One webhook as a card: what it is, and the buttons the token may use. */
export function card(webhook, ctx, { status, reload, show }) {
  return h('article', { class: 'card webhook', 'data-id': webhook.id },
    h('div', { class: 'card-head' },
      h('span', { class: 'url' }, webhook.url),
      h('span', { class: 'badges' },
        webhook.active ? badge('active', 'ok') : badge(webhook.disabledReason ? `disabled: ${webhook.disabledReason}` : 'disabled', 'off'),
        healthBadge(webhook.health))),
    h('dl', { class: 'facts' }, facts(webhook)),
    ctx.can('read') ? stats(webhook) : null,
    h('div', { class: 'actions' }, actions(webhook, ctx, { status, reload, show })));
}

function facts(webhook) {
  const headers = Object.entries(webhook.customHeaders || {});
  const retry = webhook.retryPolicy || {};
  const health = webhook.health || {};
  return [
    field('Id', h('code', null, webhook.id)),
    field('Events', webhook.events.join(', ')),
    field('Session', webhook.sessionId || 'all sessions'),
    field('Signing', SIGNING[webhook.signing] || webhook.signing || '—'),
    webhook.previousSecretsValidUntil
      ? field('Previous secret', `still signs until ${time(webhook.previousSecretsValidUntil)}`)
      : null,
    field('Retries', retry.attempts === 1
      ? 'none (1 attempt)'
      : `${retry.attempts} attempts, ${retry.policy} from ${retry.delaySeconds} s`),
    field('Rate limit', webhook.rateLimit ? `${webhook.rateLimit} per second` : 'none'),
    !webhook.active && webhook.disabledReason
      ? field('Disabled', DISABLED_BECAUSE[webhook.disabledReason] || webhook.disabledReason)
      : null,
    health.consecutiveFailures
      ? field('Failing', `${health.consecutiveFailures} failed attempts since ${time(health.failingSince)}`)
      : null,
    field('Last success', time(health.lastSuccessAt)),
    headers.length ? field('Headers', headers.map(([k, v]) => h('div', null, `${k}: ${v}`))) : null,
    field('Updated', time(webhook.updatedAt)),
  ];
}

/** The webhook's delivery stats for a window, loaded when opened. */
function stats(webhook) {
  const windowSelect = h('select', { class: 'stats-window', 'aria-label': 'Window', onchange: () => load() },
    WINDOWS.map((w) => h('option', { value: w, selected: w === '24h' }, `last ${w}`)));
  const out = h('div', { class: 'stats-body' }, h('p', { class: 'loading' }, 'Loading…'));
  const percent = (rate) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`);
  async function load() {
    try {
      const s = await api.get(`webhooks/${seg(webhook.id)}/stats?window=${seg(windowSelect.value)}`);
      const codes = Object.entries(s.byStatusCode || {});
      replace(out, h('dl', { class: 'facts' },
        field('Attempts', `${s.attempts} (${s.succeeded} succeeded, ${s.failed} failed)`),
        field('Success rate', percent(s.successRate)),
        field('Latency', s.latencyMs ? `p50 ${s.latencyMs.p50} ms · p95 ${s.latencyMs.p95} ms · p99 ${s.latencyMs.p99} ms` : '—'),
        field('By status', codes.length ? codes.map(([code, n]) => `${code}: ${n}`).join(' · ') : '—'),
        field('Pending now', String(s.pending))));
    } catch (error) {
      if (!(error instanceof Stale)) replace(out, notice('error', describe(error)));
    }
  }
  const details = h('details', { class: 'stats', ontoggle: () => { if (details.open) load(); } },
    h('summary', null, 'Delivery stats'),
    h('label', { class: 'inline' }, 'Window ', windowSelect),
    out);
  return details;
}

/** The rotation form: how long the replaced secret keeps signing, then rotate. */
function rotateForm(webhook, { status, reload, show }) {
  const grace = h('input', { type: 'number', class: 'grace', min: 0, max: 604800, value: 86400, 'aria-label': 'Grace in seconds' });
  const form = h('form', {
    class: 'rotate row', method: 'post', hidden: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const body = grace.value === '' ? {} : { graceSeconds: Number(grace.value) };
      replace(status, notice('info', 'Rotating the secret…'));
      try {
        const rotated = await api.post(`webhooks/${seg(webhook.id)}/secret/rotate`, body);
        replace(status);
        show(rotated.secret, rotated.previousValidUntil > Date.now()
          ? `The previous secret keeps signing beside it until ${time(rotated.previousValidUntil)}.`
          : 'The previous secret no longer signs.');
        reload();
      } catch (error) {
        if (!(error instanceof Stale)) replace(status, notice('error', `Rotate: ${describe(error)}`));
      }
    },
  },
  h('label', null, 'Keep the old secret valid for (seconds)', grace),
  h('button', { type: 'submit', 'data-action': 'rotate-go' }, 'Rotate now'));
  return form;
}

function actions(webhook, ctx, { status, reload, show }) {
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
  const rotate = rotateForm(webhook, { status, reload, show });
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
    h('button', {
      type: 'button', class: 'secondary', 'data-action': 'rotate',
      onclick: () => {
        rotate.hidden = !rotate.hidden;
      },
    }, 'Rotate secret'),
    confirmButton('Delete', 'Really delete?', () => run('Deleting', () => api.del(path)),
      { 'data-action': 'delete' }),
    rotate,
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
      url: '', events: ['*'], sessionId: null, customHeaders: {}, active: true, signing: 'waha', rateLimit: null,
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
    const signing = h('select', { id: 'wh-signing' },
      Object.entries(SIGNING).map(([value, label]) => h('option', { value, selected: value === current.signing }, label)));
    const secret = h('input', { id: 'wh-secret', type: 'password', autocomplete: 'new-password', placeholder: id ? 'unchanged' : 'empty: Herald generates one and shows it once' });
    const rateLimit = h('input', { id: 'wh-rate', type: 'number', min: 1, max: 10000, value: current.rateLimit ?? '', placeholder: 'no limit' });
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
          rateLimit: rateLimit.value === '' ? null : Number(rateLimit.value),
        };
        if (!id || signing.value !== current.signing) body.signing = signing.value;
      } catch (error) {
        replace(status, notice('error', error.message));
        return;
      }
      if (secret.value) body.secret = secret.value;
      else if (removeSecret && removeSecret.checked) body.secret = null;
      replace(status, notice('info', 'Saving…'));
      try {
        if (id) {
          await api.patch(`webhooks/${seg(id)}`, body);
        } else {
          const created = await api.post('webhooks', body);
          if (created && created.secret) {
            pendingSecret = { secret: created.secret, note: `Generated for ${created.url}.` };
          }
        }
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
        h('label', { for: 'wh-signing' }, 'Signing scheme'), signing,
        h('label', { for: 'wh-secret' }, id ? 'New signing secret' : 'Signing secret'), secret,
        removeSecret ? h('label', { class: 'check' }, removeSecret, 'Remove the secret (send unsigned)') : null,
        h('label', { for: 'wh-headers' }, 'Custom headers (one "Name: value" per line)'), headers,
        h('fieldset', { class: 'row' }, h('legend', null, 'Retries'),
          h('label', null, 'Policy', policy),
          h('label', null, 'First delay (s)', delay),
          h('label', null, 'Attempts', attempts)),
        h('label', { for: 'wh-rate' }, 'Rate limit (deliveries per second; empty: none)'), rateLimit,
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
