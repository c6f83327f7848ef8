// Vercel AI SDK calls against a mock model, traced by the OpenTelemetry Node SDK and exported as OTLP/HTTP.
// The collector address comes from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the standard variable).
// Scenarios, one trace each: generateText with a tool round trip (two model calls and a tool call),
// streamText with usage, embedMany, generateText with images. Prints nothing but errors; exits non-zero on failure.
import { NodeSDK, tracing } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { embedMany, generateText, jsonSchema, simulateReadableStream, stepCountIs, streamText, tool } from 'ai';
import { MockEmbeddingModelV3, MockLanguageModelV3 } from 'ai/test';

const exporter = new OTLPTraceExporter();
const sdk = new NodeSDK({
  serviceName: 'vercel-weather-app',
  spanProcessors: [new tracing.SimpleSpanProcessor(exporter)],
});
sdk.start();

const usage = (input, output) => ({
  inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: output, text: output, reasoning: undefined },
});
const ANSWER = 'It is 18°C and sunny in Paris.';
const telemetry = (functionId) => ({
  isEnabled: true,
  functionId,
  metadata: { sessionId: 'session-42', userId: 'user-7' },
});

// Answers with a tool call until the prompt holds a tool result, then with text.
const weatherModel = new MockLanguageModelV3({
  provider: 'openai.chat',
  modelId: 'gpt-4o-mini',
  doGenerate: async ({ prompt }) => {
    const answered = prompt.some((m) => m.role === 'tool');
    if (!answered) {
      return {
        content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'get_weather', input: '{"city":"Paris"}' }],
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage: usage(20, 7),
        response: { id: 'resp-1', modelId: 'gpt-4o-mini-2024-07-18', timestamp: new Date(0) },
        warnings: [],
      };
    }
    return {
      content: [{ type: 'text', text: ANSWER }],
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: usage(31, 9),
      response: { id: 'resp-2', modelId: 'gpt-4o-mini-2024-07-18', timestamp: new Date(0) },
      warnings: [],
    };
  },
});

const streamingModel = new MockLanguageModelV3({
  provider: 'openai.chat',
  modelId: 'gpt-4o-mini',
  doStream: async () => ({
    stream: simulateReadableStream({
      chunks: [
        { type: 'response-metadata', id: 'resp-3', modelId: 'gpt-4o-mini-2024-07-18', timestamp: new Date(0) },
        { type: 'text-start', id: 't1' },
        { type: 'text-delta', id: 't1', delta: 'It is 18°C ' },
        { type: 'text-delta', id: 't1', delta: 'and sunny in Paris.' },
        { type: 'text-end', id: 't1' },
        { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(12, 9) },
      ],
    }),
  }),
});

const embeddingModel = new MockEmbeddingModelV3({
  provider: 'openai.embedding',
  modelId: 'text-embedding-3-small',
  doEmbed: async ({ values }) => ({
    embeddings: values.map((_, i) => [0.1 * i, 0.2, 0.3]),
    usage: { tokens: 4 },
    warnings: [],
  }),
});

const tools = {
  get_weather: tool({
    description: 'Current weather for a city.',
    inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
    execute: async () => '18C, sunny',
  }),
};

const asked = await generateText({
  model: weatherModel,
  system: 'Be terse.',
  prompt: 'Weather in Paris?',
  tools,
  stopWhen: stepCountIs(3),
  temperature: 0.2,
  experimental_telemetry: telemetry('weather-agent'),
});
if (asked.text !== ANSWER) throw new Error(`unexpected answer ${asked.text}`);

const streamed = streamText({
  model: streamingModel,
  prompt: 'Weather in Paris?',
  experimental_telemetry: telemetry('weather-stream'),
});
if ((await streamed.text) !== ANSWER) throw new Error('unexpected streamed answer');

await embedMany({
  model: embeddingModel,
  values: ['Paris', 'weather'],
  experimental_telemetry: telemetry('weather-embed'),
});

// Images: a link and inline PNG bytes (a file part with an image media type).
const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAACAAFUok9dAAAAAElFTkSuQmCC';
const describer = new MockLanguageModelV3({
  provider: 'openai.chat',
  modelId: 'gpt-4o-mini',
  // The model takes image links as they are (otherwise the SDK downloads them first).
  supportedUrls: { 'image/*': [/^https:\/\/.*$/] },
  doGenerate: async () => ({
    content: [{ type: 'text', text: ANSWER }],
    finishReason: { unified: 'stop', raw: 'stop' },
    usage: usage(40, 9),
    response: { id: 'resp-4', modelId: 'gpt-4o-mini-2024-07-18', timestamp: new Date(0) },
    warnings: [],
  }),
});
await generateText({
  model: describer,
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in these pictures?' },
        { type: 'image', image: new URL('https://example.com/cat.png') },
        { type: 'file', data: PNG_BASE64, mediaType: 'image/png' },
      ],
    },
  ],
  experimental_telemetry: telemetry('weather-vision'),
});

await sdk.shutdown();
