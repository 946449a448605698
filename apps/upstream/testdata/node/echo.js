// An upstream WebSocket server written with Node's ws, as its README
// shows: echoes every message with its type; "/headers" answers with the
// handshake's headers as JSON; "/close CODE REASON" closes with them;
// "/big N" sends N bytes. The first offered subprotocol is chosen.
//
//   node echo.js [--deflate]    prints "listening on PORT"
'use strict';
const { WebSocketServer } = require('ws');

const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  handleProtocols: (protocols) => (protocols.size ? protocols.values().next().value : false),
});
wss.on('connection', (ws, req) => {
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === '/headers') {
      ws.send(JSON.stringify(req.headers));
    } else if (text !== null && text.startsWith('/close ')) {
      const [, code, ...reason] = text.split(' ');
      ws.close(Number(code), reason.join(' '));
    } else if (text !== null && text.startsWith('/big ')) {
      ws.send(Buffer.alloc(Number(text.slice(5)), 'x'), { binary: true });
    } else if (text === '/ext') {
      ws.send(ws.extensions || '');
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('close', (code, reason) => {
    console.log('closed ' + code + ' ' + reason.toString());
  });
});
wss.on('listening', () => console.log('listening on ' + wss.address().port));
