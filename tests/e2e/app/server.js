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
// With PGPORT set (node-postgres, one connection, user postgres):
//   GET  /db/user/:id       SELECT ... FROM users WHERE id = $1 (extended)
//   GET  /db/count          SELECT count(*) FROM users (simple Query)
//   GET  /db/sleep?ms=N     SELECT pg_sleep($1) (extended)
//   GET  /db/insert         INSERT INTO users (name) VALUES ($1)
//   GET  /db/prepared/:id   a named prepared statement (Parse sent once)
//   GET  /db/bad            SELECT from a missing table: 42P01, answers 500
// With REDIS_PORT set (node-redis):
//   GET  /cache/get/:key    GET; answers hit or miss
//   GET  /cache/set/:key    SET key v
//   GET  /cache/multi       three GETs pipelined in one write (k1 k2 k3)
// With UPSTREAM_PORT set (an HTTP client of another instance):
//   GET  /proxy?path=P      GET P from the upstream on a fresh connection,
//                           answers with its status
// With TLS_CERT and TLS_KEY set (PEM files) it serves HTTPS instead.
// Prints "ready PORT" once listening.
'use strict';
const http = require('http');
const https = require('https');
const fs = require('fs');

let pg = null;
let redis = null;

async function connectBackends() {
  if (process.env.PGPORT) {
    const { Client } = require('pg');
    pg = new Client({ host: '127.0.0.1', port: Number(process.env.PGPORT),
                      user: 'postgres', database: 'postgres' });
    await pg.connect();
    await pg.query('CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text)');
    await pg.query("INSERT INTO users (name) SELECT 'user' || g FROM generate_series(1, 100) g");
  }
  if (process.env.REDIS_PORT) {
    const { createClient } = require('redis');
    redis = createClient({ url: 'redis://127.0.0.1:' + process.env.REDIS_PORT });
    await redis.connect();
  }
}

function fail(res, e) {
  res.statusCode = 500;
  res.end(JSON.stringify({ error: e.code || String(e) }));
}

async function backend(p, url, res) {
  if (p.startsWith('/db/user/')) {
    const r = await pg.query('SELECT id, name FROM users WHERE id = $1', [Number(p.slice(9))]);
    res.end(JSON.stringify(r.rows));
  } else if (p === '/db/count') {
    const r = await pg.query('SELECT count(*) FROM users');
    res.end(JSON.stringify(r.rows));
  } else if (p === '/db/sleep') {
    const ms = Number(url.searchParams.get('ms') || 100);
    await pg.query('SELECT pg_sleep($1)', [ms / 1000]);
    res.end('slept');
  } else if (p === '/db/insert') {
    await pg.query('INSERT INTO users (name) VALUES ($1)', ['someone']);
    res.end('ok');
  } else if (p.startsWith('/db/prepared/')) {
    const r = await pg.query({ name: 'user-by-id', text: 'SELECT name FROM users WHERE id = $1',
                               values: [Number(p.slice(13))] });
    res.end(JSON.stringify(r.rows));
  } else if (p === '/db/bad') {
    await pg.query('SELECT * FROM no_such_table');
  } else if (p.startsWith('/cache/get/')) {
    const v = await redis.get(p.slice(11));
    res.end(v === null ? 'miss' : 'hit');
  } else if (p.startsWith('/cache/set/')) {
    await redis.set(p.slice(11), 'v');
    res.end('ok');
  } else if (p === '/cache/multi') {
    const v = await Promise.all([redis.get('k1'), redis.get('k2'), redis.get('k3')]);
    res.end(JSON.stringify(v));
  } else {
    return false;
  }
  return true;
}

function handler(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const p = url.pathname;
  if (req.method === 'POST' && p === '/upload') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(JSON.stringify({ bytes: n })));
    return;
  }
  if (p === '/proxy') {
    const up = http.get({ host: '127.0.0.1', port: Number(process.env.UPSTREAM_PORT),
                          path: url.searchParams.get('path'), agent: false }, (ur) => {
      ur.resume();
      ur.on('end', () => { res.statusCode = ur.statusCode; res.end('proxied'); });
    });
    up.on('error', (e) => fail(res, e));
    return;
  }
  if (p.startsWith('/db/') || p.startsWith('/cache/')) {
    backend(p, url, res).then((done) => {
      if (!done) { res.statusCode = 404; res.end('not found'); }
    }, (e) => fail(res, e));
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
}
const server = process.env.TLS_CERT
  ? https.createServer({ cert: fs.readFileSync(process.env.TLS_CERT),
                         key: fs.readFileSync(process.env.TLS_KEY) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 30000;
connectBackends().then(() => {
  server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
    console.log('ready ' + server.address().port);
  });
}, (e) => { console.error(e); process.exit(1); });
