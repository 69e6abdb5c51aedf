// Packs the client package (clients/js) with `npm pack` and installs the
// tarball into an empty project, as an application would: what the tests then
// use is what the tarball holds, resolved through its package.json, with its
// dependencies from the npm cache (or the registry when the cache lacks them).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLIENT_DIR = resolve('clients/js');

/** Runs npm with the Node that runs the tests first on PATH, so npm's scripts use it too. */
export function npm(args: string[], cwd: string): string {
  const path = `${join(process.execPath, '..')}:${process.env.PATH ?? ''}`;
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd, encoding: 'utf8', env: { ...process.env, PATH: path }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000,
  });
}

/** `npm pack` of dir into out; returns the tarball's path. (make build has built what it packs.) */
export function pack(dir: string, out: string): string {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir)) as Array<{ filename: string }>;
  return join(out, info!.filename);
}

/** An empty ES-module project with the client package installed from its tarball. */
export function installClientPackage(): { dir: string; tarball: string } {
  const root = mkdtempSync(join(tmpdir(), 'groupchat-client-pkg-'));
  const tarball = pack(CLIENT_DIR, root);
  const dir = join(root, 'app');
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--prefer-offline', '--ignore-scripts', tarball], dir);
  return { dir, tarball };
}
