// Exports a small trace with the OpenTelemetry JS SDK's own OTLP exporters, for the receiver tests.
//
//   node export.cjs <http-json|grpc> <endpoint> [bearer token] [ca.pem]
//
// Uses the OpenTelemetry packages installed for tests/node/vercel-ai (found through NODE_PATH).
// Prints one JSON line: the span ids the SDK assigned and the export result code (0 = success).
'use strict';

const fs = require('node:fs');
const { context, trace, SpanKind, SpanStatusCode } = require('@opentelemetry/api');
const { NodeTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [mode, endpoint, token, caFile] = process.argv.slice(2);
const headers = token ? { authorization: `Bearer ${token}` } : {};

function makeExporter() {
  if (mode === 'http-json') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter({ url: endpoint, headers });
  }
  if (mode === 'grpc') {
    const grpc = require('@grpc/grpc-js');
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    const credentials = caFile
      ? grpc.credentials.createSsl(fs.readFileSync(caFile))
      : grpc.credentials.createInsecure();
    return new OTLPTraceExporter({ url: endpoint, metadata, credentials });
  }
  throw new Error(`unknown mode ${mode}`);
}

async function main() {
  const exporter = makeExporter();
  let resultCode = null;
  const recording = {
    export(spans, done) {
      exporter.export(spans, (result) => {
        resultCode = result.code;
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush(),
  };
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-svc', 'deployment.environment': 'test' }),
    spanProcessors: [new SimpleSpanProcessor(recording)],
  });
  const tracer = provider.getTracer('node.tests', '3.1.4');

  const linked = tracer.startSpan('linked');
  linked.end();
  const root = tracer.startSpan('agent', {
    kind: SpanKind.SERVER,
    attributes: {
      str: 'hello',
      int: 42,
      negative: -7,
      double: 0.5,
      bool: true,
      strs: ['a', 'b'],
      nums: [1, 2, 3],
      bools: [true, false],
    },
  });
  root.addEvent('step', { n: 1, note: 'first' });
  const child = tracer.startSpan(
    'tool',
    { kind: SpanKind.CLIENT, links: [{ context: linked.spanContext(), attributes: { why: 'retry' } }] },
    trace.setSpan(context.active(), root),
  );
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  child.end();
  root.end();
  let error = null;
  try {
    await provider.forceFlush();
    await provider.shutdown();
  } catch (flushError) {
    error = String(flushError.message || flushError); // a refused export: reported, not a crash
  }
  process.stdout.write(
    JSON.stringify({
      traceId: root.spanContext().traceId,
      root: root.spanContext().spanId,
      child: child.spanContext().spanId,
      linked: linked.spanContext().spanId,
      linkedTraceId: linked.spanContext().traceId,
      resultCode,
      error,
    }) + '\n',
  );
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
