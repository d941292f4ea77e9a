// The e2e tests' API service: plain Node http, routes with known behaviour.
//   GET  /users/:id         200, small JSON (Content-Length); /pre/:id too
//   GET  /slow?ms=N         200 after setTimeout(N); the body reports the
//                           time the server really waited (timers can fire
//                           ~1 ms early)
//   GET  /chunked           200, chunked: three writes spread over ~20 ms
//   GET  /error             500
//   GET  /empty             204, no body
//   POST /upload            200, echoes the byte count of the body
//   GET  /big?kb=N          200, an N KiB body
//   GET  /hold              never answers (clients abort it)
// Prints "ready PORT" once listening.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const p = url.pathname;
  if (req.method === 'POST' && p === '/upload') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(JSON.stringify({ bytes: n })));
    return;
  }
  if (p.startsWith('/users/') || p.startsWith('/pre/')) {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ id: p.slice(7) }));
  } else if (p === '/slow') {
    const ms = Number(url.searchParams.get('ms') || 100);
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      const waited = Number(process.hrtime.bigint() - t0) / 1e6;
      res.end(JSON.stringify({ waited_ms: waited }));
    }, ms);
  } else if (p === '/chunked') {
    res.write('first ');
    setTimeout(() => res.write('second '), 10);
    setTimeout(() => res.end('third'), 20);
  } else if (p === '/error') {
    res.statusCode = 500;
    res.end('boom');
  } else if (p === '/empty') {
    res.statusCode = 204;
    res.end();
  } else if (p === '/big') {
    const kb = Number(url.searchParams.get('kb') || 64);
    res.end(Buffer.alloc(kb * 1024, 'x'));
  } else if (p === '/hold') {
    // never answer
  } else {
    res.statusCode = 404;
    res.end('not found');
  }
});
server.keepAliveTimeout = 30000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log('ready ' + server.address().port);
});
