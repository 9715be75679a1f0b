// Diagnostic of the built binary, hidden behind `mooring-agents
// __selftest-etcd3`: etcd3 parses its .proto files when it is loaded, which
// in a single executable works only if the build embedded them. With an
// endpoint, also put, get and delete one key over real gRPC.
// Usage: mooring-agents __selftest-etcd3 [http://127.0.0.1:2379]
import { randomBytes } from 'node:crypto';

export async function main(argv: string[]): Promise<number> {
  const { Etcd3 } = await import('etcd3');
  const endpoint = argv[0];
  if (endpoint === undefined) {
    // Loading etcd3 already parsed the protos; a client proves the services exist.
    new Etcd3({ hosts: 'http://127.0.0.1:1' }).close();
    process.stdout.write(`${JSON.stringify({ protosLoaded: true })}\n`);
    return 0;
  }
  const client = new Etcd3({ hosts: endpoint, dialTimeout: 5_000 });
  try {
    const key = `mooring-selftest/${randomBytes(6).toString('hex')}`;
    const value = `ok-${Date.now()}`;
    await client.put(key).value(value);
    const got = await client.get(key).string();
    await client.delete().key(key);
    const ok = got === value;
    process.stdout.write(`${JSON.stringify({ protosLoaded: true, endpoint, roundTrip: ok })}\n`);
    return ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`__selftest-etcd3: ${endpoint}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}
