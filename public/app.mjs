// webterm's page: xterm.js on the binary protocol (docs/protocol.md).
//
// Output arrives as bytes and goes to xterm as bytes (its decoder keeps UTF-8
// state across writes). Flow control is the server's window: the page
// acknowledges the bytes xterm has really processed (its write callbacks
// fire once it has), and the server keeps unacknowledged only what this
// page draws in about 100 ms (256 KiB to 2 MiB, measured from these acks).
// That bounds everything in flight, network buffers and xterm's queue
// included, so Ctrl-C during a flood shows the prompt after about that
// much drawing. The xterm.js guide's pause/resume watermarks would
// only repeat it: they count the same callbacks, and a threshold inside
// the window is a smaller window, one that costs a round trip to reopen.
// The protocol keeps pause and resume for clients that do not ack.
//
// The socket lives in a worker (socket.mjs), and output that arrives while
// xterm.js is still parsing is gathered and written in one go when it is
// done: fewer, larger bites, so the page draws fewer frames per megabyte.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { WebglAddon } from '@xterm/addon-webgl';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { SearchAddon } from '@xterm/addon-search';
import { ImageAddon } from '@xterm/addon-image';
import { CLOSE } from './close.mjs';
import { extraKeys, touchDevice } from './keys.mjs';
import { FONT_MAX, FONT_MIN, clampFont, isLight, loadChoices, resolve, saveChoices, themeFor } from './settings.mjs';
import { fileTransfer } from './transfer.mjs';
import { openSocket, socketPlace } from './socket.mjs';

const PROTOCOL = 'webterm.binary.v1';
// xterm.js parses a write whole before it yields to draw; each piece's
// callback also acknowledges it at once, so the server sends on meanwhile.
const WRITE_PIECE = 64 * 1024;
const ACK_BYTES = 64 * 1024; // acknowledge at least this often
const MAX_INPUT_CHUNK = 64 * 1024; // the server refuses messages over 256 KiB
const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];

const statusEl = document.getElementById('status');
const statusText = document.getElementById('status-text');
const statusAction = document.getElementById('status-action');
const encoder = new TextEncoder();
const shareButton = document.getElementById('share');
const noteEl = document.getElementById('note');
const menuButton = document.getElementById('menu-button');
const menuEl = document.getElementById('menu');
const SAVED = 'webterm.session'; // per tab: sessionStorage survives a refresh, not a new tab

