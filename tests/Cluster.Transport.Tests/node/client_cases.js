// grpc-js as a client of our server: every case prints one JSON line {case, ok, detail}.
// The target host:port comes as argv[2] or on stdin. Each case is bounded by a deadline so the script cannot hang.
const { grpc, pkg } = require('./protos');

const target = process.argv[2] || require('fs').readFileSync(0, 'utf8').trim();
const plain = new pkg.cluster.v1.Echo(target, grpc.credentials.createInsecure());
const gzip = new pkg.cluster.v1.Echo(target, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
const health = new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
const deadline = (ms = 10000) => ({ deadline: new Date(Date.now() + ms) });
const MB = 1024 * 1024;

const unary = (client, method, req, md = new grpc.Metadata(), opts = deadline()) =>
  new Promise((resolve, reject) => client[method](req, md, opts, (err, res) => (err ? reject(err) : resolve(res))));

function pattern(n) { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 7) % 256; return b; }

function expectCode(promise, code) {
  return promise.then(
    (r) => { throw new Error('expected code ' + code + ' but the call succeeded'); },
    (e) => { if (e.code !== code) throw new Error(`expected code ${code}, got ${e.code}: ${e.details}`); return e; });
}

function check(cond, msg) { if (!cond) throw new Error(msg); }

