// The page's end of the WebSocket, which lives in a worker
// (socket.worker.mjs) wherever the browser lets it.
//
// Why a worker: on the main thread, the socket's messages wait their turn
// behind xterm.js, which parses and draws on that thread. During a flood
// that turn comes only between its parsing slices, so each slice gets only
// what arrived since the last, xterm.js's queue runs dry, and the page
// draws a frame per small bite of output. In a worker the socket reads on
// while the main thread parses, and hands over everything that came, in
// one go, as soon as the main thread is free (docs/performance.md, "The
// page's ceiling": the worker, large writes and a window sized by the
// page's own rate belong together).
//
// A browser without module workers, or a worker that cannot load (a
// proxy that blocks the file), gets the socket on the main thread, with
// the same calls: nothing else in the page knows which it has.

let worker = null;
let workerBroken = false;
let nextId = 1;
const live = new Map(); // id -> the socket's handle, while the worker has it

try {
  worker = new Worker(new URL('./socket.worker.mjs', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data: msg }) => live.get(msg.id)?.deliver(msg);
  worker.onerror = (ev) => {
    ev.preventDefault?.();
    giveUpOnWorker(`the socket worker failed (${ev.message || 'could not load'})`);
  };
} catch (e) {
  giveUpOnWorker(`no socket worker: ${e.message}`);
}

function giveUpOnWorker(why) {
  if (workerBroken) return;
  workerBroken = true;
  console.warn(`webterm: ${why}; the socket runs on the page's thread`);
  worker?.terminate();
  worker = null;
  // Sockets still connecting start again here, and their callers see one
  // connection; one that was open is lost with the worker, as a network
  // blip would lose it (the page reconnects and resumes).
  const handles = [...live.values()];
  live.clear();
  for (const handle of handles) {
    if (handle.open) handle.deliver({ ev: 'close', code: 1006, reason: '', wasClean: false });
    else handle.moveToPage();
  }
}

/** Where sockets run: 'worker', or 'page' once a worker could not. */
export function socketPlace() {
  return worker ? 'worker' : 'page';
}

/**
 * Opens a WebSocket. `on.open()`, `on.message(data)` (a string, or an
 * ArrayBuffer of output), `on.close({ code, reason, wasClean })`.
 * Returns `{ send(data), close(), open, extensions }`; after `close()`
 * nothing more is delivered.
 */
export function openSocket(url, protocols, on) {
  const id = nextId;
  nextId += 1;
  let state = 'connecting'; // 'open', 'closed'
  let direct = null; // the WebSocket, when it is on the page's thread

  const handle = {
    extensions: '', // what the server's handshake answer agreed to, once open
    get open() {
      return state === 'open';
    },
    send(data) {
      if (state !== 'open') return;
      if (direct) {
        direct.send(data);
      } else {
        // A view is posted with its whole buffer: send only its bytes.
        const own = ArrayBuffer.isView(data) && data.byteLength !== data.buffer.byteLength;
        worker.postMessage({ id, op: 'send', data: own ? data.slice() : data });
      }
    },
    close() {
      if (state === 'closed') return;
      state = 'closed';
      live.delete(id);
      if (direct) {
        direct.onclose = null;
        direct.onmessage = null;
        direct.close();
      } else {
        worker?.postMessage({ id, op: 'close' });
      }
    },
    deliver(msg) {
      if (state === 'closed') return;
      if (msg.ev === 'open') {
        state = 'open';
        handle.extensions = msg.extensions;
        on.open();
      } else if (msg.ev === 'message') {
        on.message(msg.data);
      } else if (msg.ev === 'close') {
        state = 'closed';
        live.delete(id);
        on.close(msg);
      }
    },
    moveToPage() {
      if (state === 'closed') return;
      direct = new WebSocket(url, protocols);
      direct.binaryType = 'arraybuffer';
      direct.onopen = () => handle.deliver({ ev: 'open', extensions: direct.extensions });
      direct.onmessage = ({ data }) => handle.deliver({ ev: 'message', data });
      direct.onclose = ({ code, reason, wasClean }) => handle.deliver({ ev: 'close', code, reason, wasClean });
    },
  };

  if (worker) {
    live.set(id, handle);
    worker.postMessage({ id, op: 'open', url, protocols });
  } else {
    handle.moveToPage();
  }
  return handle;
}
