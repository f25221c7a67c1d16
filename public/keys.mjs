// The extra-keys row for phones and tablets: the keys an on-screen keyboard
// lacks, with Ctrl and Alt as sticky modifiers (tap Ctrl, then type c).
//
// The sequences are xterm's, which is what TERM=xterm-256color programs
// expect: cursor keys follow DECCKM (application mode ESC O A, normal mode
// ESC [ A), a modifier turns them into ESC [ 1 ; m A with m = 1 + 2*alt +
// 4*ctrl, and Ctrl with a character sends its control code.

export const KEYS = [
  { id: 'esc', label: 'Esc', name: 'Escape', send: '\x1b' },
  { id: 'tab', label: 'Tab', name: 'Tab', send: '\t' },
  { id: 'ctrl', label: 'Ctrl', name: 'Control, for the next key', modifier: 'ctrl' },
  { id: 'alt', label: 'Alt', name: 'Alt, for the next key', modifier: 'alt' },
  { id: 'left', label: '←', name: 'Left', cursor: 'D' },
  { id: 'down', label: '↓', name: 'Down', cursor: 'B' },
  { id: 'up', label: '↑', name: 'Up', cursor: 'A' },
  { id: 'right', label: '→', name: 'Right', cursor: 'C' },
  { id: 'home', label: 'Home', name: 'Home', cursor: 'H' },
  { id: 'end', label: 'End', name: 'End', cursor: 'F' },
  { id: 'pgup', label: 'PgUp', name: 'Page up', tilde: 5 },
  { id: 'pgdn', label: 'PgDn', name: 'Page down', tilde: 6 },
  { id: 'pipe', label: '|', name: 'Vertical bar', text: '|' },
  { id: 'tilde', label: '~', name: 'Tilde', text: '~' },
  { id: 'slash', label: '/', name: 'Slash', text: '/' },
  { id: 'dash', label: '-', name: 'Minus', text: '-' },
];

// Ctrl with a punctuation key, as xterm and the VT220 send them.
const CONTROL_PUNCTUATION = {
  '@': '\x00', ' ': '\x00', 2: '\x00',
  '[': '\x1b', 3: '\x1b',
  '\\': '\x1c', 4: '\x1c', '|': '\x1c',
  ']': '\x1d', 5: '\x1d',
  '^': '\x1e', 6: '\x1e', '~': '\x1e',
  '_': '\x1f', 7: '\x1f', '/': '\x1f', '-': '\x1f',
  '?': '\x7f', 8: '\x7f',
};

/** The control code for Ctrl+`ch`, or `ch` itself when there is none. */
export function control(ch) {
  if (ch.length !== 1) return ch;
  const code = ch.charCodeAt(0);
  if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) return String.fromCharCode(code & 0x1f);
  return CONTROL_PUNCTUATION[ch] ?? ch;
}

/** Applies sticky modifiers to typed text (one character, or a word from a keyboard's suggestion). */
export function modify(text, { ctrl = false, alt = false } = {}) {
  let out = text;
  if (ctrl && [...out].length === 1) out = control(out);
  if (alt) out = `\x1b${out}`;
  return out;
}

/** The bytes one extra key sends. `appCursor` is xterm's DECCKM mode. */
export function sequence(key, { ctrl = false, alt = false, appCursor = false } = {}) {
  const mods = 1 + (alt ? 2 : 0) + (ctrl ? 4 : 0);
  if (key.cursor) {
    if (mods > 1) return `\x1b[1;${mods}${key.cursor}`;
    return appCursor ? `\x1bO${key.cursor}` : `\x1b[${key.cursor}`;
  }
  if (key.tilde) return mods > 1 ? `\x1b[${key.tilde};${mods}~` : `\x1b[${key.tilde}~`;
  if (key.send === '\t' && ctrl) return alt ? '\x1b\t' : '\t';
  if (key.send) return alt ? `\x1b${key.send}` : key.send;
  return modify(key.text, { ctrl, alt });
}

/** Whether this looks like a phone or tablet: a coarse pointer, touch. */
export function touchDevice() {
  return matchMedia('(pointer: coarse)').matches || navigator.maxTouchPoints > 0;
}

/**
 * Builds the row into `container`. `send(bytes)` gets each key's sequence;
 * `appCursor()` reads DECCKM. Returns { consume(text), modifiers } so typed
 * text can take the armed modifiers.
 */
export function extraKeys(container, { send, appCursor }) {
  const mods = { ctrl: false, alt: false };
  const buttons = {};
  const show = () => {
    for (const m of ['ctrl', 'alt']) buttons[m].setAttribute('aria-pressed', String(mods[m]));
  };
  const release = () => {
    mods.ctrl = false;
    mods.alt = false;
    show();
  };
  for (const key of KEYS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = `key-${key.id}`;
    b.textContent = key.label;
    b.setAttribute('aria-label', key.name);
    // Never take the focus: the on-screen keyboard stays open, the
    // terminal keeps receiving what is typed.
    b.tabIndex = -1;
    b.addEventListener('pointerdown', (ev) => ev.preventDefault());
    b.addEventListener('mousedown', (ev) => ev.preventDefault());
    if (key.modifier) {
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => {
        mods[key.modifier] = !mods[key.modifier];
        show();
      });
    } else {
      b.addEventListener('click', () => {
        const bytes = sequence(key, { ...mods, appCursor: appCursor() });
        release();
        send(bytes);
      });
    }
    buttons[key.id] = b;
    container.appendChild(b);
  }
  return {
    modifiers: mods,
    /** Typed text, with the armed modifiers applied (and released). */
    consume(text) {
      // Escape sequences (a hardware key, a mouse report, an answer to the
      // program) pass untouched and leave the modifiers armed.
      if ((!mods.ctrl && !mods.alt) || text.startsWith('\x1b')) return text;
      const out = modify(text, mods);
      release();
      return out;
    },
  };
}
