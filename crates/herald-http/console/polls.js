// Polls: a poll's tally as a bar chart with its voters. A poll is named by session, chat,
// sender and message id — typed in, picked from the polls found in the event log, or reached
// from a live event. The tally refreshes when a vote on it arrives live.

import { api, describe, seg, Stale } from './api.js';
import { h, notice, replace, time } from './dom.js';
import { pollOf } from './events.js';

const SCAN_PAGE = 200;

export function mount(container, route, ctx) {
  const p = route.params;
  const inputs = {
    session: h('input', { id: 'poll-session', required: true, placeholder: 'session id', value: p.get('session') || '' }),
    chat: h('input', { id: 'poll-chat', required: true, placeholder: '120363000000000001@g.us', value: p.get('chat') || '' }),
    sender: h('input', { id: 'poll-sender', required: true, placeholder: 'who sent the poll', value: p.get('sender') || '' }),
    id: h('input', { id: 'poll-id', required: true, placeholder: 'message id', value: p.get('id') || '' }),
  };
  const tally = h('div', { id: 'poll-tally' });
  const found = h('div', { id: 'poll-found' });
  let alive = true;
  let shown = null;

  const show = (poll) => ctx.go(ctx.link('polls', [], poll));

  replace(container,
    h('div', { class: 'toolbar' }, h('h2', null, 'Polls')),
    h('form', {
      class: 'panel grid', id: 'poll-form', method: 'post',
      onsubmit: (event) => {
        event.preventDefault();
        show(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])));
      },
    },
    h('label', null, 'Session', inputs.session),
    h('label', null, 'Chat', inputs.chat),
    h('label', null, 'Sender', inputs.sender),
    h('label', null, 'Message id', inputs.id),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show tally'))),
    tally,
    h('div', { class: 'toolbar' },
      h('h3', null, 'Polls in the event log'),
      h('button', { type: 'button', class: 'secondary', id: 'poll-scan', onclick: () => scan('') }, 'Find polls')),
    found);

  async function loadTally() {
    const q = shown;
    const query = new URLSearchParams({ chat: q.chat, sender: q.sender });
    try {
      const poll = await api.get(`sessions/${seg(q.session)}/messages/${seg(q.id)}/poll?${query}`);
      if (alive && shown === q) drawTally(poll);
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(tally, notice('error', describe(error)));
    }
  }

  function drawTally(poll) {
    const most = Math.max(1, ...poll.options.map((o) => o.votes));
    const total = poll.options.reduce((n, o) => n + o.votes, 0);
    const kind = poll.selectableCount === 1 ? 'single choice'
      : poll.selectableCount === 0 ? 'any number of choices' : `up to ${poll.selectableCount} choices`;
    replace(tally,
      h('section', { class: 'panel' },
        h('h3', { id: 'poll-question' }, poll.question),
        h('p', { class: 'muted' }, `${kind} · ${total} vote${total === 1 ? '' : 's'} from ${poll.voters.length} voter${poll.voters.length === 1 ? '' : 's'}`),
        h('div', { class: 'bars', role: 'list' }, poll.options.map((o) => {
          const fill = h('div', { class: 'fill' });
          // CSSOM, not a style attribute: allowed under the console's CSP.
          fill.style.width = `${(100 * o.votes) / most}%`;
          return h('div', { class: 'bar-row', role: 'listitem', 'data-option': o.name, 'data-votes': o.votes },
            h('span', { class: 'bar-label' }, o.name),
            h('div', { class: 'bar' }, fill),
            h('span', { class: 'bar-count' }, String(o.votes)));
        })),
        poll.voters.length ? h('details', { open: true },
          h('summary', null, 'Voters'),
          h('ul', { class: 'voters' }, poll.voters.map((v) => h('li', null,
            h('code', null, v.voter), ` → ${v.options.join(', ') || 'nothing'} `,
            h('span', { class: 'muted' }, time(v.updatedAt)))))) : null));
  }

  async function scan(cursor) {
    replace(found, h('p', { class: 'loading' }, 'Reading the event log…'));
    try {
      const query = new URLSearchParams({ event: 'message.any', limit: String(SCAN_PAGE) });
      if (cursor) query.set('cursor', cursor);
      const page = await api.get(`events?${query}`);
      if (!alive) return;
      const polls = page.data.map(pollOf).filter(Boolean);
      replace(found,
        polls.length
          ? h('ul', { class: 'found' }, polls.map((poll) => h('li', null,
            h('a', { href: ctx.link('polls', [], poll) }, poll.question || poll.id),
            h('span', { class: 'muted' }, ` in ${poll.chat}`))))
          : notice('info', 'No polls on this page of the log.'),
        page.nextCursor
          ? h('button', { type: 'button', class: 'secondary', onclick: () => scan(page.nextCursor) }, 'Look further')
          : h('p', { class: 'muted' }, 'End of the event log.'));
    } catch (error) {
      if (alive && !(error instanceof Stale)) replace(found, notice('error', describe(error)));
    }
  }

  const complete = Object.keys(inputs).every((k) => p.get(k));
  if (complete) {
    shown = Object.fromEntries(Object.keys(inputs).map((k) => [k, p.get(k)]));
    replace(tally, h('p', { class: 'loading' }, 'Loading the tally…'));
    loadTally();
  }
  const unsubscribe = ctx.live
    ? ctx.live.subscribe((event) => {
      const poll = pollOf(event);
      if (shown && event.event === 'poll.vote' && poll && poll.id === shown.id && poll.session === shown.session) loadTally();
    })
    : () => {};
  return () => {
    alive = false;
    unsubscribe();
  };
}
