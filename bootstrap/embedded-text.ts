// Text files that ship inside the agent binary (user-data template, systemd
// units). One mechanism for both ways the code runs:
// - from source (tsx / tap): read from the repo, relative to this module;
// - bundled (scripts/build-binaries.mjs): esbuild replaces this whole module
//   with one holding the same files as string constants, so the single
//   executable needs no file next to it.
// The list in embedded-files.json is what the build embeds; reading a path not
// on it fails here too, so source runs cannot depend on a file the binary lacks.
import { readFileSync } from 'node:fs';
import embeddedFiles from './embedded-files.json' with { type: 'json' };

export function readEmbeddedText(repoPath: string): string {
  if (!embeddedFiles.includes(repoPath)) {
    throw new Error(`${repoPath} is not listed in bootstrap/embedded-files.json, so the built binary would not have it`);
  }
  return readFileSync(new URL(`../${repoPath}`, import.meta.url), 'utf8');
}
