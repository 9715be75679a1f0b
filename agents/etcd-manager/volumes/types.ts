// One interface for every volume provider: find the candidate volumes, claim
// exactly one of them for this instance, and make its filesystem usable.

export interface Volume {
  /** The provider's id (local: the image's base name; aws: vol-…). */
  id: string;
  /** Directory holding the volume's filesystem. */
  mountPoint: string;
  tags: Record<string, string>;
  /** The etcd member this volume belongs to, from the name tag (`<member>/<all members>`). */
  memberName: string;
  /** Every member named by the name tag, when it lists them. */
  allMembers: string[];
  /** Block device backing it, when there is one. */
  device?: string;
}

export interface VolumeProvider {
  readonly name: string;
  /**
   * Claims and mounts exactly one volume. Idempotent: a restarted manager gets
   * back the volume it already holds. Never lets two holders win the same volume.
   */
  acquire(): Promise<Volume>;
  /** Unmounts and gives the claim up (what an instance going away does to its volume). */
  release(): Promise<void>;
  /** This instance's private IP, where the provider knows it (aws: instance metadata); used when --address is not given. */
  localAddress?(): Promise<string>;
}

/** `key` or `key=value` filters, as --volume-tag takes them. */
export function matchesTags(tags: Record<string, string>, filters: string[]): boolean {
  return filters.every((filter) => {
    const eq = filter.indexOf('=');
    if (eq === -1) return Object.hasOwn(tags, filter);
    return tags[filter.slice(0, eq)] === filter.slice(eq + 1);
  });
}

/** kOps' name tag value: `<member>/<member1>,<member2>,…`; a bare `<member>` is accepted. */
export function parseNameTag(value: string | undefined): { memberName: string; allMembers: string[] } | undefined {
  if (!value) return undefined;
  const [member, all = ''] = value.split('/', 2);
  if (!member) return undefined;
  return { memberName: member, allMembers: all.split(',').filter((m) => m !== '') };
}
