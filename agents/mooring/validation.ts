// Turns validation problems into one error whose message lists each problem on its own line.
import { validateCluster } from '../../shared/api/validate.js';
import type { ParsedObject } from '../../shared/api/parse.js';
import type { Cluster, InstanceGroup } from '../../shared/api/types.js';
import { ExitCode, UserError } from '../../shared/errors.js';

export function requireValid(cluster: ParsedObject | Cluster, instanceGroups: Array<ParsedObject | InstanceGroup>): void {
  const problems = validateCluster(cluster, instanceGroups);
  if (problems.length === 0) return;
  throw new UserError(problems.map((p) => p.message).join('\n'), ExitCode.InvalidSpec);
}