// `#view=ID.TOKEN`: a read-only view of someone's session. A fragment never
// reaches the server or a proxy's access log.
const viewMatch = location.hash.match(/^#view=([0-9a-f]{32})\.([0-9a-f]{64})$/);
const viewing = viewMatch ? { id: viewMatch[1], token: viewMatch[2] } : null;

function loadSaved() {
  try {
    return JSON.parse(sessionStorage.getItem(SAVED) || 'null');
  } catch {
    return null;
  }
}
function forgetSession() {
  sessionStorage.removeItem(SAVED);
  session = null;
}
let session = viewing ? null : loadSaved(); // { id, token, view } of the session this tab owns

const params = new URLSearchParams(location.search);
const config = await fetch('config.json').then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
const operator = config.terminal || {};
let choices = loadChoices();
let settings = resolve({ choices, operator, operatorRenderer: config.renderer, params });
const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');
const options = {
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
  // A steady cursor, as in xterm.js and ttyd: while the cursor blinks,
  // Chromium draws a keystroke's echo a frame later (scripts/bench-browser.mjs:
  // 26 ms key to glyph with the blink, 10 ms without). `-t cursorBlink=true`
  // turns it on.
  cursorBlink: false,
  scrollback: 5000,
  allowProposedApi: true,
  ...operator,
  fontSize: settings.fontSize,
  theme: themeFor(settings.theme, operator),
  screenReaderMode: settings.screenReader,
};
// No blinking for people who asked their system for less motion.
const wantsBlink = options.cursorBlink;
if (reducedMotion.matches) options.cursorBlink = false;

const term = new Terminal(options);
const fit = new FitAddon();
term.loadAddon(fit);
term.loadAddon(new WebLinksAddon());
const unicode = new Unicode11Addon();
term.loadAddon(unicode);
term.unicode.activeVersion = '11';
const search = new SearchAddon();
term.loadAddon(search);
term.open(document.getElementById('terminal'));

// Images: sixel and iTerm's inline images (OSC 1337), within limits a Pi or
// a phone can afford: an image is dropped beyond 2048x2048 pixels or 4 MB of
// sequence, and the oldest go once 32 MB are held.
const IMAGE_LIMITS = {
  pixelLimit: 2048 * 2048,
  sixelSizeLimit: 4 * 1024 * 1024,
  iipSizeLimit: 4 * 1024 * 1024,
  storageLimit: 32,
};
const images = new ImageAddon(IMAGE_LIMITS);
term.loadAddon(images);

// ---- renderer ----

// WebGL is the fast renderer, and the one that fails in odd ways: no WebGL2
// on some ARM boards, a context lost under memory pressure, and phones at
// device pixel ratio 2 where it draws nothing at all. The DOM renderer takes
// over in each case: when loading throws, when the context is lost, and when
// the first rows with text come out blank (checked with readPixels right
// after xterm drew them, while the frame is still in the drawing buffer).
let renderer = 'dom';
let webgl = null;
let webglChecks = null; // disposes the draw check once it has its answer
let webglBroken = null; // why WebGL failed here: other settings changes leave it off

function note(text) {
  noteEl.textContent = text;
  clearTimeout(note.timer);
  note.timer = setTimeout(() => (noteEl.textContent = ''), 6000);
}

function useRenderer(want) {
  if (want === 'webgl' && !webgl) {
    const before = new Set(term.element.querySelectorAll('canvas'));
    try {
      const addon = new WebglAddon();
      addon.onContextLoss(() => dropWebgl('the WebGL context was lost'));
      term.loadAddon(addon);
      webgl = addon;
      renderer = 'webgl';
    } catch (e) {
      console.info('WebGL unavailable, using the DOM renderer:', e?.message || e);
      webglBroken = 'WebGL is unavailable';
      renderer = 'dom';
      return;
    }
    const canvas = [...term.element.querySelectorAll('canvas')].find((c) => !before.has(c) && !c.className);
    if (canvas) watchWebgl(canvas);
  } else if (want === 'dom' && webgl) {
    webglChecks?.dispose();
    webgl.dispose();
    webgl = null;
    renderer = 'dom';
  }
}

function dropWebgl(why) {
  if (!webgl) return;
  console.info(`DOM renderer: ${why}`);
  stats.webglFallback = why;
  stats.webglFallbacks = (stats.webglFallbacks || 0) + 1;
  webglBroken = why;
  webglChecks?.dispose();
  webgl.dispose();
  webgl = null;
  renderer = 'dom';
  note(`Using the DOM renderer: ${why}.`);
  renderMenu();
}

/** Whether the WebGL canvas shows anything on the first viewport row that holds text (null: no text yet). */
function webglDrew(canvas) {
  const buf = term.buffer.active;
  let row = -1;
  for (let r = 0; r < term.rows && row < 0; r += 1) {
    if (buf.getLine(buf.viewportY + r)?.translateToString(true).trim()) row = r;
  }
  if (row < 0) return null;
  const gl = canvas.getContext('webgl2');
  if (!gl || gl.isContextLost()) return false;
  const band = Math.max(1, Math.floor(canvas.height / term.rows));
  const y = Math.max(0, canvas.height - (row + 1) * band); // GL counts rows from the bottom
  const px = new Uint8Array(canvas.width * band * 4);
  gl.readPixels(0, y, canvas.width, band, gl.RGBA, gl.UNSIGNED_BYTE, px);
  for (let i = 4; i < px.length; i += 4) {
    const d = Math.abs(px[i] - px[0]) + Math.abs(px[i + 1] - px[1]) + Math.abs(px[i + 2] - px[2]) + Math.abs(px[i + 3] - px[3]);
    if (d > 48) return true;
  }
  return false;
}

function watchWebgl(canvas) {
  let blanks = 0;
  webglChecks = term.onRender(() => {
    if (!webgl) return;
    const drew = webglDrew(canvas);
    if (drew === null) return;
    if (drew) {
      webglChecks.dispose();
      webglChecks = null;
      stats.webglDrew = true;
    } else if (++blanks >= 2) {
      dropWebgl('WebGL drew nothing here');
    } else {
      requestAnimationFrame(() => term.refresh(0, term.rows - 1)); // look once more
    }
  });
}

useRenderer(settings.renderer);

// ---- settings ----

function applyTheme() {
  const theme = themeFor(settings.theme, operator);
  term.options.theme = theme;
  document.documentElement.dataset.theme = isLight(theme.background) ? 'light' : 'dark';
}
applyTheme();

/** Records a choice of this browser (undefined: back to the default). */
function choose(key, value) {
  if (value === undefined) delete choices[key];
  else choices[key] = value;
  saveChoices(choices);
  settings = resolve({ choices, operator, operatorRenderer: config.renderer, params });
  applySettings();
}

function applySettings() {
  if (term.options.fontSize !== settings.fontSize) term.options.fontSize = settings.fontSize;
  applyTheme();
  useRenderer(webglBroken ? 'dom' : settings.renderer);
  if (term.options.screenReaderMode !== settings.screenReader) term.options.screenReaderMode = settings.screenReader;
  showKeys();
  refit();
  renderMenu();
}

function zoom(step) {
  if (step === 0) choose('fontSize', undefined);
  else choose('fontSize', clampFont(settings.fontSize + step));
}

reducedMotion.addEventListener('change', () => {
  term.options.cursorBlink = wantsBlink && !reducedMotion.matches;
});

// ---- connection ----

let ws = null;
let generation = 0; // callbacks from an old socket must not touch a new one
let state = 'connecting';
let attempts = 0;
let reconnectTimer = null;
let lastSize = { rows: 0, cols: 0 };
let received = 0; // absolute offset of the output handed to xterm (or a transfer)
let gathered = []; // output that came while xterm was busy, written as one when it is done
let gatheredBytes = 0;
let processed = 0; // bytes xterm has processed on this socket
let acked = 0; // the last acknowledgement sent
let pending = 0; // write callbacks xterm has yet to call
let ending = null; // what the server told us before closing
// The banner's countdowns, to moments the server named: an idle warning
// (a key cancels it) and a drain before a restart (nothing does).
let warningTimer = null;
let idleEnds = null;
let drainEnds = null;
let shown = false; // output of some session is on screen
// `ahead`: the most output ever received beyond the last ack, which the
// server's window bounds; `gathers`: writes of output gathered from more
// than one message.
const stats = { bytes: 0, connects: 0, inputBytes: 0, ahead: 0, gathers: 0 };
let transfer = null; // file transfer (./transfer.mjs), once loaded

function setState(next, text, action) {
  if (next !== 'warning') stopCountdowns();
  state = next;
  statusEl.dataset.state = next;
  statusText.textContent = text;
  statusAction.hidden = !action;
  if (action) statusAction.textContent = action;
}

function sendControl(msg) {
  if (ws?.open) ws.send(JSON.stringify(msg));
}

function sendInput(bytes) {
  if (!ws?.open) return;
  stats.inputBytes += bytes.length;
  for (let i = 0; i < bytes.length; i += MAX_INPUT_CHUNK) {
    ws.send(bytes.subarray(i, i + MAX_INPUT_CHUNK));
  }
}

function reportSize() {
  if (viewing) return; // a viewer must not resize its owner's terminal
  const { rows, cols } = term;
  if (rows === lastSize.rows && cols === lastSize.cols) return;
  if (!ws?.open) return;
  lastSize = { rows, cols };
  sendControl({ type: 'resize', rows, cols });
}

/** Output from the socket: written now if xterm is idle, else gathered. */
function onOutput(bytes, gen) {
  stats.bytes += bytes.length;
  stats.ahead = Math.max(stats.ahead, received + gatheredBytes + bytes.length - acked);
  if (pending === 0 && gathered.length === 0) {
    writeOutput(bytes, gen);
  } else {
    gathered.push(bytes);
    gatheredBytes += bytes.length;
  }
}

/** Hands what was gathered to xterm (or a transfer), as one write. */
function flushGathered(gen) {
  if (gathered.length === 0) return;
  let data = gathered[0];
  if (gathered.length > 1) {
    stats.gathers += 1;
    data = new Uint8Array(gatheredBytes);
    let at = 0;
    for (const part of gathered) {
      data.set(part, at);
      at += part.length;
    }
  }
  gathered = [];
  gatheredBytes = 0;
  writeOutput(data, gen);
}

function writeOutput(bytes, gen) {
  shown = true;
  const from = received;
  received += bytes.length;
  const upTo = received;
  // File transfer, when on, sees output first: during a transfer it takes
  // the bytes instead of the terminal (and may draw only part of them).
  if (transfer && !readOnly) {
    transfer.output(bytes, (data) => draw(data, gen, upTo), () => consumed(upTo, false));
  } else {
    draw(bytes, gen, upTo, from);
  }
}

/**
 * Writes output that ends at offset `upTo` to the terminal, under flow
 * control, in pieces; `from`, when known, is where it starts, so each
 * piece acknowledges its own end (else only the last acknowledges).
 */
function draw(data, gen, upTo, from = null) {
  const whole = typeof data === 'string' || !(data instanceof Uint8Array);
  const length = whole ? 1 : data.length;
  for (let at = 0; at < length; at += WRITE_PIECE) {
    const end = Math.min(at + WRITE_PIECE, length);
    const piece = whole ? data : data.subarray(at, end);
    const ends = end === length ? upTo : from === null ? null : from + end;
    pending += 1;
    term.write(piece, () => {
      if (gen !== generation) return;
      pending -= 1;
      if (ends !== null) consumed(ends);
      if (pending === 0) flushGathered(gen);
    });
  }
}

/**
 * Output up to `upTo` is dealt with: drawn, or taken by a file transfer
 * (which confirms each chunk to the sending program itself, so it cannot
 * run far ahead). Acknowledges it every ACK_BYTES, and when xterm's queue
 * has emptied (`drained`): not for every small frame a transfer takes.
 */
function consumed(upTo, drained = true) {
  processed = Math.max(processed, upTo);
  if (processed - acked >= ACK_BYTES || (drained && pending === 0)) {
    acked = processed;
    sendControl({ type: 'ack', bytes: processed });
  }
}

function socketUrl() {
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  url.searchParams.set('rows', term.rows);
  url.searchParams.set('cols', term.cols);
  if (viewing) {
    url.searchParams.set('view', viewing.id);
  } else {
    url.searchParams.set('resumable', '1');
    if (session) url.searchParams.set('resume', session.id);
    // With several replicas, a new session starts on the one that served
    // this page, wherever the balancer sends the socket.
    else if (config.node) url.searchParams.set('node', config.node);
    // A per-user idle timeout, from this page's own URL (the server clamps it).
    const asked = params.get('idle_timeout');
    if (asked) url.searchParams.set('idle_timeout', asked);
    // Arguments for the command (?arg.host=...), passed on as they are: the
    // server takes only the names its operator allowed (--url-arg), and a
    // resumed session keeps the ones it started with.
    for (const [key, value] of params) {
      if (key.startsWith('arg.')) url.searchParams.append(key, value);
    }
  }
  return url.toString();
}

function connect() {
  clearTimeout(reconnectTimer);
  ws?.close();
  // Output that came before this reconnect is part of what we have.
  flushGathered(generation);
  generation += 1;
  const gen = generation;
  // What we already have of the session we are resuming: after a network
  // blip on this page, everything received; after a refresh, nothing.
  const have = session ? received : 0;
  pending = 0;
  ending = null;
  lastSize = { rows: term.rows, cols: term.cols };
  setState('connecting', 'connecting…'); // forgets countdowns: a draining server repeats its own

  let opened = false;
  const sock = openSocket(socketUrl(), [PROTOCOL], {
    open: () => onOpen(),
    message: (data) => {
      if (gen !== generation) return;
      if (typeof data === 'string') {
        // Control keeps its place in the stream: output before it first.
        flushGathered(gen);
        onControl(JSON.parse(data));
      } else {
        onOutput(new Uint8Array(data), gen);
      }
    },
    close: (ev) => {
      if (gen !== generation) return;
      onClosed(ev, opened);
    },
  });
  ws = sock;
  function onOpen() {
    opened = true;
    attempts = 0;
    stats.connects += 1;
    stats.extensions = sock.extensions;
    // A socket that names a session proves its right to it first.
    if (viewing) sock.send(JSON.stringify({ type: 'view', token: viewing.token }));
    else if (session) sock.send(JSON.stringify({ type: 'resume', token: session.token, have }));
    setState(viewing ? 'viewing' : 'connected', viewing ? 'read-only view' : 'connected');
    sendControl({ type: 'ack', bytes: 0 }); // we acknowledge: turn the window on
    reportSize(); // in case the window changed while connecting
    term.focus();
  }
}

function onSetup(msg) {
  stats.lastSetup = msg;
  const continues = msg.resumed && msg.offset === received && shown;
  if (!continues) {
    transfer?.stop();
    // A different stream from what is on screen: a new session, or history
    // replayed from a line boundary. Start from a clean terminal.
    if (shown) term.reset();
    shown = false;
  }
  received = msg.offset;
  processed = msg.offset;
  acked = msg.offset;
  setReadOnly(!!(msg.viewer || msg.readonly));
  if (msg.viewer) return;
  if (msg.resume_token) {
    session = { id: msg.session, token: msg.resume_token, view: msg.view_token };
    sessionStorage.setItem(SAVED, JSON.stringify(session));
    shareButton.disabled = !session.view;
  }
  if (msg.resumed) stats.resumes_ok = (stats.resumes_ok || 0) + 1;
}

function secondsUntil(end) {
  return Math.max(0, Math.ceil((end - Date.now()) / 1000));
}

function formatSeconds(s) {
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

// The idle warning comes first: a key answers it, and the drain's banner
// (if any) comes back.
function drawWarning() {
  if (idleEnds !== null) {
    setState('warning', `No input for a while: this session ends in ${secondsUntil(idleEnds)}s. Press any key to keep it.`);
  } else if (drainEnds !== null) {
    setState('warning', `This server restarts in ${formatSeconds(secondsUntil(drainEnds))}: your session ends then.`);
  }
}

// kind: 'idle' or 'drain'.
function showWarning(kind, seconds) {
  const end = Date.now() + seconds * 1000;
  if (kind === 'idle') idleEnds = end;
  else drainEnds = end;
  clearInterval(warningTimer);
  drawWarning();
  warningTimer = setInterval(() => {
    if (state === 'warning') drawWarning();
  }, 1000);
}

// Clears the idle warning (activity came).
function clearWarning() {
  if (idleEnds === null) return;
  idleEnds = null;
  if (drainEnds !== null) {
    if (state === 'warning') drawWarning();
  } else if (state === 'warning') {
    setState('connected', 'connected');
  } else {
    stopCountdowns();
  }
}

function stopCountdowns() {
  clearInterval(warningTimer);
  warningTimer = null;
  idleEnds = null;
  drainEnds = null;
}

function onControl(msg) {
  switch (msg.type) {
    case 'setup':
      onSetup(msg);
      break;
    case 'idle_warning':
      showWarning('idle', msg.seconds_left);
      break;
    case 'drain':
      showWarning('drain', msg.seconds_left);
      break;
    case 'idle_warning_cleared':
      clearWarning();
      break;
    case 'exit':
      ending = msg.signal
        ? `the program was killed by signal ${msg.signal}`
        : `the program exited with code ${msg.code}`;
      break;
    case 'notice':
      if (msg.kind === 'resume_failed') forgetSession();
      else ending = msg.message;
      break;
    default:
      break;
  }
}

// Which closes are worth retrying by themselves: the network or the server
// went away. An exit, an idle timeout, a refusal or a server error (1011:
// say, a command that cannot start) is the user's to restart; retrying
// those would only start, and fail, a new session every second.
const RETRY = new Set([CLOSE.GOING_AWAY, CLOSE.ABNORMAL, CLOSE.KEEPALIVE_TIMEOUT]);
// Closes after which this tab's session is gone for good.
const FINAL = new Set([
  CLOSE.NORMAL, CLOSE.GOING_AWAY, CLOSE.INTERNAL_ERROR, CLOSE.IDLE_TIMEOUT,
  CLOSE.KILLED, CLOSE.NO_SUCH_SESSION, CLOSE.OWNER_GONE,
]);

async function onClosed(ev, opened) {
  transfer?.stop(); // its input could no longer reach the program
  let why = ending || ev.reason || describeCode(ev.code);
  if (FINAL.has(ev.code) && !viewing) forgetSession();
  if (ev.code === CLOSE.REPLACED) {
    setState('closed', 'This session was taken over by another window.', 'Take it back (Enter)');
    return;
  }
  if (!opened) {
    // Browsers hide why a handshake failed; the probes tell a refusal
    // (origin, authentication, proxy) from a server that is going away
    // (draining or shutting down: it takes no new sessions) and from an
    // unreachable one.
    const probe = (path) => fetch(path, { cache: 'no-store' }).then((r) => r.ok).catch(() => false);
    const [healthy, ready] = await Promise.all([probe('healthz'), probe('readyz')]);
    if (!healthy) why = 'the server is unreachable';
    else if (!ready) why = 'the server is restarting and takes no new sessions';
    else why = 'the server refused the terminal (origin or proxy settings; see the server log)';
  }
  const retry = RETRY.has(ev.code) && attempts < BACKOFF_MS.length * 3;
  if (retry) {
    const delay = BACKOFF_MS[Math.min(attempts, BACKOFF_MS.length - 1)];
    attempts += 1;
    setState('closed', `${why}: reconnecting in ${Math.round(delay / 1000)}s…`, 'Reconnect now (Enter)');
    reconnectTimer = setTimeout(connect, delay);
  } else {
    setState('closed', `Session ended: ${why}.`, 'Start a new session (Enter)');
  }
}

function describeCode(code) {
  switch (code) {
    case CLOSE.NORMAL: return 'closed';
    case CLOSE.GOING_AWAY: return 'the server is shutting down';
    case CLOSE.ABNORMAL: return 'the connection was lost';
    case CLOSE.MESSAGE_TOO_BIG: return 'a message was too big';
    case CLOSE.TRY_AGAIN_LATER: return 'too many sessions';
    case CLOSE.IDLE_TIMEOUT: return 'idle timeout';
    case CLOSE.REPLACED: return 'taken over by another window';
    case CLOSE.NO_SUCH_SESSION: return 'no such session';
    case CLOSE.OWNER_GONE: return 'the server holding this session is gone';
    default: return `closed (code ${code})`;
  }
}

// ---- phones and tablets ----

const keysEl = document.getElementById('keys');
const keys = extraKeys(keysEl, {
  send(bytes) {
    if (readOnly) keyDropped();
    else if (state !== 'closed') term.input(bytes, true);
  },
  appCursor: () => term.modes.applicationCursorKeysMode,
});

function showKeys() {
  const want = settings.keys === 'show' || (settings.keys === 'auto' && touchDevice());
  if (keysEl.hidden === !want) return;
  keysEl.hidden = !want;
  refit();
}

// The on-screen keyboard covers the bottom of the layout viewport on
// browsers that do not resize it (iOS Safari; Chrome on Android does, asked
// by the viewport meta tag): follow the visual viewport, so the terminal and
// the keys row sit above the keyboard. Not while pinch-zoomed.
const viewport = window.visualViewport;
function followViewport() {
  const root = document.documentElement.style;
  if (viewport && Math.abs(viewport.scale - 1) < 0.01) {
    root.setProperty('--viewport-height', `${viewport.height}px`);
    root.setProperty('--viewport-top', `${viewport.offsetTop}px`);
  } else {
    root.removeProperty('--viewport-height');
    root.removeProperty('--viewport-top');
  }
}
viewport?.addEventListener('resize', followViewport);
viewport?.addEventListener('scroll', followViewport);
followViewport();

// ---- read-only ----

// A shared view, or a server started with --readonly: the bar says so, and a
// key that goes nowhere says so too, instead of vanishing.
let readOnly = !!viewing;
const badge = document.getElementById('badge');

function setReadOnly(on) {
  readOnly = on;
  term.options.disableStdin = on;
  badge.hidden = !on;
  badge.textContent = viewing ? 'read-only view' : 'read-only';
  document.getElementById('paste').hidden = on || !(navigator.clipboard && navigator.clipboard.readText);
}
setReadOnly(readOnly);

function keyDropped() {
  stats.dropped = (stats.dropped || 0) + 1;
  note(viewing
    ? 'Read-only view: your keys are not sent.'
    : 'This terminal is read-only (the server runs with --readonly): your keys are not sent.');
}

document.getElementById('terminal').addEventListener('paste', () => {
  if (readOnly) keyDropped();
}, true);

// ---- input, resize, clipboard, title ----

term.onData((data) => {
  if (state === 'closed' || readOnly) return;
  if (state === 'warning') clearWarning();
  const text = keys.consume(data);
  if (transfer) transfer.input(text); // which ignores keys during a transfer, but Ctrl-C ends it
  else sendInput(encoder.encode(text));
});
term.onBinary((data) => {
  if (state === 'closed' || readOnly) return;
  if (transfer) {
    transfer.binary(data);
    return;
  }
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i += 1) bytes[i] = data.charCodeAt(i) & 0xff;
  sendInput(bytes);
});
term.onResize(() => reportSize());
term.onTitleChange((title) => {
  document.title = title || 'webterm';
  document.getElementById('title').textContent = title || 'webterm';
});

let fitQueued = false;
function refit() {
  if (fitQueued) return;
  fitQueued = true;
  requestAnimationFrame(() => {
    fitQueued = false;
    fit.fit();
  });
}
new ResizeObserver(refit).observe(document.getElementById('terminal'));

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain http on a LAN is not a secure context: no async clipboard there.
    const had = document.activeElement;
    const area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
    (had && had !== document.body ? had : term.textarea).focus();
  }
}

