// The one way reading a v2 data directory in process gives up (v2-data-dir.ts
// and the modules it uses): the caller then serves the data with etcd itself.
export class CannotReadDirectly extends Error {}

export function fail(reason: string): never {
  throw new CannotReadDirectly(reason);
}
