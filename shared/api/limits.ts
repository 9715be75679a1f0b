// Size limits on input, apart from the parser so a CLI's --help can name them
// without loading YAML.

/** The largest spec or config text read: kOps specs are tens of KiB; megabytes are a mistake or an attack. */
export const MAX_SPEC_BYTES = 4 * 1024 * 1024;
export const MAX_SPEC_SIZE_TEXT = '4 MiB';