const cases = {
  async unary() {
    const r = await unary(plain, 'unary', { text: 'héllo', payload: Buffer.from([0, 1, 2, 255]) });
    check(r.text === 'héllo' && Buffer.compare(r.payload, Buffer.from([0, 1, 2, 255])) === 0, 'echo mismatch');
  },
  async serverStream() {
    const call = plain.serverStream({ text: 's', count: 5 }, deadline());
    const got = [];
    for await (const m of call) got.push(m.index);
    check(JSON.stringify(got) === '[0,1,2,3,4]', 'got ' + JSON.stringify(got));
  },
  async clientStream() {
    const r = await new Promise((resolve, reject) => {
      const call = plain.clientStream(deadline(), (err, res) => (err ? reject(err) : resolve(res)));
      for (const t of ['a', 'b', 'c', 'd']) call.write({ text: t, payload: Buffer.alloc(10) });
      call.end();
    });
    check(r.text === 'abcd' && r.index === 4 && r.payload.toString() === '40', 'got ' + JSON.stringify(r));
  },
  async bidi() {
    const call = plain.bidi(deadline());
    const got = [];
    const done = new Promise((resolve, reject) => {
      call.on('data', (m) => { got.push(m.text + m.index); if (got.length < 3) call.write({ text: 'm' + got.length }); else call.end(); });
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write({ text: 'm0' });
    await done;
    check(JSON.stringify(got) === '["m00","m11","m22"]', 'got ' + JSON.stringify(got));
  },
  async deadlineExceeded() {
    const t0 = Date.now();
    await expectCode(unary(plain, 'unary', { delayMs: 5000 }, new grpc.Metadata(), deadline(200)), grpc.status.DEADLINE_EXCEEDED);
    check(Date.now() - t0 < 3000, 'took ' + (Date.now() - t0) + ' ms');
  },
  async cancelMidStream() {
    const call = plain.bidi(deadline());
    await new Promise((resolve, reject) => {
      call.on('data', () => resolve());
      call.on('error', reject);
      call.write({ text: 'first' });
    });
    // The server handler is inside a slow request when the cancel arrives, so only the reset can end it.
    call.write({ text: 'slow', delayMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    const err = await new Promise((resolve) => { call.on('error', resolve); call.cancel(); });
    check(err.code === grpc.status.CANCELLED, 'code ' + err.code);
    await new Promise((r) => setTimeout(r, 300));
  },
  async errorWithBinaryMetadata() {
    const md = new grpc.Metadata();
    const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
    md.add('echo-bin', bin);
    const text = 'precondition failed: ünïcode 100% 日本';
    const e = await expectCode(unary(plain, 'unary', { text, failCode: 9 }, md), 9);
    check(e.details === text, 'details ' + JSON.stringify(e.details));
    const back = e.metadata.get('echo-bin');
    check(back.length === 1 && Buffer.compare(back[0], bin) === 0, 'echo-bin ' + JSON.stringify(back));
  },
  async threeMegabytes() {
    const p = pattern(3 * MB);
    const r = await unary(plain, 'unary', { payload: p });
    check(Buffer.compare(r.payload, p) === 0, 'payload differs');
  },
  async overLimitRequest() {
    const client = new pkg.cluster.v1.Echo(target, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * MB });
    await expectCode(unary(client, 'unary', { payload: pattern(5 * MB) }), grpc.status.RESOURCE_EXHAUSTED);
  },
  async overLimitReply() {
    await expectCode(unary(plain, 'unary', { replySize: 5 * MB }), grpc.status.RESOURCE_EXHAUSTED);
  },
  async gzip() {
    const p = Buffer.alloc(200000, 'abcabcabc');
    const r = await unary(gzip, 'unary', { text: 'z', payload: p });
    check(Buffer.compare(r.payload, p) === 0, 'payload differs');
    const call = gzip.bidi(deadline());
    const got = [];
    await new Promise((resolve, reject) => {
      call.on('data', (m) => got.push(m.payload.length));
      call.on('end', resolve);
      call.on('error', reject);
      call.write({ payload: p }); call.write({ payload: p }); call.end();
    });
    check(got.length === 2 && got[0] === p.length, 'got ' + JSON.stringify(got));
  },
  async healthCheck() {
    const r = await unary(health, 'check', { service: '' });
    check(r.status === 'SERVING', 'status ' + r.status);
    const r2 = await unary(health, 'check', { service: 'cluster.v1.Echo' });
    check(r2.status === 'NOT_SERVING', 'echo status ' + r2.status);
    await expectCode(unary(health, 'check', { service: 'no.such.Service' }), grpc.status.NOT_FOUND);
  },
  async healthWatch() {
    const call = health.watch({ service: 'cluster.v1.Echo' }, deadline());
    const first = await new Promise((resolve, reject) => { call.on('data', resolve); call.on('error', reject); });
    call.cancel();
    check(first.status === 'NOT_SERVING', 'watch status ' + first.status);
  },
  async unimplemented() {
    const Generic = grpc.makeGenericClientConstructor({
      nope: { path: '/cluster.v1.Echo/Nope', requestStream: false, responseStream: false,
        requestSerialize: (x) => x, requestDeserialize: (x) => x, responseSerialize: (x) => x, responseDeserialize: (x) => x },
    });
    const c = new Generic(target, grpc.credentials.createInsecure());
    await expectCode(unary(c, 'nope', Buffer.alloc(0)), grpc.status.UNIMPLEMENTED);
  },
  async tensorExchange() {
    const t = new pkg.cluster.v1.TensorStream(target, grpc.credentials.createInsecure());
    const call = t.exchange(deadline());
    const got = [];
    await new Promise((resolve, reject) => {
      call.on('data', (f) => got.push(`${f.batchId}:${f.layer}:${f.payload.length}`));
      call.on('end', resolve);
      call.on('error', reject);
      for (let i = 0; i < 3; i++) call.write({ batchId: i, layer: 7, shape: [2, 4], dtype: 'TENSOR_DTYPE_F32', payload: Buffer.alloc(32, i) });
      call.end();
    });
    check(JSON.stringify(got) === '["0:7:32","1:7:32","2:7:32"]', 'got ' + JSON.stringify(got));
  },
};

(async () => {
  const only = process.env.CASE;
  for (const [name, run] of Object.entries(cases)) {
    if (only && name !== only) continue;
    try { await run(); console.log(JSON.stringify({ case: name, ok: true })); }
    catch (e) { console.log(JSON.stringify({ case: name, ok: false, detail: String(e && e.message || e) })); }
  }
  process.exit(0);
})();
