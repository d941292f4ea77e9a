// Event-loop and GC workload for the Node runtime test (run with
// --expose-gc). Prints "ready", then obeys lines on stdin:
//   block MS   busy-wait MS milliseconds inside a timer callback
//   gc K       call gc() K times (major collections)
//   garbage    allocate short-lived objects (scavenges)
//   spin MS B P   for MS milliseconds, busy-wait B ms every P ms (a
//              timer), then answer "done U" with U the loop's utilization
//              over those MS as Node itself measures it
//              (performance.eventLoopUtilization)
// and answers each with "done". Otherwise it idles with a 50 ms timer.
'use strict';
const readline = require('readline');
const { performance } = require('perf_hooks');
setInterval(() => {}, 50);
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'block') {
    setTimeout(() => {
      const end = Date.now() + Number(arg);
      while (Date.now() < end) { /* spin */ }
      console.log('done');
    }, 0);
  } else if (cmd === 'gc') {
    for (let i = 0; i < Number(arg); i++) global.gc();
    console.log('done');
  } else if (cmd === 'spin') {
    const [, ms, busy, period] = line.trim().split(/\s+/).map(Number);
    const start = performance.eventLoopUtilization();
    const end = Date.now() + ms;
    const t = setInterval(() => {
      const until = Date.now() + busy;
      while (Date.now() < until) { /* spin */ }
      if (Date.now() >= end) {
        clearInterval(t);
        const u = performance.eventLoopUtilization(start).utilization;
        console.log('done ' + u.toFixed(4));
      }
    }, period);
  } else if (cmd === 'garbage') {
    let keep = 0;
    for (let i = 0; i < 2e6; i++) keep += [i, i + 1, { i }].length;
    console.log('done ' + keep);
  }
});
console.log('ready');
