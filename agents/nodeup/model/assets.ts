// Binary assets the model needs, looked up by file name in the node config
// (`assets.<arch>`: sha256@url1,url2). A missing one becomes a failing task that
// names what is missing, so the rest of the node is still configured.
import { AssetTask, type AssetInstall } from '../tasks/asset.js';
import { UnsatisfiableTask } from '../tasks/missing.js';
import type { Task } from '../engine/task.js';
import { assetsByName, type ModelInput } from './context.js';

export function assetTask(input: ModelInput, fileName: string, install: AssetInstall): Task {
  const found = assetsByName(input).get(fileName);
  if (found) return new AssetTask(found, install);
  const where = install.kind === 'file' ? install.path : install.dir;
  return new UnsatisfiableTask(
    `Asset:${where}`,
    `the node config lists no asset named ${fileName} for ${input.host.arch} (assets.${input.host.arch} wants sha256@url entries)`,
  );
}
