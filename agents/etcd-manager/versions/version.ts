// etcd versions as the cluster spec names them ("3.4.23"): parsed once, strictly,
// with an error an operator can act on. Only etcd 2.x and 3.x are known: a
// version outside them is refused rather than guessed at, since running the wrong
// binary on a data directory can rewrite it in a way no older binary reads.

export type VersionErrorKind =
  /** Not of the form 3.4.23. */
  | 'invalid'
  /** Well formed, but no rule covers it (etcd 4, 3 → 2, between etcd 2 minors). */
  | 'unsupported'
  /** No binary for it in --etcd-binary-dir (nor the system one). */
  | 'no-binary';

export class VersionError extends Error {
  constructor(readonly kind: VersionErrorKind, message: string) {
    super(message);
    this.name = 'VersionError';
  }
}

export interface EtcdVersion {
  major: number;
  minor: number;
  patch: number;
  /** As written: "3.4.23". */
  text: string;
}

const FORM = /^(\d{1,4})\.(\d{1,4})\.(\d{1,6})$/;
/** etcd 2.x stores its data in the v2 store; 3.x in the v3 (mvcc) store. */
export const KNOWN_MAJORS = [2, 3] as const;

/** Parses "3.4.23"; `what` names the value in the error ("the cluster spec's etcdVersion"). */
export function parseEtcdVersion(text: string, what = 'etcd version'): EtcdVersion {
  const m = FORM.exec(text);
  if (!m) throw new VersionError('invalid', `${what} ${JSON.stringify(text)} is not a version like 3.4.23`);
  const version = { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text };
  if (!(KNOWN_MAJORS as readonly number[]).includes(version.major)) {
    throw new VersionError('unsupported', `${what} ${text}: only etcd 2.x and 3.x are known`);
  }
  return version;
}

/** Negative when a is older, 0 when equal, positive when newer. */
export function compareVersions(a: EtcdVersion, b: EtcdVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** True for etcd 2.x, whose data is the v2 store. */
export function isV2(version: EtcdVersion): boolean {
  return version.major === 2;
}

/** Whether this etcd serves the v2 API (with --enable-v2 from 3.4; 3.6 dropped it). */
export function servesV2API(version: EtcdVersion): boolean {
  return version.major === 2 || (version.major === 3 && version.minor <= 5);
}

/** Whether a cluster on this version (as the spec or a volume names it) keeps its data in the v2 store; false for a version that does not parse. */
export function runsV2(version: string | undefined): boolean {
  if (version === undefined) return false;
  try {
    return isV2(parseEtcdVersion(version));
  } catch {
    return false;
  }
}