// Pasting. Every paste reaches the shell through one door: xterm's own paste
// handler on its textarea, which turns newlines into CR and wraps the text
// in ESC[200~ ... ESC[201~ when the program asked for bracketed paste. The
// browser's native paste event feeds it for Ctrl+Shift+V, the context menu's
// Paste (xterm moves its textarea under the pointer on a right click for
// that) and the middle click of Linux desktops; the page reads the clipboard
// itself only where no paste event came, so nothing is pasted twice.
let pasteEventSeen = false;
let shortcutPasteOpen = false;
document.getElementById('terminal').addEventListener('paste', () => {
  pasteEventSeen = true;
}, true);

async function pasteFromClipboard() {
  try {
    const text = await navigator.clipboard.readText();
    if (text) term.paste(text);
  } catch (e) {
    console.info('clipboard read not allowed here; use the browser menu', e?.message || e);
  }
}

// Selecting copies; the search's own selection of its match does not (nor
// its refresh of the match while output arrives and the search has the keys).
let searching = false;
term.onSelectionChange(() => {
  if (searching || searchForm.contains(document.activeElement)) return;
  if (term.hasSelection()) copyText(term.getSelection());
});
term.attachCustomKeyEventHandler((ev) => {
  const shortcut = ev.ctrlKey && ev.shiftKey && !ev.altKey && !ev.metaKey;
  // Ctrl+Shift+V: xterm must not turn it into ^V, and the browser's default
  // action is the paste we want, so let it happen. If the key comes back up
  // and no paste event came (a browser without the shortcut), read the
  // clipboard instead, once.
  if (ev.code === 'KeyV' && ev.type === 'keyup' && shortcutPasteOpen) {
    shortcutPasteOpen = false;
    if (!pasteEventSeen) pasteFromClipboard();
    return false;
  }
  if (ev.code === 'KeyV' && shortcut) {
    if (ev.type === 'keydown') {
      pasteEventSeen = false;
      shortcutPasteOpen = true;
    }
    return false;
  }
  if (ev.type !== 'keydown') return true;
  if (state === 'closed') {
    // Enter starts again; nothing else goes anywhere.
    if (ev.key === 'Enter') connect();
    return false;
  }
  // Font zoom: Ctrl+= / Ctrl++, Ctrl+-, Ctrl+0 (Cmd on a Mac). Ctrl+Shift+-
  // is Ctrl+_ (readline's undo) and still reaches the shell.
  const zoomKey = (ev.ctrlKey || ev.metaKey) && !ev.altKey;
  if (zoomKey && ['=', '+', '-', '0'].includes(ev.key)) {
    ev.preventDefault(); // not the browser's page zoom
    zoom(ev.key === '0' ? 0 : ev.key === '-' ? -1 : 1);
    return false;
  }
  if (!shortcut) {
    if (readOnly && !['Shift', 'Control', 'Alt', 'Meta', 'CapsLock', 'AltGraph'].includes(ev.key)) keyDropped();
    return true;
  }
  if (ev.code === 'KeyF') {
    ev.preventDefault();
    openSearch();
    return false;
  }
  if (ev.code === 'KeyC') {
    ev.preventDefault(); // Chromium would open its developer tools
    if (term.hasSelection()) copyText(term.getSelection());
    return false;
  }
  return true;
});
statusAction.addEventListener('click', () => connect());

