// File transfer through the terminal with trzsz: `trz` in the shell uploads
// files the user picks (or drops on the terminal), `tsz FILE` downloads.
// The protocol is in-band: trz and tsz print a magic string, and trzsz's
// filter, sitting between the socket and xterm.js, takes over the stream
// until the transfer ends. The server only relays terminal bytes.
//
// trzsz picks and saves files with the File System Access API, which only
// Chromium has, and only on https or localhost, while webterm is often
// reached over plain http on a LAN. So the page gives trzsz pickers of its
// own, made of what every browser has: an <input type=file> for uploads and
// a download link for each received file. A file input opens only with a
// user gesture: when `trz` runs without a recent key press, a bar above
// the terminal asks for the click. The upload limit (--max-upload) is
// checked here, before anything is sent.

const CHUNK = 1024 * 1024; // most file bytes in flight per trzsz chunk (trzsz waits for each to be confirmed)
const DROP_START_MS = 20000; // how long a drop waits for `trz` to start in the shell
const TYPED_MS = 5000; // a picker opens by itself this soon after the user typed (Chromium's activation lasts 5 s)

/** The size as people read it: 64 MiB, 1.5 GiB, 900 KiB. */
export function formatSize(n) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}

const MAGIC = new TextEncoder().encode('::TRZSZ:TRANSFER:');

/** Whether a message holds the start of trzsz's magic (`trz` or `tsz` beginning). */
function mayStartTransfer(bytes) {
  for (let at = bytes.indexOf(0x3a); at >= 0 && bytes.length - at >= MAGIC.length; at = bytes.indexOf(0x3a, at + 1)) {
    let i = 1;
    while (i < MAGIC.length && bytes[at + i] === MAGIC[i]) i += 1;
    if (i === MAGIC.length) return true;
  }
  return false;
}

function aborted() {
  return new DOMException('cancelled', 'AbortError');
}

/**
 * Sets up file transfer. `send(bytes)` sends terminal input; `note(text)`
 * tells the user something. Returns the filter's entry points for the page.
 */
