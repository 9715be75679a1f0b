// Defaults nodeup's command line shows in --help; kept apart from nodeup.ts so
// that --help and --version load nothing of the run itself.
export const DEFAULT_CACHE = '/var/cache/nodeup';
