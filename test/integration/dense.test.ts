import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Owner } from '../../shared/allocator.js';
import { ConfigSource, DEFAULT_SETTINGS, NamespaceSource, type PoolConfig } from '../../shared/config.js';
import { ClaimEngine } from '../../shared/engine.js';
import { FreeList } from '../../shared/freelist.js';
import { formatMac, parseMac } from '../../shared/mac.js';
import { type PoolFields, type UsableSet, validatePool } from '../../shared/usable.js';
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

/** The usable set of a pool document (the fixture must be valid). */
function poolOf(fields: PoolFields): UsableSet {
  const checked = validatePool(fields);
  if (!checked.ok) throw new Error(`fixture: ${checked.message}`);
  return checked.usable;
}

/** `02:00:00:00:<block>:<from..to>`, in order. */
function macsIn(block: string, from: number, to: number): string[] {
  return Array.from(
    { length: to - from + 1 },
    (_, i) => `02:00:00:00:${block}:${(from + i).toString(16).padStart(2, '0')}`,
  );
}

async function bind(db: ReturnType<typeof testDb>, macs: readonly string[]): Promise<void> {
  for (const mac of macs) await db.doc(`macs/${mac}`).create({ mac, state: 'bound', name: 'seed' });
}

describe('a configuration change while a full scan is in flight', () => {
  const db = testDb(`test-${randomUUID().slice(0, 8)}`);
  afterAll(() => db.terminate());
  const inOrder = () => 0n;
  const take = (list: FreeList, usable: UsableSet) => list.take(usable, 1, 16, new Date(), 600_000, inOrder);

  it("a request for the new pool is not served the old pool's scan: it gets only MACs the new pool holds", async () => {
    // The old pool: 16 MACs. The new one excludes the first 12, e.g. appliances found on the network.
    const range = { rangeStart: '02:00:00:00:66:00', rangeEnd: '02:00:00:00:66:0f' };
    const before = poolOf(range);
    const after = poolOf({
      ...range,
      excludedRanges: [{ rangeStart: '02:00:00:00:66:00', rangeEnd: '02:00:00:00:66:0b' }],
    });
    const list = new FreeList(new Store(db));
    // The second take starts while the first one's scan is out (take starts its scan before its first await).
    const [old, fresh] = await Promise.all([take(list, before), take(list, after)]);
    expect(old.candidates.map(formatMac)).toEqual(macsIn('66', 0, 15));
    expect(fresh.candidates.map(formatMac)).toEqual(macsIn('66', 12, 15));
    for (const mac of fresh.candidates) expect(after.has(mac)).toBe(true);
  });

  it('the old pool\'s empty scan does not make the new pool "full"', async () => {
    // 02:00:00:00:55:00-0b are claimed. The old pool excluded 0c-0f, so it has nothing free; the new one has those 4.
    await bind(db, macsIn('55', 0, 11));
    const range = { rangeStart: '02:00:00:00:55:00', rangeEnd: '02:00:00:00:55:0f' };
    const before = poolOf({
      ...range,
      excludedRanges: [{ rangeStart: '02:00:00:00:55:0c', rangeEnd: '02:00:00:00:55:0f' }],
    });
    const after = poolOf(range);
    const list = new FreeList(new Store(db));
    const [old, fresh] = await Promise.all([take(list, before), take(list, after)]);
    expect(old).toMatchObject({ candidates: [], exhaustive: true });
    expect(fresh.candidates.map(formatMac)).toEqual(macsIn('55', 12, 15));
    // Served from the new pool's own list afterwards too.
    expect((await take(list, after)).candidates.map(formatMac)).toEqual(macsIn('55', 12, 15));
  });
});

/**
 * The real store, whose range scans wait until `open()`: it keeps one request's full scan in flight while another
 * request of the same instance, for another pool, gets as far as its own scan.
 */
class GatedStore extends Store {
  scans = 0;
  /** `read` and `claimsOf` calls that have returned. */
  lookups = 0;
  private opened = false;
  private waiting: (() => void)[] = [];

  open(): void {
    this.opened = true;
    for (const go of this.waiting.splice(0)) go();
  }

  override async scan(...args: Parameters<Store['scan']>): ReturnType<Store['scan']> {
    this.scans++;
    if (!this.opened) await new Promise<void>((go) => this.waiting.push(go));
    return super.scan(...args);
  }

  override async read(...args: Parameters<Store['read']>): ReturnType<Store['read']> {
    try {
      return await super.read(...args);
    } finally {
      this.lookups++;
    }
  }

  override async claimsOf(...args: Parameters<Store['claimsOf']>): ReturnType<Store['claimsOf']> {
    try {
      return await super.claimsOf(...args);
    } finally {
      this.lookups++;
    }
  }
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 1_000) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the engine never plans a MAC the pool does not hold', () => {
  const db = testDb(`test-${randomUUID().slice(0, 8)}`);
  afterAll(() => db.terminate());

  it('a CREATE for the new pool, while a request for the old pool scans, claims a MAC of the new pool', async () => {
    const store = new GatedStore(db);
    const engine = new ClaimEngine({
      store,
      config: new ConfigSource(store, () => {}),
      namespaces: new NamespaceSource(store),
    });
    const range = { rangeStart: '02:00:00:00:88:00', rangeEnd: '02:00:00:00:88:0f' };
    const config = (excluded: string, to: string): PoolConfig => ({
      usable: poolOf({
        ...range,
        excludedRanges: [{ rangeStart: `02:00:00:00:88:${excluded}`, rangeEnd: `02:00:00:00:88:${to}` }],
      }),
      rangeWarnings: [],
      settings: DEFAULT_SETTINGS,
    });
    const before = config('08', '0f'); // 88:00-07
    const after = config('00', '07'); // 88:08-0f
    const run = (name: string, pool: PoolConfig, mode: 'commit' | 'plan') => {
      const owner: Owner = { cluster: 'default', namespace: 'race', name, kind: 'vm' };
      const base = {
        owner,
        uidRule: 'not-checked',
        requestUid: randomUUID(),
        timestamp: engine.timestamp(),
        interfaces: [{ index: 0, name: 'default', claim: true, allocate: true }],
        storedMacs: new Set<string>(),
        leftovers: 'keep',
      } as const;
      return engine.claim(base, pool, mode, 'read-first', new AbortController().signal);
    };
    // A dry run for the old pool starts its scan and waits on it; then a CREATE for the new pool reads what its
    // owner holds and asks the free list while that scan is still out.
    const old = run('old-pool', before, 'plan');
    await until(() => store.scans === 1);
    const created = run('new-pool', after, 'commit');
    await until(() => store.lookups === 4);
    await new Promise((r) => setTimeout(r, 20));
    store.open();
    const [planned, claimed] = await Promise.all([old, created]);
    expect(planned.kind).toBe('plan');
    expect(claimed.kind).toBe('plan');
    const mac = claimed.kind === 'plan' ? claimed.plan.assignments[0]!.mac : '';
    expect(macsIn('88', 8, 15)).toContain(mac);
    expect((await claims(db)).get(mac)).toMatchObject({ name: 'new-pool' });
    for (const m of (await claims(db)).keys()) expect(after.usable.has(parseMac(m)!)).toBe(true);
  });
});
