// The console's shell: sign-in, the header with what the token may do, the tabs, and the
// hash router that mounts one view at a time.
//
// A view is a module with `mount(container, route, ctx)` returning an optional cleanup
// function. It gets `ctx.can(capability)` and must draw no control whose capability the token
// lacks (absent, not disabled). Adding a view is one entry in VIEWS.

import * as API from './api.js';
import { h, replace } from './dom.js';
import { Live } from './live.js';
import * as webhooks from './webhooks.js';
import * as deliveries from './deliveries.js';
import * as events from './events.js';
import * as sessions from './sessions.js';
import * as polls from './polls.js';

/** The tabs, in order; a tab shows when the token holds any capability in `needs`. */
const VIEWS = [
  { id: 'webhooks', title: 'Webhooks', needs: ['manage'], module: webhooks },
  { id: 'deliveries', title: 'Deliveries', needs: ['read', 'manage'], module: deliveries },
  { id: 'live', title: 'Live events', needs: ['read'], module: events },
  { id: 'sessions', title: 'Sessions', needs: ['read'], module: sessions },
  { id: 'polls', title: 'Polls', needs: ['read'], module: polls },
];

const root = document.getElementById('app');
let shell = null;

/** Parses `#name/seg/seg?key=value` into `{ name, segments, params }`. */
function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query = ''] = raw.split('?');
  const [name = '', ...segments] = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { name, segments, params: new URLSearchParams(query) };
}

/** Builds a hash from a view name, segments and params (empty params are dropped). */
export function link(name, segments = [], params = {}) {
  const path = [name, ...segments].map(encodeURIComponent).join('/');
  const query = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  ).toString();
  return `#${path}${query ? `?${query}` : ''}`;
}

function signInForm(message) {
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'hk_… or eyJ…',
  });
  const form = h('form', {
    class: 'signin', method: 'post',
    onsubmit: (event) => {
      event.preventDefault();
      const value = input.value.trim();
      input.value = '';
      if (value) start(value);
    },
  },
  h('h1', null, 'Herald console'),
  message ? h('p', { class: 'notice error', role: 'alert', id: 'signin-message' }, message) : null,
  h('label', { for: 'token' }, 'API key or login token'),
  input,
  h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
  h('p', { class: 'hint' },
    'The token stays in this browser tab only and is sent to Herald as a bearer token, never in a URL. ',
    'The console shows what this token may see and do, for its organization.'));
  replace(root, form);
  input.focus();
}

/** Ends the signed-in state: nothing drawn from the old token stays on screen. */
function stop(message) {
  API.signOut();
  if (shell) {
    shell.teardown();
    shell = null;
  }
  signInForm(message);
}

function refused(reason) {
  stop(`Herald refused the token: ${reason}. It may have expired or been revoked — paste a valid token to continue.`);
}

async function start(value) {
  if (shell) {
    shell.teardown();
    shell = null;
  }
  API.signIn(value);
  replace(root, h('p', { class: 'loading' }, 'Checking the token…'));
  let me;
  try {
    me = await API.api.get('me');
  } catch (error) {
    if (error instanceof API.Stale) return;
    // Not a refusal (that signed out already): Herald is unreachable or broken. Keep the
    // token so a retry needs no pasting, but show nothing as if signed in.
    replace(root, h('div', { class: 'signin' },
      h('p', { class: 'notice error', role: 'alert' }, API.describe(error)),
      h('button', { type: 'button', onclick: () => start(value) }, 'Try again'),
      h('button', { type: 'button', class: 'secondary', onclick: () => stop() }, 'Use another token')));
    return;
  }
  shell = new Shell(me);
}

class Shell {
  constructor(me) {
    this.me = me;
    this.caps = new Set(me.capabilities);
    this.cleanup = null;
    this.views = VIEWS.filter((v) => v.needs.some((c) => this.caps.has(c)));
    this.live = this.caps.has('read') ? new Live(me.organizationId, refused) : null;
    this.ctx = {
      me,
      can: (capability) => this.caps.has(capability),
      live: this.live,
      link,
      go: (hash) => {
        if (location.hash === hash) this.route();
        else location.hash = hash;
      },
    };
    const status = h('span', { class: 'live-status', id: 'live-status', role: 'status' });
    this.nav = h('nav', { 'aria-label': 'Views' },
      this.views.map((v) => h('a', { href: `#${v.id}`, 'data-view': v.id }, v.title)));
    this.main = h('main', { id: 'view' });
    const expires = me.expiresAt ? ` · expires ${new Date(me.expiresAt).toLocaleString()}` : '';
    replace(root,
      h('header', null,
        h('span', { class: 'brand' }, 'Herald'),
        h('span', { class: 'who', id: 'who' },
          h('span', { class: 'org' }, me.organizationId),
          h('span', { class: 'muted' },
            ` · ${me.credential === 'login' ? 'login token' : 'API key'}${expires} · `),
          h('span', { class: 'caps', id: 'caps' }, me.capabilities.join(', ') || 'no capabilities')),
        status,
        h('button', { type: 'button', class: 'secondary', id: 'signout', onclick: () => stop() },
          'Sign out')),
      this.nav,
      this.main);
    this.onHash = () => this.route();
    window.addEventListener('hashchange', this.onHash);
    // A login token ends at its expiry even if nothing is asked of Herald then: sign out at
    // that moment rather than keep showing data as if it were current. (Timers cap at ~24.8
    // days; a later expiry is left to Herald's 401.)
    const left = me.expiresAt ? me.expiresAt - Date.now() : null;
    this.expiry = left !== null && left < 2 ** 31
      ? setTimeout(() => stop(`The login token expired at ${new Date(me.expiresAt).toLocaleString()}. Paste a new token to continue.`), Math.max(0, left))
      : null;
    if (this.live) {
      this.live.onStatus((s) => {
        status.textContent = s.message;
        status.dataset.state = s.state;
      });
      this.live.start();
    } else {
      status.textContent = 'Live events need the read capability';
      status.dataset.state = 'offline';
    }
    this.route();
  }

  route() {
    const route = parseHash();
    const view = this.views.find((v) => v.id === route.name);
    if (this.cleanup) this.cleanup();
    this.cleanup = null;
    this.main.replaceChildren();
    if (!view) {
      if (this.views.length === 0) {
        this.main.append(h('p', { class: 'notice info' },
          `This token carries no capability the console can use (it has: ${this.me.capabilities.join(', ') || 'none'}). `,
          'Webhooks and deliveries need manage; events, sessions and polls need read.'));
      } else {
        history.replaceState(null, '', `#${this.views[0].id}`);
        this.route();
      }
      return;
    }
    for (const a of this.nav.querySelectorAll('a')) {
      if (a.dataset.view === view.id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    this.cleanup = view.module.mount(this.main, route, this.ctx) || null;
  }

  teardown() {
    clearTimeout(this.expiry);
    window.removeEventListener('hashchange', this.onHash);
    if (this.cleanup) this.cleanup();
    if (this.live) this.live.stop();
    root.replaceChildren();
  }
}

API.onUnauthorized(refused);

// A 401 from any request, or a 1008 close of the live socket, ends the session through
// `refused`: once per epoch, because `API.signOut` makes every later answer `Stale`.
const stored = API.token();
if (stored) start(stored);
else signInForm();
