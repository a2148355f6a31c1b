// Live events: what the organization's WebSocket brings, newest first, at most KEEP kept.
// Message text, votes and payloads are shown as text; a poll message links to its tally.

import { KEEP } from './live.js';
import { badge, h, notice, preview, pretty, replace, time } from './dom.js';

export function mount(container, route, ctx) {
  const status = h('p', { class: 'notice info', id: 'live-line', role: 'status' });
  const list = h('ol', { class: 'events', id: 'event-list' });
  const empty = notice('info', 'Waiting for events… (anything that happens in the organization shows here as it happens)');
  replace(container,
    h('div', { class: 'toolbar' },
      h('h2', null, 'Live events'),
      h('button', {
        type: 'button', class: 'secondary',
        onclick: () => {
          ctx.live.recent.length = 0;
          list.replaceChildren();
          list.before(empty);
        },
      }, 'Clear')),
    status,
    ctx.live.recent.length ? null : empty,
    list);

  for (const event of ctx.live.recent) list.append(row(event, ctx));
  const unsubscribe = ctx.live.subscribe((event) => {
    empty.remove();
    list.prepend(row(event, ctx));
    while (list.children.length > KEEP) list.lastElementChild.remove();
  });
  const unstatus = ctx.live.onStatus((s) => {
    status.textContent = s.message;
    status.className = `notice ${s.state === 'live' ? 'ok' : 'info'}`;
  });
  return () => {
    unsubscribe();
    unstatus();
  };
}

/** A poll message's coordinates for the tally, when `event` carries one. */
export function pollOf(event) {
  const p = event.payload || {};
  if ((event.event === 'message' || event.event === 'message.any') && p.type === 'poll' && event.session) {
    return { session: event.session, chat: p.chat, sender: p.sender, id: p.id, question: p.poll && p.poll.question };
  }
  if (event.event === 'poll.vote' && p.poll && event.session) {
    return { session: event.session, chat: p.poll.chat, sender: p.poll.sender, id: p.poll.id };
  }
  return null;
}

/** A one-line description of an event, as text. */
export function summary(event) {
  const p = event.payload || {};
  switch (event.event) {
    case 'message':
    case 'message.any': {
      const who = p.fromMe ? `me → ${p.chat}` : `${p.sender} in ${p.chat}`;
      if (p.type === 'poll' && p.poll) return `${who}: poll “${p.poll.question}” (${(p.poll.options || []).join(' / ')})`;
      return `${who}: ${p.body ?? ''}`;
    }
    case 'poll.vote': {
      const v = p.vote || {};
      return `${v.voter} voted ${(v.selectedOptions || []).join(', ') || 'nothing (cleared)'}`;
    }
    case 'session.status':
      return `session is ${p.status}${p.me && p.me.id ? ` as ${p.me.id}` : ''}${p.reason ? ` (${p.reason})` : ''}`;
    case 'message.ack':
      return `message ${p.id} in ${p.chat}: ${p.ackName ?? p.ack}`;
    case 'poll.vote.failed':
      return `a vote on poll ${(p.poll && p.poll.id) || '?'} could not be applied`;
    case 'webhook.disabled':
      return `webhook ${p.webhookId} disabled (${p.reason})`;
    case 'delivery.failed':
      return `delivery ${p.deliveryId} to webhook ${p.webhookId} failed for good after ${p.attempts} attempts` +
        ` (last: ${p.lastStatusCode !== null && p.lastStatusCode !== undefined ? `HTTP ${p.lastStatusCode}` : p.lastError || 'no answer'})`;
    case 'webhook.paused':
      return `webhook ${p.webhookId} paused after ${p.consecutiveFailures} failures in a row`;
    case 'webhook.resumed':
      return `webhook ${p.webhookId} resumed (its probe succeeded)`;
    default:
      return preview(p);
  }
}

function row(event, ctx) {
  const poll = pollOf(event);
  return h('li', { class: 'event', 'data-id': event.id, 'data-type': event.event },
    h('div', { class: 'event-head' },
      h('span', { class: 'muted' }, time(event.timestamp)),
      badge(event.event),
      event.session ? h('code', null, event.session) : null),
    h('div', { class: 'event-text' }, summary(event)),
    poll && ctx.can('read')
      ? h('a', { class: 'button secondary small', href: ctx.link('polls', [], poll) }, 'Poll tally')
      : null,
    h('details', null,
      h('summary', null, h('code', null, event.id)),
      h('pre', { class: 'json' }, pretty(event))));
}