// ---- the menu ----

const $ = (id) => document.getElementById(id);

function renderMenu() {
  $('font-size').textContent = `${settings.fontSize}px`;
  $('font-smaller').disabled = settings.fontSize <= FONT_MIN;
  $('font-larger').disabled = settings.fontSize >= FONT_MAX;
  $('theme').querySelector('option[value="server"]').hidden = !(operator.theme && typeof operator.theme === 'object');
  $('theme').value = settings.theme;
  $('renderer').value = renderer;
  $('screen-reader').checked = settings.screenReader;
  $('keys-mode').value = settings.keys;
  $('paste').hidden = readOnly || !(navigator.clipboard && navigator.clipboard.readText);
}

function openMenu() {
  renderMenu();
  menuEl.hidden = false;
  menuButton.setAttribute('aria-expanded', 'true');
  menuEl.querySelector('button:not([disabled]):not([hidden]), select, input')?.focus();
}

function closeMenu(refocus = true) {
  if (menuEl.hidden) return;
  menuEl.hidden = true;
  menuButton.setAttribute('aria-expanded', 'false');
  if (refocus) term.focus();
}

menuButton.addEventListener('click', () => (menuEl.hidden ? openMenu() : closeMenu()));
menuEl.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') {
    ev.preventDefault();
    closeMenu();
  }
});
document.addEventListener('pointerdown', (ev) => {
  if (!menuEl.hidden && !menuEl.contains(ev.target) && !menuButton.contains(ev.target)) closeMenu(false);
});
$('font-smaller').addEventListener('click', () => zoom(-1));
$('font-larger').addEventListener('click', () => zoom(1));
$('theme').addEventListener('change', (ev) => choose('theme', ev.target.value === 'server' ? undefined : ev.target.value));
$('renderer').addEventListener('change', (ev) => {
  webglBroken = null; // picked by hand: try again
  choose('renderer', ev.target.value);
});
$('screen-reader').addEventListener('change', (ev) => choose('screenReader', ev.target.checked));
$('keys-mode').addEventListener('change', (ev) => choose('keys', ev.target.value === 'auto' ? undefined : ev.target.value));
$('reset-settings').addEventListener('click', () => {
  choices = {};
  choose('fontSize', undefined);
  note('Settings are back to the defaults.');
});
$('reconnect').addEventListener('click', () => {
  closeMenu();
  connect();
});
$('paste').addEventListener('click', () => {
  closeMenu();
  pasteFromClipboard();
});
shareButton.addEventListener('click', async () => {
  if (!session?.view) return;
  const link = new URL(location.href);
  link.search = '';
  link.hash = `view=${session.id}.${session.view}`;
  await copyText(link.toString());
  closeMenu();
  note('Read-only link copied.');
});
// ---- search in the scrollback ----

