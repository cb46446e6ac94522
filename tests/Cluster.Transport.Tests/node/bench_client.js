// grpc-js as the client side of the transport benchmark, against the grpc-js echo_server.js.
// Usage: node bench_client.js <host:port> <bidi|unary> <payload bytes> <seconds> [concurrency]
// Prints one JSON line: {messages, bytes, seconds}.
const { grpc, pkg } = require('./protos');

const [target, mode, sizeArg, secondsArg, concurrencyArg] = process.argv.slice(2);
const size = Number(sizeArg), seconds = Number(secondsArg), concurrency = Number(concurrencyArg || 32);
const options = { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 };

async function bidi() {
  const client = new pkg.cluster.v1.TensorStream(target, grpc.credentials.createInsecure(), options);
  const frame = { batchId: 1, layer: 1, shape: [size], dtype: 'TENSOR_DTYPE_FP8_E4M3', payload: Buffer.alloc(size, 7) };
  const call = client.exchange();
  let received = 0, bytes = 0, sent = 0, stop = false;
  const start = process.hrtime.bigint();
  const done = new Promise((resolve, reject) => {
    call.on('data', (f) => { received++; bytes += f.payload.length; });
    call.on('end', resolve);
    call.on('error', reject);
  });
  setTimeout(() => { stop = true; }, seconds * 1000);
  // Keep writing while the stream accepts; wait for 'drain' when grpc-js pushes back.
  while (!stop) {
    if (!call.write(frame)) await new Promise((r) => call.once('drain', r));
    sent++;
    if (sent - received > 256) await new Promise((r) => setImmediate(r));
  }
  call.end();
  await done;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  client.close();
  return { messages: received, bytes, seconds: elapsed };
}

async function unary() {
  const client = new pkg.cluster.v1.Echo(target, grpc.credentials.createInsecure(), options);
  const req = { text: 'u', payload: Buffer.alloc(size, 1) };
  let calls = 0, stop = false;
  setTimeout(() => { stop = true; }, seconds * 1000);
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (!stop) {
      await new Promise((resolve, reject) => client.unary(req, (err, res) => (err ? reject(err) : resolve(res))));
      calls++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  client.close();
  return { messages: calls, bytes: calls * size, seconds: elapsed };
}

(mode === 'bidi' ? bidi() : unary()).then(
  (r) => { console.log(JSON.stringify(r)); process.exit(0); },
  (e) => { console.error(String(e)); process.exit(1); });
