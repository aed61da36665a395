import { namespaceDigest } from '../../shared/fingerprint.js';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, claims, type Harness, startFunction } from '../support/harness.js';
import { example, macsOf, review, stored, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';

/** What `kubectl get virtualmachines,namespaces -A -o json` prints. */
function list(vms: any[], namespaces?: { name: string; labels?: Record<string, string> }[]) {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      ...vms,
      ...(namespaces ?? []).map((n) => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: n.name, labels: n.labels ?? {} },
      })),
    ],
    metadata: { resourceVersion: '' },
  };
}

describe('reconcile (/reconcile)', () => {
  let h: Harness;
  // The tests share one cluster and each lists only its own VMs: an inventory R8 would rightly refuse, so forced.
  const partial = (inventory: unknown) => h.post('/reconcile', { inventory, force: true });
  let clock = Date.parse('2026-11-27T12:00:00Z');
  const createStored = async (name: string, ns: string, ifaces: Parameters<typeof vm>[2]) => {
    const req = review('CREATE', vm(name, ns, ifaces));
    return stored(req, (await h.post(MUTATE, req)).body, `uid-${name}`);
  };
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
  });
  afterAll(async () => h.close());

  it('R1-R5: binds stored VMs, keeps young claims, heals missing ones, reports collisions, and is idempotent', async () => {
    const a = await createStored('a', 'r', [{ name: 'default' }, { name: 'n', network: 'multus' }]);
    const ghost = await createStored('ghost', 'r', [{ name: 'default' }]); // its CREATE never persisted
    void ghost;
    // A VM stored while the webhook was bypassed: carries a MAC with no claim (R3).
    const bypassed = vm('bypassed', 'r', [{ name: 'default', mac: '02:00:00:00:b0:01' }], { uid: 'uid-bypassed' });
    // Two stored VMs with the same MAC (R4).
    const twinA = vm('twin-a', 'r', [{ name: 'n', network: 'multus', mac: '02:00:00:00:b0:02' }], { uid: 'uid-ta' });
    const twinB = vm('twin-b', 'r2', [{ name: 'n', network: 'multus', mac: '02-00-00-00-B0-02' }], { uid: 'uid-tb' });
    const inventory = list([a, bypassed, twinA, twinB]);

    const first = await h.post('/reconcile', inventory);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ vms: 4, bound: 2, released: 0, healed: 2, skippedYoung: 1, conflicts: 0 });
    expect(first.body.collisions).toEqual([
      { mac: '02:00:00:00:b0:02', vms: ['r/twin-a', 'r2/twin-b'], otherCluster: false },
    ]);
    const docs = await claims(h.db);
    for (const mac of Object.values(macsOf(a)))
      expect(docs.get(mac!)).toMatchObject({ state: 'bound', uid: 'uid-a', name: 'a' });
    expect(docs.get('02:00:00:00:b0:01')).toMatchObject({
      state: 'bound',
      origin: 'healed',
      name: 'bypassed',
      uid: 'uid-bypassed',
    });
    expect(docs.get('02:00:00:00:b0:02')).toMatchObject({ state: 'bound', origin: 'healed', name: 'twin-a' });
    expect(h.logs.find((l) => l.event === 'mac-collision')).toMatchObject({
      message: 'MAC collision detected',
      mac: '02:00:00:00:b0:02',
    });

    // R2: once older than the wait time (300 s), the claim whose VM never appeared is released.
    clock += 301_000;
    const second = await h.post('/reconcile', inventory);
    expect(second.body).toMatchObject({ released: 1, bound: 0, healed: 0, skippedYoung: 0, unchanged: 4 });
    expect([...(await activeClaims(h.db)).values()].some((c) => c.name === 'ghost')).toBe(false);

    // R5: nothing left to do.
    const third = await h.post('/reconcile', inventory);
    expect(third.body).toMatchObject({ released: 0, bound: 0, healed: 0, unchanged: 4, conflicts: 0 });
  });

  it("R2: a claim whose VM exists without that MAC is released once old enough; a deleted VM's claims too", async () => {
    const b = await createStored('b', 'r3', [{ name: 'default' }, { name: 'n', network: 'multus' }]);
    const c = await createStored('c', 'r3', [{ name: 'default' }]);
    const macsB = macsOf(b);
    const bWithoutN = structuredClone(b);
    bWithoutN.spec.template.spec.domain.devices.interfaces.splice(1, 1);
    bWithoutN.spec.template.spec.networks.splice(1, 1);
    await partial(list([b, c]));
    clock += 301_000;
    const res = await partial(list([bWithoutN])); // c deleted, b lost interface n
    expect(res.body.released).toBeGreaterThanOrEqual(2);
    const active = await activeClaims(h.db);
    expect(active.get(macsB.default!)).toMatchObject({ name: 'b', state: 'bound' });
    expect(active.has(macsB.n!)).toBe(false);
    expect(active.has(macsOf(c).default!)).toBe(false);
  });

  it('V12: a generateName claim is adopted by the stored VM that carries it', async () => {
    const req = example('create-vm-generate-name');
    const res = await h.post(MUTATE, req);
    const storedVm = stored(req, res.body, 'uid-gen');
    storedVm.metadata.name = 'vm-abcde';
    const mac = macsOf(storedVm).default!;
    expect((await claims(h.db)).get(mac)?.name).toBe('');
    await partial(list([storedVm]));
    expect((await claims(h.db)).get(mac)).toMatchObject({ name: 'vm-abcde', uid: 'uid-gen', state: 'bound' });
  });

  it('mirrors the namespaces it is given, and uses their labels to decide what to heal', async () => {
    const ignored = vm('in-ignored', 'skip-me', [{ name: 'default', mac: '02:00:00:00:c0:01' }], { uid: 'u1' });
    const res = await partial(
      list(
        [ignored],
        [{ name: 'skip-me', labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' } }, { name: 'plain' }],
      ),
    );
    expect(res.body.namespaces).toBe(2);
    expect((await h.db.doc('clusters/default/namespaces/skip-me').get()).data()).toEqual({
      labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' },
      digest: namespaceDigest('skip-me', { 'mutatevirtualmachines.kubemacpool.io': 'ignore' }),
    });
    expect((await claims(h.db)).has('02:00:00:00:c0:01')).toBe(false);
  });

  it('accepts a gzip-compressed body (large clusters) and refuses what is not a List', async () => {
    const res = await fetch(`${h.url}/reconcile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ inventory: list([]), dryRun: true })),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ vms: 0 });
    const bad = await h.post('/reconcile', { kind: 'VirtualMachine', metadata: { name: 'x' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('must be a List');
  });
});
