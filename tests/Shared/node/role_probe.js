// What an operator's standard tools ask every role: a grpc.health.v1 Check (as Kubernetes' grpc probe and
// grpc_health_probe do) and a server reflection listing (as grpcurl list does), with grpc-js.
// stdin: one "host:port" per line. stdout: one JSON line per target: {"target","health","services"} or {"target","error"}.
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const definition = loader.loadSync(['grpc/health/v1/health.proto', 'grpc/reflection/v1alpha/reflection.proto'],
  { includeDirs: [path.resolve(__dirname, '../protos')], defaults: true, keepCase: false, enums: String });
const pkg = grpc.loadPackageDefinition(definition);

function check(target) {
  const client = new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service: '' }, { deadline: Date.now() + 10000 }, (err, reply) => {
      client.close();
      err ? reject(err) : resolve(reply.status);
    }));
}

function listServices(target) {
  const client = new pkg.grpc.reflection.v1alpha.ServerReflection(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo({ deadline: Date.now() + 10000 });
    call.on('data', (reply) => {
      if (reply.errorResponse) reject(new Error(reply.errorResponse.errorMessage));
      else resolve(reply.listServicesResponse.service.map((s) => s.name).sort());
      call.end();
    });
    call.on('error', reject);
    call.on('end', () => client.close());
    call.write({ listServices: '' });
  });
}

async function main() {
  const input = require('fs').readFileSync(0, 'utf8');
  for (const target of input.split('\n').map((l) => l.trim()).filter((l) => l.length > 0)) {
    try {
      const health = await check(target);
      const services = await listServices(target);
      console.log(JSON.stringify({ target, health, services }));
    } catch (e) {
      console.log(JSON.stringify({ target, error: `${e.code ?? ''} ${e.message}` }));
    }
  }
}

main();
