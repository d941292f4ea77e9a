// Event-loop and GC workload for the Node runtime test (run with
// --expose-gc). Prints "ready", then obeys lines on stdin:
//   block MS   busy-wait MS milliseconds inside a timer callback
//   gc K       call gc() K times (major collections)
//   garbage    allocate short-lived objects (scavenges)
// and answers each with "done". Otherwise it idles with a 50 ms timer.
'use strict';
const readline = require('readline');
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
  } else if (cmd === 'garbage') {
    let keep = 0;
    for (let i = 0; i < 2e6; i++) keep += [i, i + 1, { i }].length;
    console.log('done ' + keep);
  }
});
console.log('ready');
