// otlp_decode.js - decode an OTLP export request (protobuf, on stdin) and
// print it as JSON, with the protobufjs decoders that
// @opentelemetry/otlp-transformer generates from the upstream .proto files:
// a decoder independent of katascope's protobuf-c code, for the e2e tests.
//   node otlp_decode.js          ExportMetricsServiceRequest
//   node otlp_decode.js traces   ExportTraceServiceRequest
// 64-bit integers are printed as decimal strings, bytes as hex (trace and
// span ids as the W3C traceparent writes them), enums by name, oneofs with
// their member name.
'use strict';
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');

const collector = root.opentelemetry.proto.collector;
const Req = process.argv[2] === 'traces'
  ? collector.trace.v1.ExportTraceServiceRequest
  : collector.metrics.v1.ExportMetricsServiceRequest;
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const msg = Req.decode(Buffer.concat(chunks));
  const obj = Req.toObject(msg, { longs: String, enums: String, oneofs: true,
                                  arrays: true, defaults: false,
                                  bytes: String });
  const ids = new Set(['traceId', 'spanId', 'parentSpanId']);
  process.stdout.write(JSON.stringify(obj, (k, v) =>
    ids.has(k) ? Buffer.from(v, 'base64').toString('hex') : v) + '\n');
});
