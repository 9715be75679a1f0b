// A static file server for the nspawn e2e test, started inside the test's own
// network namespace (ip netns exec), listening on its 127.0.0.1 only. Prints
// "listening" once ready and one line per request.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';

const [dir, port] = process.argv.slice(2);
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
  console.log(`request ${path}`);
  try {
    const body = await readFile(join(dir, path));
    res.writeHead(200, { 'content-length': body.length }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
