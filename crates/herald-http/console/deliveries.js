// Deliveries: one webhook's delivery list with the status filter, paged by cursor (one page
// of at most PAGE rows in memory, however many deliveries exist); each delivery's attempt
// timeline with status codes, errors, durations and response bodies; retry one; recover the
// failed deliveries of a time window.
//
// The filters live in the URL hash (`#deliveries?webhook=…&status=…`); `listPath` turns them
// into the API query, so a new filter is one form control plus one line there.

import { api, describe, seg, Stale } from './api.js';
import { badge, field, h, localInput, notice, pretty, replace, time } from './dom.js';

const PAGE = 50;
const STATUSES = ['pending', 'succeeded', 'failed', 'cancelled'];
const STATUS_KIND = { succeeded: 'ok', failed: 'bad', cancelled: 'off', pending: 'wait' };

export function mount(container, route, ctx) {
  const [webhookId, deliveryId] = route.segments;
  if (webhookId && deliveryId) return detail(container, webhookId, deliveryId, ctx);
  return list(container, route.params, ctx);
}

/** The API path of one page of the list for `filters`, starting at `cursor`. */
export function listPath(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (filters.status) query.set('status', filters.status);
  if (cursor) query.set('cursor', cursor);
  return `webhooks/${seg(filters.webhook)}/deliveries?${query}`;
}

function list(container, params, ctx) {
  const filters = { webhook: params.get('webhook') || '', status: params.get('status') || '' };
  let alive = true;
  // The cursors of the pages before the current one, so "Newer" can go back.
  const cursors = [];
  let cursor = '';

  const webhookSelect = h('select', { id: 'dl-webhook', onchange: () => refilter() });
  const statusSelect = h('select', { id: 'dl-status', onchange: () => refilter() },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const rows = h('div', { class: 'table', id: 'delivery-list' });
  const pager = h('div', { class: 'pager' });
  const status = h('div', { class: 'status-line' });

  function refilter() {
    ctx.go(ctx.link('deliveries', [], { webhook: webhookSelect.value, status: statusSelect.value }));
  }

  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Deliveries'),
      h('label', null, 'Webhook ', webhookSelect),
      h('label', null, 'Status ', statusSelect),
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh')),
    status,
    filters.webhook && ctx.can('manage') ? recoverForm(filters.webhook, status) : null,
    rows,
    pager);

  (async () => {
    try {
      const hooks = await api.get('webhooks');
      if (!alive) return;
      if (!filters.webhook && hooks.data.length) {
        history.replaceState(null, '', ctx.link('deliveries', [], { ...filters, webhook: hooks.data[0].id }));
        ctx.go(location.hash);
        return;
      }
      replace(webhookSelect, hooks.data.map((w) =>
        h('option', { value: w.id, selected: w.id === filters.webhook }, w.url)));
      if (!hooks.data.length) {
        replace(rows, notice('info', 'No webhooks yet: deliveries appear once a webhook exists.'));
        return;
      }
      load();
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(rows, notice('error', describe(error)));
    }
  })();

  async function load() {
    if (!filters.webhook) return;
    replace(rows, h('p', { class: 'loading' }, 'Loading deliveries…'));
    try {
      const page = await api.get(listPath(filters, cursor));
      if (!alive) return;
      drawRows(page.data);
      drawPager(page.nextCursor);
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(rows, notice('error', describe(error)));
    }
  }

  function drawRows(deliveries) {
    if (!deliveries.length) {
      replace(rows, notice('info', cursors.length ? 'No older deliveries.' : 'No deliveries match.'));
      return;
    }
    replace(rows,
      h('div', { class: 'tr th' },
        h('span', null, 'Created'), h('span', null, 'Event'), h('span', null, 'Status'),
        h('span', null, 'Attempts'), h('span', null, 'Last result'), h('span', null, 'Next attempt')),
      deliveries.map((d) => h('a', {
        class: 'tr', href: ctx.link('deliveries', [d.webhookId, d.id]), 'data-id': d.id,
      },
      h('span', null, time(d.createdAt)),
      h('span', null, d.event),
      h('span', null, badge(d.status, STATUS_KIND[d.status])),
      h('span', null, String(d.attempts)),
      h('span', null, lastResult(d)),
      h('span', null, d.status === 'pending' ? time(d.nextAttemptAt) : '—'))));
  }

  function drawPager(next) {
    const page = cursors.length + 1;
    replace(pager,
      cursors.length ? h('button', { type: 'button', class: 'secondary', onclick: () => newest() }, 'Newest') : null,
      cursors.length ? h('button', {
        type: 'button', class: 'secondary', id: 'dl-newer',
        onclick: () => {
          cursor = cursors.pop();
          load();
        },
      }, '← Newer') : null,
      h('span', { class: 'muted', id: 'dl-page' }, `Page ${page}`),
      next ? h('button', {
        type: 'button', class: 'secondary', id: 'dl-older',
        onclick: () => {
          cursors.push(cursor);
          cursor = next;
          load();
        },
      }, 'Older →') : null);
  }

  function newest() {
    cursors.length = 0;
    cursor = '';
    load();
  }

  return () => {
    alive = false;
  };
}

