// systemctl, live or offline. On a booted machine nodeup talks to PID 1; with
// --root (image builds, tests) it uses `systemctl --root=DIR`, systemd's own
// offline mode, which edits the enablement symlinks without a running systemd.
import { existsSync } from 'node:fs';
import { execa } from 'execa';

/** True when nodeup can talk to a running systemd for this root. */
export function systemdIsLive(root: string): boolean {
  return root === '/' && existsSync('/run/systemd/system');
}

export async function systemctl(root: string, args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  const rootArgs = systemdIsLive(root) ? [] : [`--root=${root}`];
  const result = await execa('systemctl', [...rootArgs, ...args], { reject: false, ...(signal ? { cancelSignal: signal } : {}) });
  return { code: result.exitCode ?? 1, stdout: String(result.stdout).trim(), stderr: String(result.stderr).trim() };
}

export async function systemctlOrThrow(root: string, args: string[], signal?: AbortSignal): Promise<string> {
  const r = await systemctl(root, args, signal);
  if (r.code !== 0) throw new Error(`systemctl ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** `enabled`, `disabled`, `static`, … or `not-found` when systemd does not know the unit (yet). */
export async function unitFileState(root: string, unit: string): Promise<string> {
  const r = await systemctl(root, ['is-enabled', unit]);
  if (r.stdout === '') return 'not-found';
  return r.stdout.split('\n')[0];
}
