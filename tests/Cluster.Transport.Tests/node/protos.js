// Loads the repository's protos for grpc-js, the same files Cluster.Protos compiles, and the standard health
// protocol's definition (the servers use Grpc.HealthCheck's implementation of it).
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const root = path.resolve(__dirname, '../../../protos');
const standard = path.resolve(__dirname, '../../Shared/protos');
const definition = loader.loadSync(
  ['cluster/v1/echo.proto', 'cluster/v1/tensor_stream.proto', 'grpc/health/v1/health.proto'],
  { includeDirs: [root, standard], defaults: true, keepCase: false, enums: String });
const pkg = grpc.loadPackageDefinition(definition);

function replyPayload(req) {
  if (!req.replySize) return req.payload;
  const b = Buffer.alloc(req.replySize);
  for (let i = 0; i < b.length; i++) b[i] = i % 251;
  return b;
}

module.exports = { grpc, pkg, replyPayload };
