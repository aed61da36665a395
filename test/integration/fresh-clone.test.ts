/**
 * The first minutes of a new administrator, in a fresh copy of the repository (the files git would clone, as they
 * are in the work tree): `npm install`, `npm start` in one shell, the lines its banner gives pasted into another,
 * one admission and `npx macpool status`. The TypeScript is compiled once, by `npm install`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.js';
import { BANNER, bash, pastedEnvironment, start, tryCommand } from '../support/start.js';

/** Every file of the work tree that a clone would have, uncommitted changes and new files included. */
function cloneInto(dir: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    .toString()
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)));
  for (const file of files) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file));
  }
}

/** Modification time of every file under dir. */
function mtimes(dir: string): Map<string, number> {
  const entries = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return new Map(entries.map((e) => [join(e.parentPath, e.name), statSync(join(e.parentPath, e.name)).mtimeMs]));
}

function npmInstall(cwd: string): Promise<{ code: number | null; output: string }> {
  const child = spawn('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

describe('a fresh clone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'macpool-clone-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('npm install, then npm start, serves an admission, compiling once; the banner points the CLI at its emulator', async () => {
    cloneInto(dir);
    expect(existsSync(join(dir, 'dist'))).toBe(false);

    const install = await npmInstall(dir);
    expect(install.code, install.output).toBe(0);
    const built = mtimes(join(dir, 'dist'));
    expect([...built.keys()]).toContain(join(dir, 'dist', 'functions', 'index.js'));

    // No FIRESTORE_EMULATOR_HOST or project: npm start starts the emulator itself.
    const p = await start({ cwd: dir, command: ['npm', 'start'], env: {} });
    let emulator = '';
    try {
      await p.waitFor(BANNER, 120_000);
      const pasted = pastedEnvironment(p.output());
      expect(pasted).toMatch(/^export FIRESTORE_EMULATOR_HOST=127\.0\.0\.1:\d+ GOOGLE_CLOUD_PROJECT=macpool-dev$/);
      emulator = pasted.match(/FIRESTORE_EMULATOR_HOST=(\S+)/)![1]!;

      const tried = await bash(tryCommand(p.output()), { cwd: dir });
      expect(tried).toMatchObject({ code: 0, stderr: '' });
      const [allowed, ...ops] = tried.stdout.trimEnd().split('\n');
      expect(allowed).toBe('true');
      expect(ops.filter((op) => JSON.parse(op).path.endsWith('/macAddress'))).toHaveLength(2);

      const status = await bash(`${pasted}\nnpx macpool status`, { cwd: dir });
      expect(status.code, status.stderr).toBe(0);
      // The column is as wide as status's longest label: match the label and the value.
      expect(status.stdout.split('\n')[0]?.replace(/ +/, ' ')).toBe(
        `project macpool-dev on the Firestore emulator at ${emulator}`,
      );
      expect(status.stdout).toMatch(/\nclaimed +2 \(pending 2, bound 0\)\n/);
    } finally {
      await p.stop();
    }
    // Stopping npm start stopped the emulator it started.
    await expect(fetch(`http://${emulator}/`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    // npm start checked the build (prestart) and found nothing to compile: dist/ is as npm install left it.
    expect(mtimes(join(dir, 'dist'))).toEqual(built);
    expect(p.output()).toContain('> tsc -b tsconfig.build.json');
  }, 420_000);
});
