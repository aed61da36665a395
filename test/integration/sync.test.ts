import { namespaceDigest } from '../../shared/fingerprint.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentCount, type Harness, startFunction } from '../support/harness.js';
import { hcoReview, namespaceReview, patchOf, review, vm } from '../support/fixtures.js';

const LABEL = 'mutatevirtualmachines.kubemacpool.io';

describe('namespace sync (/validate-namespaces)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  it('`oc label namespace ns1 ns2 ...=ignore` disables allocation there at once; removing the label re-enables it', async () => {
    for (const ns of ['ns1', 'ns2']) {
      const res = await h.post(
        '/validate-namespaces',
        namespaceReview('UPDATE', ns, { [LABEL]: 'ignore', team: 'a' }, { team: 'a' }),
      );
      expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
      expect((await h.db.doc(`clusters/default/namespaces/${ns}`).get()).data()).toEqual({
        labels: { [LABEL]: 'ignore' },
        digest: namespaceDigest(ns, { [LABEL]: 'ignore' }),
      });
    }
    const skipped = await h.post('/mutate-virtualmachines', review('CREATE', vm('vm', 'ns1', [{ name: 'default' }])));
    expect(skipped.body.response).toEqual({ uid: expect.any(String), allowed: true });

    await h.post(
      '/validate-namespaces',
      namespaceReview('UPDATE', 'ns1', { team: 'a' }, { [LABEL]: 'ignore', team: 'a' }),
    );
    expect((await h.db.doc('clusters/default/namespaces/ns1').get()).data()).toEqual({
      labels: {},
      digest: expect.any(Number),
    });
    const served = await h.post('/mutate-virtualmachines', review('CREATE', vm('vm', 'ns1', [{ name: 'default' }])));
    expect(patchOf(served.body).some((o) => o.path.endsWith('macAddress'))).toBe(true);
  });

  it('CREATE mirrors the labels, DELETE removes the document, an unrelated label change writes nothing', async () => {
    await h.post('/validate-namespaces', namespaceReview('CREATE', 'ns3', { [LABEL]: 'allocate' }));
    expect((await h.db.doc('clusters/default/namespaces/ns3').get()).data()).toEqual({
      labels: { [LABEL]: 'allocate' },
      digest: namespaceDigest('ns3', { [LABEL]: 'allocate' }),
    });
    const before = (await h.db.doc('clusters/default/namespaces/ns3').get()).updateTime;
    await h.post(
      '/validate-namespaces',
      namespaceReview('UPDATE', 'ns3', { [LABEL]: 'allocate', other: 'x' }, { [LABEL]: 'allocate' }),
    );
    expect((await h.db.doc('clusters/default/namespaces/ns3').get()).updateTime?.isEqual(before!)).toBe(true);
    await h.post('/validate-namespaces', namespaceReview('DELETE', 'ns3', null, { [LABEL]: 'allocate' }));
    expect((await h.db.doc('clusters/default/namespaces/ns3').get()).exists).toBe(false);
  });

  it('a dry run writes nothing', async () => {
    const before = await documentCount(h.db);
    await h.post('/validate-namespaces', namespaceReview('CREATE', 'ns4', { [LABEL]: 'ignore' }, undefined, true));
    expect(await documentCount(h.db)).toBe(before);
  });

  it('is always allowed, also when Firestore is unreachable', async () => {
    const dead = await startFunction({ firestoreHost: '127.0.0.1:9' });
    try {
      const res = await dead.post('/validate-namespaces', namespaceReview('CREATE', 'ns5', { [LABEL]: 'ignore' }));
      expect(res.body.response.allowed).toBe(true);
      expect(dead.logs.at(-1)).toMatchObject({ severity: 'ERROR', outcome: 'namespace-sync-failed' });
    } finally {
      await dead.close();
    }
  }, 20_000);
});