const searchForm = $('search');
const searchInput = $('search-input');
const searchButton = $('search-button');

function searchOptions() {
  const light = document.documentElement.dataset.theme === 'light';
  return {
    caseSensitive: $('search-case').checked,
    decorations: {
      matchBackground: light ? '#fff0a8' : '#5c4d00',
      matchBorder: light ? '#7a5c00' : '#e5c07b',
      matchOverviewRuler: light ? '#7a5c00' : '#e5c07b',
      activeMatchBackground: light ? '#ffb74d' : '#a35200',
      activeMatchBorder: light ? '#1f1f1f' : '#ffffff',
      activeMatchColorOverviewRuler: light ? '#1f1f1f' : '#ffffff',
    },
  };
}

function openSearch() {
  closeMenu(false);
  const selected = term.getSelection();
  if (selected && !selected.includes('\n')) searchInput.value = selected;
  if (searchForm.hidden) {
    searchForm.hidden = false;
    searchButton.setAttribute('aria-pressed', 'true');
  }
  searchInput.focus();
  searchInput.select();
  if (searchInput.value) {
    term.clearSelection();
    find(true);
  }
}

function closeSearch() {
  if (searchForm.hidden) return;
  searchForm.hidden = true;
  searchButton.setAttribute('aria-pressed', 'false');
  search.clearDecorations();
  $('search-count').textContent = '';
  term.focus();
}

