// Deliveries: the organization's deliveries — all webhooks, or one — filtered by status,
// event type and creation time, paged by cursor (one page of at most PAGE rows in memory,
// however many deliveries exist); each delivery's attempt timeline with status codes, errors,
// durations and response bodies; retry one; recover the failed deliveries of a time window.
//
// The filters live in the URL hash (`#deliveries?webhook=…&status=…&event=…&since=…&until=…`);
// `listPath` turns them into the API query, so a new filter is one form control plus one line
// there. The list needs only `read` (the organization-wide list); a delivery's detail, retry
// and recover need `manage`.

import { api, describe, seg, Stale } from './api.js';
import { badge, field, h, localInput, notice, pretty, replace, time } from './dom.js';

const PAGE = 50;
const STATUSES = ['pending', 'succeeded', 'failed', 'cancelled'];
const STATUS_KIND = { succeeded: 'ok', failed: 'bad', cancelled: 'off', pending: 'wait' };

export function mount(container, route, ctx) {
  const [webhookId, deliveryId] = route.segments;
  if (webhookId && deliveryId && ctx.can('manage')) return detail(container, webhookId, deliveryId, ctx);
  return list(container, route.params, ctx);
}

/** The API path of one page of the list for `filters`, starting at `cursor`. */
export function listPath(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (filters.webhook) query.set('webhookId', filters.webhook);
  if (filters.status) query.set('status', filters.status);
  if (filters.event) query.set('event', filters.event);
  if (filters.since) query.set('since', filters.since);
  if (filters.until) query.set('until', filters.until);
  if (cursor) query.set('cursor', cursor);
  return `deliveries?${query}`;
}

/**
 * A `datetime-local` input's value as epoch ms (as a string), or '' when empty or invalid.
 * The input has minute precision, so an upper bound (`end`) covers its whole minute.
 */
function epochOf(input, end = false) {
  if (!input.value) return '';
  const ms = new Date(input.value).getTime();
  return Number.isFinite(ms) ? String(end ? ms + 59999 : ms) : '';
}

function list(container, params, ctx) {
  const filters = {
    webhook: params.get('webhook') || '',
    status: params.get('status') || '',
    event: params.get('event') || '',
    since: params.get('since') || '',
    until: params.get('until') || '',
  };
  let alive = true;
  // The cursors of the pages before the current one, so "Newer" can go back.
  const cursors = [];
  let cursor = '';
  // Webhook id → URL, to name each row's webhook in the organization-wide list.
  const urls = new Map();
  // The page on screen, to redraw when the URLs arrive after it.
  let shown = null;

  const webhookSelect = h('select', { id: 'dl-webhook', onchange: () => refilter() },
    h('option', { value: '' }, 'all webhooks'),
    filters.webhook ? h('option', { value: filters.webhook, selected: true }, filters.webhook) : null);
  const statusSelect = h('select', { id: 'dl-status', onchange: () => refilter() },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const eventSelect = h('select', { id: 'dl-event', onchange: () => refilter() },
    h('option', { value: '' }, 'any event'),
    filters.event ? h('option', { value: filters.event, selected: true }, filters.event) : null);
  const since = h('input', { type: 'datetime-local', id: 'dl-since', value: filters.since ? localInput(Number(filters.since)) : '', onchange: () => refilter() });
  const until = h('input', { type: 'datetime-local', id: 'dl-until', value: filters.until ? localInput(Number(filters.until)) : '', onchange: () => refilter() });
  const rows = h('div', { class: 'table', id: 'delivery-list' });
  const pager = h('div', { class: 'pager' });
  const status = h('div', { class: 'status-line' });

  function refilter() {
    ctx.go(ctx.link('deliveries', [], {
      webhook: webhookSelect.value,
      status: statusSelect.value,
      event: eventSelect.value,
      since: epochOf(since),
      until: epochOf(until, true),
    }));
  }

  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Deliveries'),
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh')),
    h('div', { class: 'filters', id: 'dl-filters' },
      h('label', null, 'Webhook ', webhookSelect),
      h('label', null, 'Status ', statusSelect),
      h('label', null, 'Event ', eventSelect),
      h('label', null, 'Created from ', since),
      h('label', null, 'until ', until)),
    status,
    filters.webhook && ctx.can('manage') ? recoverForm(filters.webhook, status) : null,
    rows,
    pager);

  (async () => {
    // The choices for the selects; the list itself does not wait for them.
    try {
      const [hooks, types] = await Promise.all([
        ctx.can('manage') ? api.get('webhooks') : null,
        api.get('event-types'),
      ]);
      if (!alive) return;
      if (hooks) {
        for (const w of hooks.data) urls.set(w.id, w.url);
        // The list may have been drawn first, naming webhooks by id: name them by URL now.
        if (shown) drawRows(shown);
        replace(webhookSelect,
          h('option', { value: '' }, 'all webhooks'),
          hooks.data.map((w) => h('option', { value: w.id, selected: w.id === filters.webhook }, w.url)));
      }
      replace(eventSelect,
        h('option', { value: '' }, 'any event'),
        types.data.map((t) => h('option', { value: t.name, selected: t.name === filters.event }, t.name)));
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(status, notice('error', describe(error)));
    }
  })();
  load();

  async function load() {
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
    shown = deliveries;
    if (!deliveries.length) {
      replace(rows, notice('info', cursors.length ? 'No older deliveries.' : 'No deliveries match.'));
      return;
    }
    const manage = ctx.can('manage');
    replace(rows,
      h('div', { class: 'tr th' },
        h('span', null, 'Created'), h('span', null, 'Event · webhook'), h('span', null, 'Status'),
        h('span', null, 'Attempts'), h('span', null, 'Last result'), h('span', null, 'Next attempt')),
      deliveries.map((d) => h(manage ? 'a' : 'div', {
        class: 'tr', href: manage ? ctx.link('deliveries', [d.webhookId, d.id]) : null, 'data-id': d.id,
      },
      h('span', null, time(d.createdAt)),
      h('span', null, d.event, filters.webhook ? null : h('span', { class: 'muted small-text' }, ` · ${urls.get(d.webhookId) || d.webhookId}`)),
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