function lastResult(delivery) {
  if (delivery.lastStatusCode !== null && delivery.lastStatusCode !== undefined) {
    return `HTTP ${delivery.lastStatusCode}`;
  }
  return delivery.lastError || '—';
}

/** Requeue every failed delivery of the webhook created in a window. */
function recoverForm(webhookId, status) {
  const now = Date.now();
  const since = h('input', { type: 'datetime-local', id: 'rc-since', required: true, value: localInput(now - 24 * 3600 * 1000) });
  const until = h('input', { type: 'datetime-local', id: 'rc-until', value: localInput(now + 60 * 1000) });
  return h('details', { class: 'panel' },
    h('summary', null, 'Recover failed deliveries in a time window'),
    h('form', {
      class: 'row', method: 'post',
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { since: new Date(since.value).getTime() };
        if (until.value) body.until = new Date(until.value).getTime();
        if (!Number.isFinite(body.since) || (body.until !== undefined && !Number.isFinite(body.until))) {
          replace(status, notice('error', 'Enter the window as dates and times.'));
          return;
        }
        try {
          const result = await api.post(`webhooks/${seg(webhookId)}/recover`, body);
          replace(status, notice('ok', `Requeued ${result.requeued} failed deliveries.`));
        } catch (error) {
          if (!(error instanceof Stale)) replace(status, notice('error', describe(error)));
        }
      },
    },
    h('label', null, 'From ', since),
    h('label', null, 'Until ', until),
    h('button', { type: 'submit', id: 'rc-go' }, 'Requeue')));
}

/** One delivery: its state, its attempt timeline and the envelope; refreshed while pending. */
function detail(container, webhookId, deliveryId, ctx) {
  const path = `webhooks/${seg(webhookId)}/deliveries/${seg(deliveryId)}`;
  const status = h('div', { class: 'status-line' });
  const body = h('div', { id: 'delivery-detail' }, h('p', { class: 'loading' }, 'Loading the delivery…'));
  let alive = true;
  let timer = null;
  replace(container,
    h('div', { class: 'toolbar' },
      h('a', { class: 'button secondary', href: ctx.link('deliveries', [], { webhook: webhookId }) }, '← Deliveries'),
      h('h2', null, 'Delivery')),
    status,
    body);

  async function load() {
    clearTimeout(timer);
    try {
      const delivery = await api.get(path);
      if (!alive) return;
      draw(delivery);
      // Follow a pending delivery until it settles.
      if (delivery.status === 'pending') timer = setTimeout(load, 1000);
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(body, notice('error', describe(error)));
    }
  }

  function draw(d) {
    replace(body,
      h('dl', { class: 'facts panel' },
        field('Id', h('code', null, d.id)),
        field('Event', d.event, ' ', h('code', null, d.eventId)),
        field('Status', badge(d.status, STATUS_KIND[d.status])),
        field('Attempts', String(d.attempts)),
        field('Created', time(d.createdAt)),
        field('Next attempt', d.status === 'pending' ? time(d.nextAttemptAt) : '—')),
      ctx.can('manage') ? h('div', { class: 'actions' },
        h('button', {
          type: 'button', id: 'retry',
          onclick: async () => {
            replace(status, notice('info', 'Retrying…'));
            try {
              await api.post(`${path}/retry`);
              replace(status, notice('ok', 'Queued for an attempt now.'));
              load();
            } catch (error) {
              if (!(error instanceof Stale)) replace(status, notice('error', `Retry: ${describe(error)}`));
            }
          },
        }, 'Retry now')) : null,
      h('h3', null, 'Attempts'),
      d.attemptLog.length
        ? h('ol', { class: 'timeline', id: 'attempts' }, d.attemptLog.map(attempt))
        : notice('info', 'No attempt yet.'),
      h('details', { class: 'panel' },
        h('summary', null, 'Envelope (the exact JSON sent)'),
        h('pre', { class: 'json' }, pretty(d.envelope))));
  }

  load();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}

function attempt(a) {
  const ok = a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300;
  return h('li', { class: ok ? 'ok' : 'bad', 'data-attempt': a.attempt },
    h('div', { class: 'attempt-head' },
      h('strong', null, `#${a.attempt}`),
      h('span', null, time(a.startedAt)),
      h('span', null, `${a.durationMs} ms`),
      a.statusCode !== null ? badge(`HTTP ${a.statusCode}`, ok ? 'ok' : 'bad') : null,
      a.error ? badge(a.error, 'bad') : null),
    a.responseBody
      ? h('details', { open: true }, h('summary', null, 'Response body'), h('pre', { class: 'body' }, a.responseBody))
      : h('div', { class: 'muted' }, 'Empty response body'));
}