export async function fileTransfer({ term, limit, send, note, bar, dropTarget, stats }) {
  const { TrzszFilter } = await import('trzsz');
  // trzsz shows its own errors to the shell as plain messages and anything
  // else as a stack trace. Its error class is not exported; an options
  // check throws one, which gives it.
  let TrzszError = Error;
  try {
    new TrzszFilter({}); // eslint-disable-line no-new
  } catch (e) {
    if (e instanceof Error && e.name === 'TrzszError') TrzszError = e.constructor;
  }
  const encoder = new TextEncoder();
  const label = bar.querySelector('.text');
  const chooseButton = bar.querySelector('.choose');
  const cancelButton = bar.querySelector('.cancel');
  let asking = null; // the open request for files: { open, cancel }
  let drawNow = null; // while the filter handles a chunk of output: draws it with that chunk's flow control
  let typedAt = -Infinity; // when the user last typed into the terminal

  // ---- pickers ----

  function tooLarge(total) {
    return limit !== null && total > limit;
  }
  function refuse(total) {
    stats.refused = (stats.refused || 0) + 1;
    note(`Not uploaded: ${limitError(total).message}.`);
  }
  function limitError(total) {
    return new TrzszError(`${formatSize(total)} is more than this server's upload limit of ${formatSize(limit)} (--max-upload)`);
  }

  /** Lets the user choose files (or a directory): at once after a key press, else from the bar. */
  function chooseFiles(directory) {
    return new Promise((resolve, reject) => {
      const input = document.createElement('input');
      input.type = 'file';
      input.multiple = true;
      input.webkitdirectory = directory;
      input.hidden = true;
      document.body.append(input);
      const done = () => {
        input.remove();
        closeBar();
      };
      input.addEventListener('change', () => {
        done();
        resolve([...input.files]);
      });
      input.addEventListener('cancel', () => {
        done();
        reject(aborted());
      });
      const open = () => input.click();
      asking = {
        open,
        cancel() {
          done();
          reject(aborted());
        },
      };
      // Straight to the picker when the user just typed (trz, Enter) and
      // the browser agrees; otherwise, a bar asks, so nothing pops up out of
      // the blue and the click is there to open it.
      if (performance.now() - typedAt < TYPED_MS && navigator.userActivation?.isActive !== false) {
        open();
      } else {
        stats.transferAsks = (stats.transferAsks || 0) + 1;
        label.textContent = directory ? 'The shell asks for a folder to upload.' : 'The shell asks for files to upload.';
        chooseButton.textContent = directory ? 'Choose a folder…' : 'Choose files…';
        bar.hidden = false;
        chooseButton.focus();
      }
    });
  }

  function closeBar() {
    asking = null;
    if (!bar.hidden) {
      bar.hidden = true;
      term.focus();
    }
  }
  chooseButton.addEventListener('click', () => asking?.open());
  cancelButton.addEventListener('click', () => asking?.cancel());
  bar.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') asking?.cancel();
  });

  const fileHandle = (file, name = file.name) => ({ kind: 'file', name, getFile: async () => file });

  /** A directory handle over files chosen with webkitdirectory, from their relative paths. */
  function directoryOf(files) {
    const dir = (name) => {
      const entries = new Map();
      return {
        kind: 'directory',
        name,
        entries,
        async *values() {
          yield* entries.values();
        },
        async getFileHandle(n) {
          return entries.get(n);
        },
        async getDirectoryHandle(n) {
          return entries.get(n);
        },
      };
    };
    const parts0 = (files[0]?.webkitRelativePath || '').split('/');
    const root = dir(parts0[0] || 'upload');
    for (const file of files) {
      const parts = file.webkitRelativePath.split('/').slice(1);
      let at = root;
      for (const part of parts.slice(0, -1)) {
        if (!at.entries.has(part)) at.entries.set(part, dir(part));
        at = at.entries.get(part);
      }
      at.entries.set(parts[parts.length - 1], fileHandle(file, parts[parts.length - 1]));
    }
    return root;
  }

  /** Where downloads go: each received file becomes a download of the browser's. */
  const downloads = {
    kind: 'directory',
    name: "the browser's downloads",
    async *values() {},
    async getFileHandle(name) {
      return {
        kind: 'file',
        name,
        async createWritable() {
          const parts = [];
          return {
            async write(data) {
              parts.push(new Blob([data])); // a Blob may live on disk, not in the page's memory
            },
            async close() {
              save(new Blob(parts), name);
            },
          };
        },
      };
    },
    async getDirectoryHandle() {
      throw new Error('the page saves files one at a time: send a folder as an archive (tar czf x.tgz DIR; tsz x.tgz)');
    },
  };

  function save(blob, name) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    stats.downloads = (stats.downloads || 0) + 1;
    // The download has its own reference by now; this only frees the page's.
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  // trzsz reaches these through window (see the top of this file).
  window.showOpenFilePicker = async () => {
    const files = await chooseFiles(false);
    const total = files.reduce((n, f) => n + f.size, 0);
    if (tooLarge(total)) {
      refuse(total);
      throw limitError(total);
    }
    return files.map((f) => fileHandle(f));
  };
  window.showDirectoryPicker = async (options = {}) => {
    if (options.mode === 'readwrite') return downloads; // tsz: where to save
    const files = await chooseFiles(true); // trz -d: what to send
    const total = files.reduce((n, f) => n + f.size, 0);
    if (tooLarge(total)) {
      refuse(total);
      throw limitError(total);
    }
    if (!files.length) throw aborted();
    return directoryOf(files);
  };

  // ---- the filter ----

  const filter = new TrzszFilter({
    writeToTerminal(data) {
      if (drawNow) drawNow(data);
      else term.write(typeof data === 'string' || data instanceof Uint8Array ? data : new Uint8Array(data));
    },
    sendToServer(data) {
      send(typeof data === 'string' ? encoder.encode(data) : data);
    },
    terminalColumns: term.cols,
    maxDataChunkSize: CHUNK,
    dragInitTimeout: DROP_START_MS,
  });
  term.onResize(({ cols }) => filter.setTerminalColumns(cols));

  // ---- dropping files on the terminal ----

  const fileEntry = (file) => ({ isFile: true, isDirectory: false, name: file.name, file: (ok) => ok(file) });

  /** Total size of what was dropped, walking folders. */
  async function sizeOf(entries) {
    let total = 0;
    for (const entry of entries) {
      if (entry.isFile) {
        total += await new Promise((resolve, reject) => entry.file((f) => resolve(f.size), reject));
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          total += await sizeOf(batch);
        }
      }
    }
    return total;
  }

  /** What trzsz's uploadFiles takes (a DataTransferItemList), over entries taken while the drop lasted. */
  function itemList(entries) {
    const list = Object.create(DataTransferItemList.prototype);
    Object.defineProperty(list, Symbol.iterator, {
      value: function* items() {
        for (const entry of entries) yield { webkitGetAsEntry: () => entry };
      },
    });
    return list;
  }

  let dropping = false;
  const wantsDrop = (ev) => ev.dataTransfer?.types.includes('Files');
  dropTarget.addEventListener('dragover', (ev) => {
    if (!wantsDrop(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
    dropTarget.classList.add('dropping');
  });
  dropTarget.addEventListener('dragleave', () => dropTarget.classList.remove('dropping'));
  dropTarget.addEventListener('drop', async (ev) => {
    if (!wantsDrop(ev)) return;
    ev.preventDefault();
    dropTarget.classList.remove('dropping');
    // The dropped items can be read only during this event: take them now.
    const entries = [];
    for (const item of ev.dataTransfer.items) {
      if (item.kind !== 'file') continue;
      const entry = item.webkitGetAsEntry?.() || (item.getAsFile() && fileEntry(item.getAsFile()));
      if (entry) entries.push(entry);
    }
    if (!entries.length) return;
    if (dropping || filter.isTransferringFiles()) {
      note('A transfer is already running.');
      return;
    }
    dropping = true;
    try {
      const total = await sizeOf(entries);
      if (tooLarge(total)) {
        refuse(total);
        return;
      }
      stats.drops = (stats.drops || 0) + 1;
      // trzsz interrupts whatever runs (Ctrl-C) and types `trz` at the prompt.
      await filter.uploadFiles(itemList(entries));
    } catch (e) {
      note(`Upload failed: ${e?.message || e}. Dropped files need a shell prompt and trz installed.`);
    } finally {
      dropping = false;
    }
  });

  return {
    /**
     * Output from the server. `draw(data)` writes to the terminal with this
     * chunk's flow control; `swallowed()` says the chunk will never be
     * drawn (the transfer took it), so it counts as processed at once.
     */
    output(bytes, draw, swallowed) {
      if (filter.isTransferringFiles()) {
        filter.processServerOutput(bytes);
        swallowed();
        return;
      }
      // trzsz arms a timer for every message to look for its magic later.
      // A message without the magic's start goes straight to the terminal;
      // trzsz looks within one message too, so it would find nothing there.
      // While a dropped upload starts, trzsz watches the echo of `trz`.
      if (!dropping && !mayStartTransfer(bytes)) {
        draw(bytes);
        return;
      }
      let drew = false;
      drawNow = (data) => {
        drew = true;
        draw(data);
      };
      try {
        filter.processServerOutput(bytes);
      } finally {
        drawNow = null;
      }
      if (!drew) swallowed();
    },
    /** What the user typed, as xterm's onData gives it. */
    input(text) {
      typedAt = performance.now();
      if (asking && text.includes('\x03')) asking.cancel();
      filter.processTerminalInput(text);
    },
    /** xterm's onBinary input. */
    binary(text) {
      filter.processBinaryInput(text);
    },
    /** The connection went away: a transfer cannot go on. */
    stop() {
      asking?.cancel();
      filter.stopTransferringFiles();
    },
    get active() {
      return filter.isTransferringFiles();
    },
  };
}
