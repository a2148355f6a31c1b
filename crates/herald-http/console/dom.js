// Building the page from data. Every string that reaches the page goes through `h` or
// `text`, which make text nodes (never markup): message bodies, payloads, response bodies,
// header values, URLs and names from the API are shown exactly as they are and can run
// nothing. No code in the console hands a string to the browser's HTML parser.

/**
 * Creates an element. `attrs` keys are written by the console's own code, never taken from
 * data: `class`, `for`, `id`, `type`, `name`, `title`, `placeholder`, `role`, `aria-*`,
 * `data-*` and the like become attributes; `value`, `checked`, `selected` and `disabled`
 * become properties; a function under an `on…` key becomes an event listener. Children may
 * be nodes, strings (made text nodes), numbers, arrays, or null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'disabled') {
      element[key] = value;
    } else if (key === 'class') {
      element.className = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children as `h` does. */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces everything inside `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** A text node. */
export function text(value) {
  return document.createTextNode(String(value ?? ''));
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** Epoch milliseconds as local `YYYY-MM-DD HH:MM:SS`; `—` for none. */
export function time(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Epoch milliseconds as the value of an `<input type="datetime-local">`. */
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A value as indented JSON text (for `<pre>`). */
export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A short one-line preview of any value. */
export function preview(value, max = 120) {
  const line = typeof value === 'string' ? value : JSON.stringify(value) ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A labelled value for definition lists: `[dt, dd]`. */
export function field(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

/** A small coloured label. */
export function badge(label, kind = '') {
  return h('span', { class: `badge ${kind}`.trim() }, label);
}

/** A status line inside a view: `kind` is `error`, `ok` or `info`. */
export function notice(kind, message) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}

/**
 * A button that asks once more before doing something destructive: the first click turns it
 * into "Really …?" for a few seconds; the second runs `action`. No browser dialog is used.
 */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  let armed = null;
  const button = h('button', {
    ...attrs,
    type: 'button',
    class: `danger ${attrs.class || ''}`.trim(),
    onclick: () => {
      if (armed) {
        clearTimeout(armed);
        armed = null;
        button.textContent = label;
        action();
        return;
      }
      button.textContent = confirmLabel;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 4000);
    },
  }, label);
  return button;
}
