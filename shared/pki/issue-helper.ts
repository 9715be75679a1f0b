// The child side of issue-batch.ts: `mooring-agents __issue-certificates`, run
// by an agent that must not load X.509 issuing itself. JSON { items } on stdin,
// JSON { issued } on stdout, a message on stderr and a non-zero exit otherwise.
import { isPair, issueInProcess, ISSUE_HELPER, type IssueItem } from './issue-batch.js';

/** The child: `mooring-agents __issue-certificates` (no arguments), JSON { items } in, JSON { issued } out. */
export async function main(argv: string[]): Promise<number> {
  if (argv.length > 0) {
    process.stderr.write(`${ISSUE_HELPER}: takes no arguments; it reads {"items":[{"ca":…,"request":…}]} on stdin\n`);
    return 2;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  let doc: { items?: unknown };
  try {
    doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { items?: unknown };
  } catch {
    // Not JSON.parse's own message: it quotes the input, which holds the CA's private key.
    throw new Error('stdin is not JSON');
  }
  if (!Array.isArray(doc.items)) throw new Error('stdin holds no "items" list');
  const items = doc.items as IssueItem[];
  for (const [i, item] of items.entries()) {
    if (!isPair(item?.ca) || typeof item.request?.commonName !== 'string') throw new Error(`item ${i} needs a ca {certPEM, keyPEM} and a request with a commonName`);
  }
  const issued = await issueInProcess(items);
  process.stdout.write(JSON.stringify({ issued }));
  return 0;
}
