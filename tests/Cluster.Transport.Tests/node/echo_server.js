// A grpc-js server of cluster.v1.Echo (same behaviour as EchoService) and cluster.v1.TensorStream (echo).
// Prints "PORT <n>" once listening and "CANCELLED <method>" when a handler sees its call cancelled;
// exits when stdin closes. argv[2] === 'gzip' makes it compress responses.
const { grpc, pkg, replyPayload } = require('./protos');

const out = (line) => process.stdout.write(line + '\n');

function failure(call, req) {
  if (!req.failCode) return null;
  const md = new grpc.Metadata();
  const echoed = call.metadata.get('echo-bin');
  if (echoed.length) md.add('echo-bin', echoed[0]);
  return { code: req.failCode, details: req.text, metadata: md };
}

function delay(call, ms) {
  return new Promise((resolve, reject) => {
    if (!ms) return resolve();
    const t = setTimeout(resolve, ms);
    call.on('cancelled', () => { clearTimeout(t); reject(new Error('cancelled')); });
  });
}

function watchCancel(call, name) { call.on('cancelled', () => out('CANCELLED ' + name)); }

const echo = {
  async unary(call, cb) {
    watchCancel(call, 'Unary');
    const req = call.request;
    try { await delay(call, req.delayMs); } catch { return; }
    const err = failure(call, req);
    if (err) return cb(err);
    cb(null, { text: req.text, payload: replyPayload(req) });
  },
  async serverStream(call) {
    watchCancel(call, 'ServerStream');
    const req = call.request;
    for (let i = 0; i < req.count; i++) {
      try { await delay(call, req.delayMs); } catch { return; }
      const err = failure(call, req);
      if (err) return call.emit('error', err);
      call.write({ text: req.text, payload: replyPayload(req), index: i });
    }
    call.end();
  },
  clientStream(call, cb) {
    watchCancel(call, 'ClientStream');
    let text = '', count = 0, bytes = 0, failed = false;
    call.on('data', (req) => {
      const err = failure(call, req);
      if (err && !failed) { failed = true; return cb(err); }
      text += req.text; count++; bytes += req.payload.length;
    });
    call.on('end', () => { if (!failed) cb(null, { text, index: count, payload: Buffer.from(String(bytes)) }); });
  },
  bidi(call) {
    watchCancel(call, 'Bidi');
    let i = 0;
    call.on('data', (req) => {
      const err = failure(call, req);
      if (err) return call.emit('error', err);
      call.write({ text: req.text, payload: replyPayload(req), index: i++ });
    });
    call.on('end', () => call.end());
  },
};

const tensor = {
  exchange(call) {
    watchCancel(call, 'Exchange');
    call.on('data', (frame) => call.write(frame));
    call.on('end', () => call.end());
  },
};

const options = { 'grpc.max_receive_message_length': 4 * 1024 * 1024 };
if (process.argv[2] === 'gzip') options['grpc.default_compression_algorithm'] = 2;
const server = new grpc.Server(options);
server.addService(pkg.cluster.v1.Echo.service, echo);
server.addService(pkg.cluster.v1.TensorStream.service, tensor);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) { process.stderr.write(String(err) + '\n'); process.exit(1); }
  out('PORT ' + port);
});
process.stdin.on('end', () => server.tryShutdown(() => process.exit(0)));
process.stdin.resume();
