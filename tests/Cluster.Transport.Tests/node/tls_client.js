// grpc-js over TLS against our server. stdin: {"target": "localhost:port", "ca": "<PEM>"}.
// Prints one JSON line {echo, health} or exits 1 with the error.
const { grpc, pkg } = require('./protos');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const creds = grpc.credentials.createSsl(Buffer.from(input.ca));
const deadline = () => ({ deadline: new Date(Date.now() + 10000) });
const echo = new pkg.cluster.v1.Echo(input.target, creds);
const health = new pkg.grpc.health.v1.Health(input.target, creds);
const call = (client, method, req) => new Promise((resolve, reject) =>
  client[method](req, new grpc.Metadata(), deadline(), (err, res) => (err ? reject(err) : resolve(res))));

(async () => {
  const r = await call(echo, 'unary', { text: 'over tls' });
  const h = await call(health, 'check', { service: '' });
  console.log(JSON.stringify({ echo: r.text, health: h.status }));
  process.exit(0);
})().catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });
