import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, claims, type Harness, setRange, startFunction } from '../support/harness.js';
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
