// The page's WebSocket, held in a worker: see socket.mjs for why.
//
// One socket at a time per page, each under the number the page gave it.
// Output goes back as the ArrayBuffer it arrived in, transferred, not
// copied; everything else is posted as it is.

const sockets = new Map();

self.onmessage = ({ data: msg }) => {
  const ws = sockets.get(msg.id);
  switch (msg.op) {
    case 'open':
      open(msg.id, msg.url, msg.protocols);
      break;
    case 'send':
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(msg.data);
      break;
    case 'close':
      if (ws) {
        sockets.delete(msg.id);
        ws.onclose = null;
        ws.onmessage = null;
        ws.close();
      }
      break;
    default:
      break;
  }
};

function open(id, url, protocols) {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  sockets.set(id, ws);
  ws.onopen = () => self.postMessage({ id, ev: 'open', extensions: ws.extensions });
  ws.onmessage = ({ data }) => {
    if (typeof data === 'string') self.postMessage({ id, ev: 'message', data });
    else self.postMessage({ id, ev: 'message', data }, [data]);
  };
  ws.onclose = ({ code, reason, wasClean }) => {
    sockets.delete(id);
    self.postMessage({ id, ev: 'close', code, reason, wasClean });
  };
}