function find(backwards) {
  const text = searchInput.value;
  if (!text) {
    search.clearDecorations();
    $('search-count').textContent = '';
    return;
  }
  searching = true;
  let found;
  try {
    found = backwards ? search.findPrevious(text, searchOptions()) : search.findNext(text, searchOptions());
  } finally {
    searching = false;
  }
  if (!found) $('search-count').textContent = 'no match';
}

search.onDidChangeResults(({ resultIndex, resultCount }) => {
  $('search-count').textContent = resultCount === 0
    ? 'no match'
    : resultIndex >= 0 ? `${resultIndex + 1} of ${resultCount}` : `${resultCount}+ matches`;
});
searchButton.addEventListener('click', () => (searchForm.hidden ? openSearch() : closeSearch()));
// Searching goes back in time: from the newest output up into the
// scrollback. Typing starts again from the bottom.
searchInput.addEventListener('input', () => {
  term.clearSelection();
  find(true);
});
// Enter, and the ↑ button: the form's submit.
searchForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  find(true);
});
$('search-newer').addEventListener('click', () => find(false));
$('search-case').addEventListener('change', () => {
  term.clearSelection();
  find(true);
});
$('search-close').addEventListener('click', () => closeSearch());
searchForm.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') {
    ev.preventDefault();
    closeSearch();
  } else if (ev.key === 'Enter' && ev.shiftKey) {
    ev.preventDefault();
    find(false);
  } else if (ev.code === 'KeyF' && ev.ctrlKey && ev.shiftKey) {
    ev.preventDefault();
    searchInput.select();
  }
});

