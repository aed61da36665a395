import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Write } from '../../shared/allocator.js';
import { GroupCommit } from '../../shared/groupcommit.js';
import { Store } from '../../shared/store.js';
import { activeClaims, claims, emulatorHost, type Harness, startFunction, testDb } from '../support/harness.js';
import { macsOf, mutated, review, vm } from '../support/fixtures.js';
import { startProxy } from '../support/proxy.js';

const MUTATE = '/mutate-virtualmachines';
const claimWrite = (mac: string, name: string): Write => ({
  kind: 'create',
  path: `macs/${mac}`,
  data: { mac, state: 'pending', cluster: 'c', namespace: 'ns', name, interface: 'default' },
});
const macOf = (i: number) => `02:00:00:aa:00:${i.toString(16).padStart(2, '0')}`;

describe('group commit against Firestore', () => {
  const db = testDb(`test-${randomUUID().slice(0, 8)}`);
  const store = new Store(db);
  afterAll(() => db.terminate());

  it('queued claim sets share one commit and all land', async () => {
    const group = new GroupCommit((w) => store.commit(w));
    // Two go out at once (two slots); the other ten queue behind them and share one commit.
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => group.submit([claimWrite(macOf(i), `vm${i}`)])),
    );
    expect(results.every((r) => r.ok && r.commits === 1)).toBe(true);
    expect(results.map((r) => (r.ok ? r.group : 0))).toEqual([1, 1, ...Array(10).fill(10)]);
    const stored = await claims(db);
    for (let i = 0; i < 12; i++) expect(stored.get(macOf(i))?.name).toBe(`vm${i}`);
  });

  it('a member whose MAC is taken fails alone; the others of its commit still land', async () => {
    await db.doc(`macs/${macOf(0x80)}`).create({ mac: macOf(0x80), state: 'bound', name: 'holder' });
    const group = new GroupCommit((w) => store.commit(w), { maxInFlight: 1 });
    const busy = group.submit([claimWrite(macOf(0x7f), 'busy')]);
    const members = [0x81, 0x80, 0x82].map((n) => group.submit([claimWrite(macOf(n), `m${n}`)]));
    const [first, taken, last] = await Promise.all(members);
    expect(await busy).toEqual({ ok: true, commits: 1, group: 1 });
    expect(first).toEqual({ ok: true, commits: 2, group: 1 });
    expect(last).toEqual({ ok: true, commits: 2, group: 1 });
    expect(taken).toMatchObject({ ok: false, commits: 2, error: { code: 6 } }); // ALREADY_EXISTS
    const stored = await claims(db);
    expect(stored.get(macOf(0x80))).toMatchObject({ state: 'bound', name: 'holder' });
    expect(stored.get(macOf(0x81))?.name).toBe('m129');
    expect(stored.get(macOf(0x82))?.name).toBe('m130');
  });
});

describe('admissions sharing commits', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(() => h.close());

  it('concurrent CREATEs share commits, each gets its own unique MACs in one attempt', async () => {
    const reqs = Array.from({ length: 48 }, (_, i) =>
      review('CREATE', vm(`shared-${i}`, 'load', [{ name: 'default' }, { name: 'n', network: 'multus' }])),
    );
    const results = await Promise.all(reqs.map((r) => h.post(MUTATE, r)));
    expect(results.every((r) => r.body.response.allowed)).toBe(true);
    const macs = results.flatMap((r, i) => Object.values(macsOf(mutated(reqs[i]!, r.body))));
    expect(new Set(macs).size).toBe(96);
    expect((await activeClaims(h.db)).size).toBe(96);
    const lines = h.logs.filter((l) => l.operation === 'CREATE' && String(l.name).startsWith('shared-'));
    expect(lines).toHaveLength(48);
    expect(lines.every((l) => l.attempts === 1)).toBe(true);
    expect(Math.max(...lines.map((l) => Number(l.sharedCommit)))).toBeGreaterThan(1);
  });

  it('a repeated request in a shared commit gets its earlier MACs; the others are not denied', async () => {
    const repeat = review('CREATE', vm('again', 'load', [{ name: 'default' }]));
    const before = macsOf(mutated(repeat, (await h.post(MUTATE, repeat)).body));
    const others = Array.from({ length: 20 }, (_, i) =>
      review('CREATE', vm(`beside-${i}`, 'load', [{ name: 'default' }])),
    );
    const all = [...others.slice(0, 10), repeat, ...others.slice(10)];
    const results = await Promise.all(all.map((r) => h.post(MUTATE, r)));
    expect(results.every((r) => r.body.response.allowed)).toBe(true);
    expect(macsOf(mutated(repeat, results[10]!.body))).toEqual(before);
    const owned = [...(await activeClaims(h.db)).values()].filter((c) => c.name === 'again');
    expect(owned).toHaveLength(1);
    const macs = results.flatMap((r, i) => Object.values(macsOf(mutated(all[i]!, r.body))));
    expect(new Set(macs).size).toBe(21);
  });
});

describe('group commit while Firestore hangs', () => {
  it('claims still queued when their request is answered are never written', async () => {
    const proxy = await startProxy(emulatorHost());
    const h = await startFunction({ firestoreHost: proxy.host, budgetMs: 400 });
    try {
      // Warm: range and namespace cached, connection open.
      expect((await h.post(MUTATE, review('CREATE', vm('warm', 'hang', [{ name: 'default' }])))).status).toBe(200);
      await proxy.set({ kind: 'hang' });
      // Two commits go on the wire and hang; the other six queue behind them.
      const names = Array.from({ length: 8 }, (_, i) => `hung-${i}`);
      const answers = await Promise.all(
        names.map((n) => h.post(MUTATE, review('CREATE', vm(n, 'hang', [{ name: 'default' }])))),
      );
      for (const a of answers) expect(a.body.response.status.message).toContain('MAC pool unavailable');
      // The hung commits stop holding the queue after 1 s; the queued members are dropped, not sent.
      await new Promise((r) => setTimeout(r, 1_500));
      await proxy.set({ kind: 'none' });
      // The two sent commits are delivered late and land (claims of answered requests, left for reconcile).
      let stored = new Map<string, Record<string, unknown>>();
      for (let i = 0; i < 50; i++) {
        stored = await claims(h.db);
        if ([...stored.values()].filter((c) => String(c.name).startsWith('hung-')).length >= 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 500));
      stored = await claims(h.db);
      const written = [...stored.values()].filter((c) => String(c.name).startsWith('hung-'));
      expect(written).toHaveLength(2);
      const lines = h.logs.filter((l) => String(l.name).startsWith('hung-'));
      expect(lines.every((l) => l.outcome === 'unavailable')).toBe(true);
    } finally {
      await h.close();
      await proxy.close();
    }
  }, 20_000);
});
