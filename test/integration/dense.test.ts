import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FreeList } from '../../shared/freelist.js';
import { formatMac } from '../../shared/mac.js';
import { validatePool } from '../../shared/usable.js';
import { Store } from '../../shared/store.js';
import { activeClaims, claims, type Harness, setRange, startFunction, testDb } from '../support/harness.js';
import { macsOf, mutated, review, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';

describe('dense ranges', () => {
  let h: Harness;
  let clock = Date.parse('2026-11-27T12:00:00Z');
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
  });
  afterAll(async () => h.close());

  it('a large range with few gaps is searched by windowed scans: it finds the last free MACs, then says full', async () => {
    // 4,096 MACs (big enough for windowed scans rather than the shared free list), all but two claimed:
    // 02:00:00:01:07:77 never claimed, 02:00:00:01:0a:aa released long ago.
    await setRange(h.db, '02:00:00:01:00:00', '02:00:00:01:0f:ff');
    const writer = h.db.bulkWriter();
    const long = new Date(clock - 24 * 3600_000);
    for (let i = 0; i < 4096; i++) {
      const mac = `02:00:00:01:0${(i >> 8).toString(16)}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      if (mac === '02:00:00:01:07:77') continue;
      const released = mac === '02:00:00:01:0a:aa';
      void writer.set(h.db.doc(`macs/${mac}`), {
        mac,
        state: released ? 'released' : 'bound',
        cluster: 'default',
        namespace: 'seed',
        name: `seed-${i}`,
        interface: 'default',
        origin: 'allocated',
        createdAt: long,
        updatedAt: long,
        ...(released ? { releasedAt: long } : {}),
      });
    }
    await writer.close();
    const got: string[] = [];
    for (const name of ['dense-a', 'dense-b']) {
      const req = review('CREATE', vm(name, 'dense', [{ name: 'default' }]));
      const res = await h.post(MUTATE, req);
      expect(res.body.response.allowed).toBe(true);
      got.push(macsOf(mutated(req, res.body)).default!);
    }
    expect(got.sort()).toEqual(['02:00:00:01:07:77', '02:00:00:01:0a:aa']);
    expect((await claims(h.db)).get('02:00:00:01:0a:aa')).toMatchObject({
      state: 'pending',
      name: expect.stringMatching(/^dense-/),
    });
    const full = await h.post(MUTATE, review('CREATE', vm('dense-c', 'dense', [{ name: 'default' }])));
    expect(full.body.response.status.message).toContain('the range is full');
  }, 60_000);

  it('V13 in a small range: the same request twice gets the same MACs', async () => {
    await setRange(h.db, '02:00:00:00:99:00', '02:00:00:00:99:0f');
    clock += 11_000;
    const req = review('CREATE', vm('dense-same', 'dense', [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const first = await h.post(MUTATE, req);
    const second = await h.post(MUTATE, req);
    expect(second.body).toEqual(first.body);
    expect([...(await activeClaims(h.db)).values()].filter((c) => c.name === 'dense-same')).toHaveLength(2);
  });
});

describe('the free list of a small range', () => {
  const db = testDb(`test-${randomUUID().slice(0, 8)}`);
  afterAll(() => db.terminate());
  const checked = validatePool({ rangeStart: '02:00:00:00:77:00', rangeEnd: '02:00:00:00:77:03' }); // 4 MACs
  if (!checked.ok) throw new Error('fixture');
  const usable = checked.usable;
  const first = () => 0n; // no shuffling: candidates in range order
  const take = (list: FreeList, need = 1) => list.take(usable, need, 16, new Date(), 600_000, first);

  it('does not offer a MAC to a second request while a commit claiming it is out', async () => {
    const list = new FreeList(new Store(db));
    const before = await take(list);
    expect(before.candidates.map(formatMac)).toHaveLength(4);
    const release = list.hold(['02:00:00:00:77:00', '02:00:00:00:77:01'], 60_000);
    const during = await take(list);
    expect(during.candidates.map(formatMac).sort()).toEqual(['02:00:00:00:77:02', '02:00:00:00:77:03']);
    release();
    release(); // twice is harmless
    expect((await take(list)).candidates).toHaveLength(4);
  });

  it('holds a MAC for a commit that does not return only for the time given', async () => {
    const list = new FreeList(new Store(db));
    list.hold(['02:00:00:00:77:00'], 50);
    expect((await take(list)).candidates).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 80));
    expect((await take(list)).candidates).toHaveLength(4);
  });

  it('does not call the range full while the last MACs are only held for commits in flight', async () => {
    const list = new FreeList(new Store(db));
    const all = ['02:00:00:00:77:00', '02:00:00:00:77:01', '02:00:00:00:77:02', '02:00:00:00:77:03'];
    const release = list.hold(all, 60_000);
    const held = await take(list);
    expect(held.candidates).toHaveLength(0);
    expect(held.exhaustive).toBe(false);
    // The commits landed: those MACs are claimed now, and a fresh scan that finds nothing is final.
    for (const mac of all) await db.doc(`macs/${mac}`).create({ mac, state: 'bound', name: 'x' });
    release();
    list.forget(all);
    const full = await take(list);
    expect(full.candidates).toHaveLength(0);
    expect(full.exhaustive).toBe(true);
  });
});
