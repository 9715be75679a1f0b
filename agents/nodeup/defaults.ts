// Defaults nodeup's command line shows in --help; kept apart from nodeup.ts so
// that --help and --version load nothing of the run itself.
export const DEFAULT_CACHE = '/var/cache/nodeup';
/** An asset mirror that sends no byte for this long is given up (--asset-stall-timeout). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
