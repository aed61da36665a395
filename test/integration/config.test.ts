import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, type Harness, setRange, startFunction } from '../support/harness.js';
import { macsOf, mutated, review, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';

async function allocate(h: Harness, name: string) {
  const req = review('CREATE', vm(name, 'cfg', [{ name: 'default' }]));
  const res = await h.post(MUTATE, req);
  return { res, mac: res.body.response.allowed ? macsOf(mutated(req, res.body)).default : undefined };
}

describe('configuration from Firestore', () => {
  let h: Harness;
  let clock = Date.parse('2026-11-27T12:00:00Z');
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
  });
  afterAll(async () => h.close());

  it('C2: a range change takes effect within 10 s, with no redeploy; existing claims stay', async () => {
    await setRange(h.db, '02:00:00:00:c2:00', '02:00:00:00:c2:0f');
    const first = await allocate(h, 'c2-a');
    expect(first.mac).toMatch(/^02:00:00:00:c2:0[0-9a-f]$/);
    await setRange(h.db, '0e:00:00:00:00:00', '0e:00:00:00:00:ff');
    clock += 10_001; // a cached range is never served once older than 10 s
    const second = await allocate(h, 'c2-b');
    expect(second.mac).toMatch(/^0e:00:00:00:00:/);
    expect((await activeClaims(h.db)).get(first.mac!)).toMatchObject({ name: 'c2-a' });
  });

  it('C3: an invalid stored range does not stop service: the last valid range stays and an error is logged', async () => {
    await h.db
      .doc('config/kubeMacPoolConfiguration')
      .set({ rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:01' });
    clock += 20_000;
    const res = await allocate(h, 'c3');
    expect(res.mac).toMatch(/^0e:00:00:00:00:/);
    const error = h.logs.find((l) => l.message === 'invalid MAC pool configuration');
    expect(error).toMatchObject({ severity: 'ERROR' });
    expect(String(error!.problem)).toContain('rangeStart 02:00:00:00:00:10 is greater than rangeEnd 02:00:00:00:00:01');
  });
});

describe('configuration never valid', () => {
  it.each([
    {
      name: 'reversed',
      doc: { rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:01' },
      reason: 'is greater than rangeEnd',
    },
    {
      name: 'multicast start',
      doc: { rangeStart: '03:00:00:00:00:00', rangeEnd: '03:00:00:00:00:ff' },
      reason: 'is a multicast address',
    },
    {
      name: 'not a MAC',
      doc: { rangeStart: 'invalid-mac', rangeEnd: '02:00:00:00:00:ff' },
      reason: 'is not a 48-bit MAC address',
    },
    { name: 'missing end', doc: { rangeStart: '02:00:00:00:00:00' }, reason: 'rangeEnd is missing' },
  ])(
    'C3: with none ever valid ($name), allocations are denied with the reason and the document to fix',
    async ({ doc, reason }) => {
      const h = await startFunction();
      try {
        await h.db.doc('config/kubeMacPoolConfiguration').set(doc);
        const { res } = await allocate(h, 'c3-none');
        expect(res.body.response.allowed).toBe(false);
        expect(res.body.response.status.code).toBe(500);
        expect(res.body.response.status.message).toContain(reason);
        expect(res.body.response.status.message).toContain('config/kubeMacPoolConfiguration');
      } finally {
        await h.close();
      }
    },
  );

  it('C1: a one-MAC range is valid; a range outside the locally administered space works with a logged warning', async () => {
    const h = await startFunction();
    try {
      await setRange(h.db, '00:50:56:00:00:01', '00:50:56:00:00:01');
      const { mac } = await allocate(h, 'c1');
      expect(mac).toBe('00:50:56:00:00:01');
      expect(h.logs.find((l) => l.message === 'MAC pool range in effect')?.warnings).toEqual([
        expect.stringContaining('not in the locally administered space'),
      ]);
    } finally {
      await h.close();
    }
  });
});
