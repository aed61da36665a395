import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, type Harness, setRange, startFunction } from '../support/harness.js';
import { macsOf, mutated, review, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';

/** Runs `count` jobs with at most `concurrency` in flight. */
async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await job(i);
      }
    }),
  );
  return results;
}

async function createMany(instances: Harness[], prefix: string, count: number, concurrency: number, ifaces = 1) {
  return pool(count, concurrency, async (i) => {
    const req = review(
      'CREATE',
      vm(`${prefix}-${i}`, 'load', [
        { name: 'default' },
        ...Array.from({ length: ifaces - 1 }, (_, k) => ({ name: `n${k}`, network: 'multus' as const })),
      ]),
    );
    const res = await instances[i % instances.length]!.post(MUTATE, req);
    return { res, macs: res.body.response.allowed ? Object.values(macsOf(mutated(req, res.body))) : [] };
  });
}

describe('concurrent admissions', () => {
  let instances: Harness[];
  beforeAll(async () => {
    const first = await startFunction();
    instances = [
      first,
      await startFunction({ projectId: first.projectId }),
      await startFunction({ projectId: first.projectId }),
    ];
  });
  afterAll(async () => {
    for (const h of instances) await h.close();
  });

  it('many admissions at once, across three function instances, never hand one MAC to two interfaces', async () => {
    const results = await createMany(instances, 'many', 150, 30, 2);
    expect(results.every((r) => r.res.body.response.allowed)).toBe(true);
    const macs = results.flatMap((r) => r.macs);
    expect(macs).toHaveLength(300);
    expect(new Set(macs).size).toBe(300);
    const active = await activeClaims(instances[0]!.db);
    expect(active.size).toBe(300);
    for (const mac of macs) expect(active.has(mac!)).toBe(true);
  });

  it('a small range fills exactly and then answers "the range is full"', async () => {
    const h = await startFunction();
    const peers = [h, await startFunction({ projectId: h.projectId })];
    try {
      await setRange(h.db, '02:00:00:00:10:00', '02:00:00:00:10:1f'); // 32 MACs
      const results = await createMany(peers, 'small', 50, 16);
      const allowed = results.filter((r) => r.res.body.response.allowed);
      const full = results.filter((r) => !r.res.body.response.allowed);
      expect(allowed).toHaveLength(32);
      expect(full).toHaveLength(18);
      for (const r of full) expect(r.res.body.response.status.message).toContain('the range is full');
      const macs = allowed.flatMap((r) => r.macs);
      expect(new Set(macs).size).toBe(32);
      expect((await activeClaims(h.db)).size).toBe(32);
    } finally {
      for (const p of peers) await p.close();
    }
  });

  it('the same request sent many times at once gets the same MACs and one set of claims', async () => {
    const req = review('CREATE', vm('same', 'load', [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const results = await pool(8, 8, (i) => instances[i % 3]!.post(MUTATE, req));
    const answers = results.map((r) => JSON.stringify(macsOf(mutated(req, r.body))));
    expect(new Set(answers).size).toBe(1);
    const owned = [...(await activeClaims(instances[0]!.db)).values()].filter((c) => c.name === 'same');
    expect(owned).toHaveLength(2);
  });
});
