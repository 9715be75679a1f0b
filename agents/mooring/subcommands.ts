// Which command groups get their subcommands built. Commander's set-up of a
// command and its options runs as plain interpreted code at every start, and
// the subcommands of create, get, update, delete, validate and local-cloud are
// most of it (about 8 ms of a `mooring --help`, bench/startup.ts). A group's
// subcommands are built only when its name is one of the arguments: commander
// can dispatch to a group, print its help or suggest one of its subcommands
// only when the group is named, so a group that is not named is only ever
// listed, and its line in the listing (name, options, arguments, description)
// is the group's own.

/** True when `group`'s subcommands may be used by this command line. */
export type NeedsSubcommands = (group: string) => boolean;

export function subcommandsNamedIn(argv: readonly string[]): NeedsSubcommands {
  const named = new Set(argv);
  return (group) => named.has(group);
}