window.addEventListener('keydown', (ev) => {
  // Enter restarts even when the terminal does not have focus.
  if (state === 'closed' && ev.key === 'Enter' && document.activeElement !== term.textarea) connect();
});

// ---- one tab, one shell: "Duplicate tab" ----

// Duplicating a tab copies its sessionStorage, reattach token included: the
// copy would resume the same session and take the shell away from the
// original (which gets 4003). Each live page keeps a marker in its
// sessionStorage and removes it on pagehide, which a reload or a navigation
// fires first. So a page that finds the marker at start is a copy of a live
// page (or the restore of one that crashed): it asks the other pages of this
// origin, on a BroadcastChannel, whether one of them holds its session. If
// one answers, this page starts a session of its own; if none does within
// ASK_MS (a crash, a restored browser), it resumes. A plain reload asks
// nothing and waits for nothing.
const ALIVE = 'webterm.alive';
const ASK_MS = 1000;
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(`webterm:${location.pathname}`) : null;
channel?.addEventListener('message', (ev) => {
  const msg = ev.data;
  if (msg?.type === 'who-has' && session && msg.id === session.id) {
    channel.postMessage({ type: 'has', id: msg.id, nonce: msg.nonce });
  }
});

function heldElsewhere(id) {
  if (!channel) return Promise.resolve(false);
  const nonce = Math.random().toString(36).slice(2);
  return new Promise((resolve) => {
    const done = (answer) => {
      clearTimeout(timer);
      channel.removeEventListener('message', onMessage);
      resolve(answer);
    };
    const onMessage = (ev) => {
      if (ev.data?.type === 'has' && ev.data.nonce === nonce) done(true);
    };
    const timer = setTimeout(() => done(false), ASK_MS);
    channel.addEventListener('message', onMessage);
    channel.postMessage({ type: 'who-has', id, nonce });
  });
}

