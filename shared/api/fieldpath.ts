// Field paths name a node inside an API object in messages and line look-ups:
// `spec.etcdClusters[0].etcdMembers[1].instanceGroup`. Keys that are not plain
// identifiers (label keys such as `kops.k8s.io/cluster`) are written in
// brackets as JSON strings: `metadata.labels["kops.k8s.io/cluster"]`.

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** Extends a path by keys and indexes, quoting keys that need it. */
export function joinPath(base: string, ...segments: PathSegment[]): string {
  let path = base;
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) path += path === '' ? segment : `.${segment}`;
    else path += `[${JSON.stringify(segment)}]`;
  }
  return path;
}

/** The inverse of joinPath. Throws on syntax it did not write. */
export function parsePath(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let rest = path;
  while (rest !== '') {
    if (rest.startsWith('.')) rest = rest.slice(1);
    const index = /^\[(\d+)\]/.exec(rest);
    const quoted = /^\[("(?:[^"\\]|\\.)*")\]/.exec(rest);
    const plain = /^[^.[\]]+/.exec(rest);
    if (index) {
      segments.push(Number(index[1]));
      rest = rest.slice(index[0].length);
    } else if (quoted) {
      segments.push(JSON.parse(quoted[1]) as string);
      rest = rest.slice(quoted[0].length);
    } else if (plain) {
      segments.push(plain[0]);
      rest = rest.slice(plain[0].length);
    } else {
      throw new Error(`malformed field path ${JSON.stringify(path)}`);
    }
  }
  return segments;
}
