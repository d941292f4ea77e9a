// otlp_decode.js - decode an OTLP ExportMetricsServiceRequest (protobuf, on
// stdin) and print it as JSON, with the protobufjs decoders that
// @opentelemetry/otlp-transformer generates from the upstream .proto files:
// a decoder independent of katascope's protobuf-c code, for the e2e tests.
// 64-bit integers are printed as decimal strings, enums by name, oneofs
// with their member name.
'use strict';
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');

const Req = root.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const msg = Req.decode(Buffer.concat(chunks));
  const obj = Req.toObject(msg, { longs: String, enums: String, oneofs: true,
                                  arrays: true, defaults: false });
  process.stdout.write(JSON.stringify(obj) + '\n');
});
