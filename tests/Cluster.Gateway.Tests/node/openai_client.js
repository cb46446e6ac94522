// Drives the gateway with the official openai client: a streamed chat completion, the same request whole, the
// model list, and an error. Input on stdin: {"baseURL": "...", "model": "...", "question": "...", "maxTokens": N}.
// Prints one JSON object with what the client saw.
const OpenAI = require("openai");

async function main() {
  const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const client = new OpenAI({ baseURL: input.baseURL, apiKey: "not-needed", maxRetries: 0 });
  const request = {
    model: input.model,
    messages: [{ role: "user", content: input.question }],
    max_tokens: input.maxTokens,
    temperature: 0,
  };

  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let content = "", role = null, finishReason = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      if (choice.delta.content) content += choice.delta.content;
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  }

  const whole = await client.chat.completions.create(request);
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);

  let error = null;
  try {
    await client.chat.completions.create({ ...request, model: "no-such-model" });
  } catch (e) {
    error = { status: e.status, code: e.code, param: e.param, type: e.type, isNotFound: e instanceof OpenAI.NotFoundError };
  }

  console.log(JSON.stringify({
    streamed: { content, role, finishReason, usage, chunks },
    whole: { content: whole.choices[0].message.content, finishReason: whole.choices[0].finish_reason, usage: whole.usage },
    models,
    error,
  }));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
