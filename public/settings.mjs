// Per-browser settings (localStorage) on top of the operator's `-t` options.
//
// Only what the user changed is stored: everything else follows the
// server's config.json, so an operator's new default reaches every browser
// that did not choose otherwise, and "Reset settings" hands control back.

const KEY = 'webterm.settings';

// Both palettes reach WCAG AA (4.5:1) against their background for the
// foreground and every ANSI colour meant to be read on it (black on the dark
// theme is the background's own shade, by convention). tests/browser checks.
export const THEMES = {
  dark: {
    background: '#1e1e1e',
    foreground: '#d4d4d4',
    cursor: '#d4d4d4',
    cursorAccent: '#1e1e1e',
    selectionBackground: '#264f78',
    black: '#000000',
    red: '#f14c4c',
    green: '#23d18b',
    yellow: '#e5e510',
    blue: '#3b8eea',
    magenta: '#d670d6',
    cyan: '#29b8db',
    white: '#e5e5e5',
    brightBlack: '#8a8a8a',
    brightRed: '#ff6e6e',
    brightGreen: '#5af78e',
    brightYellow: '#f4f99d',
    brightBlue: '#6cb6ff',
    brightMagenta: '#ff92df',
    brightCyan: '#8be9fd',
    brightWhite: '#ffffff',
  },
  light: {
    background: '#ffffff',
    foreground: '#1f1f1f',
    cursor: '#1f1f1f',
    cursorAccent: '#ffffff',
    selectionBackground: '#add6ff',
    black: '#1f1f1f',
    red: '#c4141b',
    green: '#107c10',
    yellow: '#7a5c00',
    blue: '#0451a5',
    magenta: '#a11fa8',
    cyan: '#0e7490',
    white: '#6b6b6b',
    brightBlack: '#5c5c5c',
    brightRed: '#b3001b',
    brightGreen: '#0b6e0b',
    brightYellow: '#6e5200',
    brightBlue: '#0037da',
    brightMagenta: '#881798',
    brightCyan: '#0b6477',
    brightWhite: '#4a4a4a',
  },
};

export const FONT_MIN = 6;
export const FONT_MAX = 48;

/** What this browser chose: { fontSize, theme, renderer, screenReader, keys }. */
export function loadChoices() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || '{}');
    return saved && typeof saved === 'object' ? saved : {};
  } catch {
    return {};
  }
}

export function saveChoices(choices) {
  try {
    if (Object.keys(choices).length) localStorage.setItem(KEY, JSON.stringify(choices));
    else localStorage.removeItem(KEY);
  } catch {
    // Private windows and full storage: the setting lasts for this page only.
  }
}

/**
 * The effective settings: URL parameter, then this browser's choice, then
 * the operator's option, then ours.
 */
export function resolve({ choices, operator, operatorRenderer, params }) {
  const urlRenderer = params.get('renderer');
  const operatorTheme = operator.theme && typeof operator.theme === 'object' ? 'server' : null;
  return {
    fontSize: clampFont(choices.fontSize ?? operator.fontSize ?? 14),
    theme: THEMES[choices.theme] ? choices.theme : (operatorTheme || 'dark'),
    renderer: ['dom', 'webgl'].includes(urlRenderer)
      ? urlRenderer
      : choices.renderer ?? (operatorRenderer === 'dom' ? 'dom' : 'webgl'),
    screenReader: choices.screenReader ?? operator.screenReaderMode === true,
    keys: ['show', 'hide'].includes(choices.keys) ? choices.keys : 'auto',
  };
}

export function clampFont(size) {
  const n = Math.round(Number(size));
  return Number.isFinite(n) ? Math.min(FONT_MAX, Math.max(FONT_MIN, n)) : 14;
}

/** The xterm.js theme for a setting; 'server' is the operator's `-t theme`. */
export function themeFor(name, operator) {
  if (name === 'server') return { ...THEMES.dark, ...operator.theme };
  return THEMES[name] || THEMES.dark;
}

/** Whether a background colour is light, to style the page around it. */
export function isLight(color) {
  const m = /^#?([0-9a-f]{6})$/i.exec(color || '');
  if (!m) return false;
  const n = parseInt(m[1], 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150;
}