function markAlive() {
  try {
    sessionStorage.setItem(ALIVE, '1');
  } catch {
    // No storage: no reattach either.
  }
}
addEventListener('pagehide', () => sessionStorage.removeItem(ALIVE));
addEventListener('pageshow', (ev) => {
  if (ev.persisted) markAlive(); // back from the back/forward cache
});

if (session && sessionStorage.getItem(ALIVE) && (await heldElsewhere(session.id))) {
  forgetSession();
  stats.copy = true;
  note('This tab is a copy of another one: it has a session of its own.');
}
markAlive();

// ---- file transfer ----

// trz and tsz (trzsz), unless the server turned it off; not in a shared
// view, whose input goes nowhere.
if (config.file_transfer && !viewing) {
  try {
    transfer = await fileTransfer({
      term,
      limit: config.file_transfer.max_upload ?? null,
      send: (bytes) => {
        if (state === 'warning') clearWarning();
        sendInput(bytes);
      },
      note,
      bar: document.getElementById('transfer'),
      dropTarget: document.getElementById('terminal'),
      stats,
    });
  } catch (e) {
    console.warn('file transfer unavailable:', e?.message || e);
  }
}

// ---- start ----

renderMenu();
showKeys();
fit.fit();
connect();

// For the browser tests and for anyone debugging in the console.
window.webterm = {
  term,
  search,
  images,
  IMAGE_LIMITS,
  stats,
  get state() {
    return state;
  },
  get renderer() {
    return renderer;
  },
  get viewing() {
    return !!viewing;
  },
  get readOnly() {
    return readOnly;
  },
  keys,
  get session() {
    return session;
  },
  get transfer() {
    return transfer ? { on: true, active: transfer.active } : { on: false, active: false };
  },
  get flow() {
    return { pending, received, processed, acked };
  },
  get socketPlace() {
    return socketPlace();
  },
  get status() {
    return statusText.textContent;
  },
  get settings() {
    return { ...settings };
  },
  text() {
    const buf = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buf.length; i += 1) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  },
};
