import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { webhookPaths } from '../support/credentials.js';
import { emulatorHost } from '../support/harness.js';
import { example, patchOf } from '../support/fixtures.js';
import { spawnFunction, waitForHealthy } from '../support/process.js';

describe('the function process (built dist/ under the functions-framework CLI)', () => {
  it.each([
    {
      name: 'no MACPOOL_TOKENS and no emulator',
      env: { GOOGLE_CLOUD_PROJECT: 'p' },
      message: 'MACPOOL_TOKENS is not set',
    },
    {
      name: 'a malformed token list',
      env: { GOOGLE_CLOUD_PROJECT: 'p', MACPOOL_TOKENS: 'clusterA' },
      message: 'each entry must be CLUSTER=TOKEN',
    },
    {
      name: 'a short token',
      env: { GOOGLE_CLOUD_PROJECT: 'p', MACPOOL_TOKENS: 'a=short-secret' },
      message: 'the token is not allowed',
    },
    {
      name: 'a bad cluster name',
      env: { GOOGLE_CLOUD_PROJECT: 'p', MACPOOL_TOKENS: 'Cluster_A=0123456789abcdef0123' },
      message: 'is not allowed: use a DNS label',
    },
  ])('refuses to start with $name, saying why', async ({ env, message }) => {
    const p = await spawnFunction(env);
    const healthy = await waitForHealthy(p, 15_000);
    await p.stop();
    expect(healthy).toBe(false);
    expect(p.output()).toContain(message);
    expect(p.output()).not.toContain('short-secret');
  });

  it('serves admissions against the emulator, authenticated by token, logging JSON lines', async () => {
    const token = randomUUID();
    const p = await spawnFunction({
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      GOOGLE_CLOUD_PROJECT: `proc-${token.slice(0, 8)}`,
      MACPOOL_TOKENS: `east=${token}`,
    });
    try {
      expect(await waitForHealthy(p)).toBe(true);
      const req = example('create-vm-multus');
      const denied = await fetch(`${p.url}/mutate-virtualmachines`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(req),
      });
      expect(denied.status).toBe(401);
      const res = await fetch(`${p.url}${webhookPaths(token).mutateVirtualMachines}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(req),
      });
      const body = await res.json();
      expect(body.response.allowed).toBe(true);
      expect(patchOf(body).filter((o: any) => o.path.endsWith('macAddress'))).toHaveLength(2);
      await new Promise((r) => setTimeout(r, 100));
      const lines = p
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      expect(lines.find((l) => l.message === 'MACs allocated')).toMatchObject({
        severity: 'INFO',
        cluster: 'east',
        event: 'mac-allocated',
      });
      expect(p.output()).not.toContain(token);
    } finally {
      await p.stop();
    }
  });

  it('warns loudly when it serves unauthenticated requests against the emulator', async () => {
    const p = await spawnFunction({ FIRESTORE_EMULATOR_HOST: emulatorHost() });
    try {
      expect(await waitForHealthy(p)).toBe(true);
      expect(p.output()).toContain('serving UNAUTHENTICATED requests');
    } finally {
      await p.stop();
    }
  });
});