describe('HyperConverged sync (/validate-hyperconverged)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  it('`oc edit hyperconverged` with a new range takes effect for the next VM', async () => {
    const res = await h.post(
      '/validate-hyperconverged',
      hcoReview('UPDATE', { rangeStart: '02:aa:00:00:00:00', rangeEnd: '02:aa:00:00:00:ff' }),
    );
    expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
    expect((await h.db.doc('config/kubeMacPoolConfiguration').get()).data()).toMatchObject({
      rangeStart: '02:aa:00:00:00:00',
      rangeEnd: '02:aa:00:00:00:ff',
    });
    const next = review('CREATE', vm('after-hco', 'hco', [{ name: 'default' }]));
    const created = await h.post('/mutate-virtualmachines', next);
    const mac = patchOf(created.body).find((o) => o.path.endsWith('macAddress'))?.value;
    expect(mac).toMatch(/^02:aa:00:00:00:/);
  });

  it.each([
    {
      name: 'reversed',
      range: { rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:01' },
      message: 'rangeStart 02:00:00:00:00:10 is greater than rangeEnd 02:00:00:00:00:01',
    },
    {
      name: 'multicast',
      range: { rangeStart: '01:00:00:00:00:00', rangeEnd: '01:00:00:00:00:ff' },
      message: 'is a multicast address',
    },
    {
      name: 'not a MAC',
      range: { rangeStart: 'invalid-mac', rangeEnd: '02:00:00:00:00:ff' },
      message: 'is not a 48-bit MAC address',
    },
    { name: 'missing end', range: { rangeStart: '02:00:00:00:00:00' }, message: 'rangeEnd is missing' },
  ])(
    'C4: an invalid range ($name) is rejected with what is wrong and what is allowed, and nothing is stored',
    async ({ range, message }) => {
      const before = (await h.db.doc('config/kubeMacPoolConfiguration').get()).data();
      const res = await h.post('/validate-hyperconverged', hcoReview('UPDATE', range));
      expect(res.body.response.allowed).toBe(false);
      expect(res.body.response.status.code).toBe(422);
      expect(res.body.response.status.message).toContain('invalid spec.kubeMacPoolConfiguration: ');
      expect(res.body.response.status.message).toContain(message);
      expect(res.body.response.status.message).toContain('allowed: two 48-bit unicast MACs');
      expect((await h.db.doc('config/kubeMacPoolConfiguration').get()).data()).toEqual(before);
    },
  );

  it('a range outside the locally administered space is stored with a warning', async () => {
    const res = await h.post(
      '/validate-hyperconverged',
      hcoReview('CREATE', { rangeStart: '00:50:56:00:00:00', rangeEnd: '00:50:56:00:00:ff' }),
    );
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.warnings).toEqual([expect.stringContaining('not in the locally administered space')]);
  });

  it('C5: a range across multicast first octets is stored with a warning naming the MACs never handed out', async () => {
    const range = { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FC:FF:FF:FF:FF:FF' };
    const multicast =
      '45079976738816 of the 91259465105408 MACs of range aa:00:00:00:00:00-fc:ff:ff:ff:ff:ff are multicast ' +
      '(odd first octet) and are never handed out';
    for (const [name, old, dryRun] of [
      ['stored', undefined, false],
      ['unchanged', range, false],
      ['dry run', undefined, true],
    ] as const) {
      const res = await h.post('/validate-hyperconverged', hcoReview('UPDATE', range, old, dryRun));
      expect(res.body.response.allowed, name).toBe(true);
      expect(res.body.response.warnings, name).toEqual([
        expect.stringContaining('not in the locally administered space'),
        multicast,
      ]);
    }
    expect((await h.db.doc('config/kubeMacPoolConfiguration').get()).data()).toMatchObject({
      rangeStart: 'AA:00:00:00:00:00',
      rangeEnd: 'FC:FF:FF:FF:FF:FF',
    });
  });

  it('an unchanged range, an HCO without one, and a dry run write nothing', async () => {
    const ref = h.db.doc('config/kubeMacPoolConfiguration');
    const before = (await ref.get()).updateTime!;
    const same = { rangeStart: '00:50:56:00:00:00', rangeEnd: '00:50:56:00:00:ff' };
    await h.post('/validate-hyperconverged', hcoReview('UPDATE', same, same));
    await h.post('/validate-hyperconverged', hcoReview('UPDATE', undefined));
    await h.post(
      '/validate-hyperconverged',
      hcoReview('UPDATE', { rangeStart: '02:bb:00:00:00:00', rangeEnd: '02:bb:00:00:00:ff' }, same, true),
    );
    expect((await ref.get()).updateTime!.isEqual(before)).toBe(true);
  });
});
