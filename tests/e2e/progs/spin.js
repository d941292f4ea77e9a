// A Node process spinning in a named JavaScript function, for the
// profiler's JIT-frame test (run with or without --perf-basic-prof).
'use strict';
function katascopeSpinTarget(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return x;
}
console.log('ready');
let total = 0;
for (;;) total += katascopeSpinTarget(1e6);
