/**
 * The usable set through the function (C5, C6, V7): what the pool hands out for wide ranges, mixed ends, several
 * ranges and exclusions, and what happens to user-set MACs it would never hand out.
 */
import { describe, expect, it } from 'vitest';
import { isLocallyAdministered, isMulticast, parseMac } from '../../shared/mac.js';
import { macsOf, mutated, review, vm } from '../support/fixtures.js';
import { activeClaims, type Harness, startFunction } from '../support/harness.js';

const MUTATE = '/mutate-virtualmachines';
const HCO = '/validate-hyperconverged';

/** The function's clock runs this far ahead of the wall clock: a test moves it past the config cache (C2). */
let ahead = 0;
const skipConfigCache = () => (ahead += 11_000);

/** A function on a fresh project whose pool document is `pool` (written before the first request reads it). */
async function poolOf(pool: Record<string, unknown>, settings?: Record<string, unknown>): Promise<Harness> {
  const h = await startFunction({ now: () => new Date(Date.now() + ahead) });
  await h.db.doc('config/kubeMacPoolConfiguration').set(pool);
  if (settings) await h.db.doc('config/settings').set(settings);
  return h;
}

/** Creates VMs `prefix-0..n-1` with one pod-network masquerade interface, `concurrency` at a time. */
async function createMany(h: Harness, prefix: string, n: number, concurrency = 8) {
  const macs: string[] = [];
  const denials: string[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, n - i) }, async (_, k) => {
      const req = review('CREATE', vm(`${prefix}-${i + k}`, 'lab', [{ name: 'default' }]));
      const res = await h.post(MUTATE, req);
      if (res.body.response.allowed) macs.push(macsOf(mutated(req, res.body)).default!);
      else denials.push(res.body.response.status.message);
    });
    await Promise.all(batch);
  }
  return { macs, denials };
}

