// Binary assets the model needs, looked up by file name in the node config
// (`assets.<arch>`: sha256@url1,url2). A missing one becomes a failing task that
// names what is missing, so the rest of the node is still configured; one the
// mirror leaves out on purpose (`assetsLeftOut`) becomes a skipped task.
import { AssetTask, type AssetInstall } from '../tasks/asset.js';
import { LeftOutTask, UnsatisfiableTask } from '../tasks/missing.js';
import type { Task } from '../engine/task.js';
import { assetsByName, type ModelInput } from './context.js';

export function assetTask(input: ModelInput, fileName: string, install: AssetInstall): Task {
  const found = assetsByName(input).get(fileName);
  if (found) return new AssetTask(found, install);
  const where = install.kind === 'file' ? install.path : install.dir;
  const leftOut = input.nodeConfig.assetsLeftOut?.[input.host.arch as 'amd64' | 'arm64']?.[fileName];
  if (leftOut !== undefined) return new LeftOutTask(`Asset:${where}`, `${fileName}: ${leftOut}`);
  return new UnsatisfiableTask(
    `Asset:${where}`,
    `the node config lists no asset named ${fileName} for ${input.host.arch} (assets.${input.host.arch} wants sha256@url entries)`,
  );
}

/** Whether the node config names this asset at all: listed, or left out of the mirror on purpose. */
export function assetNamed(input: ModelInput, fileName: string): boolean {
  return assetsByName(input).has(fileName) || input.nodeConfig.assetsLeftOut?.[input.host.arch as 'amd64' | 'arm64']?.[fileName] !== undefined;
}
