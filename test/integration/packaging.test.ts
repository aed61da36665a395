/**
 * Builds the function the way Terraform and Cloud Build do: the files the module's `archive_file` keeps (its
 * `source_excludes`), then `npm ci` and `npm run gcp-build`, then the functions-framework CLI on entry point
 * `macpool`. Catches a build that only works with files the archive leaves out.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse } from '@cdktf/hcl2json';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/emulator.js';
import { example, patchOf } from '../support/fixtures.js';
import { webhookPaths } from '../support/credentials.js';
import { emulatorHost } from '../support/harness.js';
import { ROOT } from '../support/process.js';

const run = promisify(execFile);

async function sourceExcludes(): Promise<string[]> {
  const file = join(ROOT, 'terraform', 'function.tf');
  const hcl = (await parse(file, readFileSync(file, 'utf8'))) as { locals: { source_excludes: string[] }[] };
  return hcl.locals.flatMap((l) => l.source_excludes ?? []);
}

describe('the deployable archive', () => {
  const dir = mkdtempSync(join(tmpdir(), 'macpool-archive-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds with npm ci + gcp-build and serves under the functions-framework', async () => {
    const excludes = await sourceExcludes();
    expect(excludes).toEqual(expect.arrayContaining(['node_modules', 'dist', 'test', 'terraform']));
    cpSync(ROOT, dir, { recursive: true, filter: (src) => !excludes.includes(relative(ROOT, src)) });
    expect(readdirSync(dir).sort()).not.toEqual(expect.arrayContaining(excludes));
    expect(existsSync(join(dir, 'package-lock.json'))).toBe(true);

    await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
    await run('npm', ['run', 'gcp-build'], { cwd: dir });
    const main = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).main as string;
    expect(existsSync(join(dir, main))).toBe(true);

    const port = await freePort();
    const token = 'packaging-test-token-0123456789';
    const child = spawn(
      process.execPath,
      [
        join(dir, 'node_modules/@google-cloud/functions-framework/build/src/main.js'),
        '--target=macpool',
        `--port=${port}`,
      ],
      {
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '',
          FIRESTORE_EMULATOR_HOST: emulatorHost(),
          GOOGLE_CLOUD_PROJECT: 'packaging-test',
          MACPOOL_TOKENS: `default=${token}`,
          METADATA_SERVER_DETECTION: 'none',
          NODE_ENV: 'production',
        },
        stdio: 'ignore',
      },
    );
    try {
      let healthy = false;
      for (let i = 0; i < 100 && !healthy; i++) {
        healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!healthy) await new Promise((r) => setTimeout(r, 100));
      }
      expect(healthy).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}${webhookPaths(token).mutateVirtualMachines}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(example('create-vm-masquerade')),
      });
      expect(patchOf(await res.json()).some((op: { path: string }) => op.path.endsWith('macAddress'))).toBe(true);
    } finally {
      child.kill();
    }
  }, 240_000);
});