describe('wide ranges hand out only usable MACs (C5)', () => {
  it.each([
    {
      name: 'AA..FC (83 first octets, 41 multicast; the universal end keeps universal MACs usable)',
      pool: { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FC:FF:FF:FF:FF:FF' },
      localOnly: false,
    },
    {
      name: 'AA..FE (both ends local: only locally administered MACs)',
      pool: { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FE:FF:FF:FF:FF:FF' },
      localOnly: true,
    },
  ])(
    '$name: 300 CREATEs, no multicast MAC, every MAC inside the range',
    async ({ pool, localOnly }) => {
      const h = await poolOf(pool);
      try {
        const { macs, denials } = await createMany(h, 'wide', 300);
        expect(denials).toEqual([]);
        expect(new Set(macs).size).toBe(300);
        const parsed = macs.map((m) => parseMac(m)!);
        expect(parsed.filter(isMulticast)).toEqual([]);
        expect(parsed.every((m) => m >= 0xaa0000000000n && m <= 0xfeffffffffffn)).toBe(true);
        const universal = parsed.filter((m) => !isLocallyAdministered(m)).length;
        if (localOnly) expect(universal).toBe(0);
        // Over the usable set of AA..FC, 21 of 42 first octets are universal: about half the MACs, never none.
        else expect(universal).toBeGreaterThan(100);
        // The octets spread: uniform over the set, not bunched in the first octet.
        expect(new Set(macs.map((m) => m.slice(0, 2))).size).toBeGreaterThan(15);
      } finally {
        await h.close();
      }
    },
    120_000,
  );

  it('mixed ends 02:ff:ff:ff:ff:fe-04:00:00:00:00:01: exactly its 4 usable MACs, then "the range is full"', async () => {
    const h = await poolOf({ rangeStart: '02:ff:ff:ff:ff:fe', rangeEnd: '04:00:00:00:00:01' });
    try {
      const { macs, denials } = await createMany(h, 'mixed', 6, 3);
      expect(macs.sort()).toEqual(['02:ff:ff:ff:ff:fe', '02:ff:ff:ff:ff:ff', '04:00:00:00:00:00', '04:00:00:00:00:01']);
      expect(denials).toHaveLength(2);
      for (const d of denials)
        expect(d).toContain('the range is full: no free MAC left in 02:ff:ff:ff:ff:fe-04:00:00:00:00:01');
      expect((await activeClaims(h.db)).size).toBe(4);
    } finally {
      await h.close();
    }
  }, 60_000);
});

describe('several ranges and exclusions (C6)', () => {
  it('a 16-MAC range with 8 excluded fills with exactly the other 8', async () => {
    const h = await poolOf({
      rangeStart: '02:00:00:00:10:00',
      rangeEnd: '02:00:00:00:10:0f',
      excludedRanges: [
        { rangeStart: '02:00:00:00:10:00', rangeEnd: '02:00:00:00:10:03' },
        { rangeStart: '02-00-00-00-10-08', rangeEnd: '02-00-00-00-10-0b' },
      ],
    });
    try {
      const { macs, denials } = await createMany(h, 'excl', 10, 5);
      expect(macs.sort()).toEqual(['04', '05', '06', '07', '0c', '0d', '0e', '0f'].map((b) => `02:00:00:00:10:${b}`));
      expect(denials).toHaveLength(2);
      expect(denials[0]).toContain('the range is full');
      expect(denials[0]).toContain('minus 02:00:00:00:10:00-02:00:00:00:10:03, 02:00:00:00:10:08-02:00:00:00:10:0b');
    } finally {
      await h.close();
    }
  }, 60_000);

  it('two additional ranges add their MACs to the pool', async () => {
    const h = await poolOf({
      rangeStart: '02:00:00:00:20:00',
      rangeEnd: '02:00:00:00:20:01',
      additionalRanges: [
        { rangeStart: '0a:00:00:00:00:00', rangeEnd: '0a:00:00:00:00:02' },
        { rangeStart: '0e:00:00:00:00:05', rangeEnd: '0e:00:00:00:00:05' },
      ],
    });
    try {
      const { macs, denials } = await createMany(h, 'more', 7, 7);
      expect(macs.sort()).toEqual([
        '02:00:00:00:20:00',
        '02:00:00:00:20:01',
        '0a:00:00:00:00:00',
        '0a:00:00:00:00:01',
        '0a:00:00:00:00:02',
        '0e:00:00:00:00:05',
      ]);
      expect(denials).toHaveLength(1);
    } finally {
      await h.close();
    }
  }, 60_000);

  it('an invalid list keeps the last valid pool (C3) and logs why', async () => {
    const h = await poolOf({ rangeStart: '02:00:00:00:30:00', rangeEnd: '02:00:00:00:30:ff' });
    try {
      const first = await h.post(MUTATE, review('CREATE', vm('before', 'lab', [{ name: 'default' }])));
      expect(first.body.response.allowed).toBe(true);
      await h.db.doc('config/kubeMacPoolConfiguration').set({
        rangeStart: '0a:00:00:00:00:00',
        rangeEnd: '0a:00:00:00:00:ff',
        excludedRanges: [{ rangeStart: 'nope', rangeEnd: '0a:00:00:00:00:10' }],
      });
      // The cached config is at most 10 s old (C2); past that, the next read sees the broken document.
      skipConfigCache();
      const req = review('CREATE', vm('after', 'lab', [{ name: 'default' }]));
      const res = await h.post(MUTATE, req);
      expect(res.body.response.allowed).toBe(true);
      expect(macsOf(mutated(req, res.body)).default).toMatch(/^02:00:00:00:30:/);
      const error = h.logs.find((l) => l.message === 'invalid MAC pool configuration');
      expect(error?.problem).toContain('excludedRanges[0].rangeStart "nope" is not a 48-bit MAC address');
      expect(error?.kept).toBe('02:00:00:00:30:00-02:00:00:00:30:ff');
    } finally {
      await h.close();
    }
  }, 60_000);

  it('the HyperConverged sync changes the ends and keeps the lists', async () => {
    const lists = {
      additionalRanges: [{ rangeStart: '0a:00:00:00:00:00', rangeEnd: '0a:00:00:00:00:ff' }],
      excludedRanges: [{ rangeStart: '02:00:00:00:00:05', rangeEnd: '02:00:00:00:00:05' }],
    };
    const h = await poolOf({ rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:ff', ...lists });
    try {
      const hco = {
        apiVersion: 'hco.kubevirt.io/v1beta1',
        kind: 'HyperConverged',
        metadata: { name: 'kubevirt-hyperconverged', namespace: 'openshift-cnv' },
        spec: { kubeMacPoolConfiguration: { rangeStart: '02:10:00:00:00:00', rangeEnd: '02:10:00:00:00:ff' } },
      };
      const req = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: '0f3c1a52-77e4-4b2e-9a0e-1c2d3e4f5a6b',
          kind: { group: 'hco.kubevirt.io', version: 'v1beta1', kind: 'HyperConverged' },
          resource: { group: 'hco.kubevirt.io', version: 'v1beta1', resource: 'hyperconvergeds' },
          name: 'kubevirt-hyperconverged',
          namespace: 'openshift-cnv',
          operation: 'UPDATE',
          userInfo: { username: 'admin' },
          object: hco,
          oldObject: { ...hco, spec: {} },
        },
      };
      const res = await h.post(HCO, req);
      expect(res.body.response.allowed).toBe(true);
      expect((await h.db.doc('config/kubeMacPoolConfiguration').get()).data()).toMatchObject({
        rangeStart: '02:10:00:00:00:00',
        rangeEnd: '02:10:00:00:00:ff',
        ...lists,
      });
    } finally {
      await h.close();
    }
  });
});

describe('user-set MACs the pool would not hand out (V7, C5, C6)', () => {
  const pool = {
    rangeStart: '02:00:00:00:00:00',
    rangeEnd: '06:ff:ff:ff:ff:ff',
    excludedRanges: [{ rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:1f' }],
  };

  it.each([
    { name: 'excluded', mac: '02:00:00:00:00:11', warning: 'is in an excluded range of the pool' },
    {
      name: 'universal inside a local-only range',
      mac: '04:00:00:00:00:01',
      warning: 'is universally administered, inside a pool range kept to the locally administered space',
    },
    { name: 'outside every range', mac: '0a:00:00:00:00:01', warning: 'is outside the pool range' },
  ])('$name: claimed, with a warning', async ({ mac, warning }) => {
    const h = await poolOf(pool);
    try {
      const res = await h.post(MUTATE, review('CREATE', vm('pinned', 'lab', [{ name: 'default', mac }])));
      expect(res.body.response.allowed).toBe(true);
      expect(res.body.response.warnings.join('\n')).toContain(`MAC address ${mac} of interface default ${warning}`);
      expect((await activeClaims(h.db)).get(mac)).toMatchObject({ name: 'pinned', origin: 'requested' });
    } finally {
      await h.close();
    }
  });

  it('multicast inside the range: still denied', async () => {
    const h = await poolOf(pool);
    try {
      const res = await h.post(
        MUTATE,
        review('CREATE', vm('pinned', 'lab', [{ name: 'default', mac: '03:00:00:00:00:01' }])),
      );
      expect(res.body.response.allowed).toBe(false);
      expect(res.body.response.status.message).toContain('is a multicast address');
      expect((await activeClaims(h.db)).size).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('a claimed MAC that an exclusion later covers stays claimed, and once released is never handed out again', async () => {
    const h = await poolOf({ rangeStart: '02:00:00:00:40:00', rangeEnd: '02:00:00:00:40:03' }, { cooldownSeconds: 0 });
    try {
      const req = review('CREATE', vm('old', 'lab', [{ name: 'default', mac: '02:00:00:00:40:02' }]));
      expect((await h.post(MUTATE, req)).body.response.allowed).toBe(true);
      await h.db.doc('config/kubeMacPoolConfiguration').update({
        excludedRanges: [{ rangeStart: '02:00:00:00:40:02', rangeEnd: '02:00:00:00:40:02' }],
      });
      skipConfigCache(); // C2: the change is served within 10 s
      expect((await activeClaims(h.db)).get('02:00:00:00:40:02')).toMatchObject({ name: 'old' });
      const del = await h.post(MUTATE, review('DELETE', undefined, req.request.object));
      expect(del.body.response.allowed).toBe(true);
      // Released, cool-down 0: free by every rule but the exclusion. The pool fills with the other three.
      const { macs, denials } = await createMany(h, 'after', 5, 5);
      expect(macs.sort()).toEqual(['02:00:00:00:40:00', '02:00:00:00:40:01', '02:00:00:00:40:03']);
      expect(denials).toHaveLength(2);
    } finally {
      await h.close();
    }
  }, 60_000);
});
