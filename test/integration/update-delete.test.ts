import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, claims, documentCount, type Harness, setRange, startFunction } from '../support/harness.js';
import { example, macsOf, mutated, patchOf, review, stored, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';

/** Creates a VM through the webhook and returns it as the API server would store it. */
async function createStored(
  h: Harness,
  name: string,
  ns: string,
  ifaces: Parameters<typeof vm>[2],
  uid = `uid-${name}`,
) {
  const req = review('CREATE', vm(name, ns, ifaces));
  const res = await h.post(MUTATE, req);
  expect(res.body.response.allowed).toBe(true);
  return stored(req, res.body, uid);
}

function withInterfaces(object: any, change: (ifaces: any[], networks: any[]) => void) {
  const next = structuredClone(object);
  change(next.spec.template.spec.domain.devices.interfaces, next.spec.template.spec.networks);
  return next;
}

describe('VM UPDATE', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  it('U1: kubectl apply of the original YAML gets the old MACs back, with no write (KubeVirt multus example)', async () => {
    const req = example('update-vm-multus-reapply');
    const before = await documentCount(h.db);
    const res = await h.post(MUTATE, req);
    expect(res.body.response.allowed).toBe(true);
    expect(patchOf(res.body)).toEqual([
      { op: 'add', path: '/spec/template/spec/domain/devices/interfaces/0/macAddress', value: '02:00:00:00:00:0a' },
      { op: 'add', path: '/spec/template/spec/domain/devices/interfaces/1/macAddress', value: '02:00:00:00:00:0b' },
    ]);
    expect(macsOf(mutated(req, res.body))).toEqual(macsOf(req.request.oldObject));
    expect(await documentCount(h.db)).toBe(before);
  });

  it('U2: a new interface without a MAC gets one, whatever its binding (hot-plug)', async () => {
    const old = await createStored(h, 'u2', 'u', [{ name: 'default' }]);
    const next = withInterfaces(old, (ifaces, nets) => {
      ifaces.push({ name: 'hot', bridge: {} });
      nets.push({ name: 'hot', pod: {} }); // bridge on the pod network: no MAC at CREATE, but a MAC on hot-plug
    });
    const req = review('UPDATE', next, old);
    const res = await h.post(MUTATE, req);
    const macs = macsOf(mutated(req, res.body));
    expect(macs.default).toBe(macsOf(old).default);
    expect(macs.hot).toMatch(/^02:/);
    const docs = await claims(h.db);
    expect(docs.get(macs.hot!)).toMatchObject({ name: 'u2', uid: 'uid-u2', interface: 'hot', state: 'pending' });
    const ts = mutated(req, res.body).metadata.annotations['kubemacpool.io/transaction-timestamp'];
    expect(ts).not.toBe(old.metadata.annotations['kubemacpool.io/transaction-timestamp']);
    expect(docs.get(macs.default!)?.transactionTimestamp).toBe(ts);
  });

  it('U3: a removed interface releases its MAC; a changed MAC releases the old one and claims the new', async () => {
    const old = await createStored(h, 'u3', 'u', [
      { name: 'default' },
      { name: 'a', network: 'multus' },
      { name: 'b', network: 'multus' },
    ]);
    const oldMacs = macsOf(old);
    const next = withInterfaces(old, (ifaces, nets) => {
      ifaces.splice(1, 1); // drop a
      nets.splice(1, 1);
      ifaces[1].macAddress = '02:00:00:00:03:33'; // b changes
    });
    const res = await h.post(MUTATE, review('UPDATE', next, old));
    expect(res.body.response.allowed).toBe(true);
    const docs = await claims(h.db);
    expect(docs.get(oldMacs.a!)).toMatchObject({ state: 'released', name: 'u3' });
    expect(docs.get(oldMacs.b!)).toMatchObject({ state: 'released' });
    expect(docs.get('02:00:00:00:03:33')).toMatchObject({
      state: 'pending',
      name: 'u3',
      interface: 'b',
      origin: 'requested',
    });
    expect(docs.get(oldMacs.default!)).toMatchObject({ state: 'pending', name: 'u3' });
  });

  it('U4: an update that does not change interfaces makes no patch and no write', async () => {
    const old = await createStored(h, 'u4', 'u', [{ name: 'default' }]);
    const next = structuredClone(old);
    next.metadata.labels = { changed: 'yes' };
    next.spec.runStrategy = 'Halted';
    const before = await documentCount(h.db);
    const res = await h.post(MUTATE, review('UPDATE', next, old));
    expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
    expect(await documentCount(h.db)).toBe(before);
  });

  it('an update that takes a MAC another VM holds is denied and changes nothing', async () => {
    const holder = await createStored(h, 'u-holder', 'u', [{ name: 'n', network: 'multus' }]);
    const old = await createStored(h, 'u-taker', 'u', [{ name: 'n', network: 'multus' }]);
    const next = withInterfaces(old, (ifaces) => (ifaces[0].macAddress = macsOf(holder).n));
    const before = await claims(h.db);
    const res = await h.post(MUTATE, review('UPDATE', next, old));
    expect(res.body.response.status.message).toContain('is already in use by virtual machine u-holder');
    expect(await claims(h.db)).toEqual(before);
  });

  it('V13: the same UPDATE twice gets the same answer and leaves the same claims', async () => {
    const old = await createStored(h, 'u13', 'u', [{ name: 'default' }]);
    const next = withInterfaces(old, (ifaces, nets) => {
      ifaces.push({ name: 'n2', bridge: {} });
      nets.push({ name: 'n2', multus: { networkName: 'x' } });
    });
    const req = review('UPDATE', next, old);
    const first = await h.post(MUTATE, req);
    const after = await claims(h.db);
    const second = await h.post(MUTATE, req);
    expect(second.body).toEqual(first.body);
    expect(await claims(h.db)).toEqual(after);
  });
});

describe('VM DELETE (D1) and the cool-down (U5)', () => {
  let h: Harness;
  let clock = Date.parse('2026-11-27T12:00:00Z');
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
    await setRange(h.db, '02:00:00:00:0d:00', '02:00:00:00:0d:00'); // one MAC
  });
  afterAll(async () => h.close());

  it("D1 + U5: DELETE releases the VM's claim; automatic allocation skips it during the cool-down, a user may take it", async () => {
    const old = await createStored(h, 'd1', 'd', [{ name: 'default' }]);
    expect(macsOf(old).default).toBe('02:00:00:00:0d:00');
    const del = await h.post(MUTATE, review('DELETE', null, old));
    expect(del.body.response).toEqual({ uid: expect.any(String), allowed: true });
    expect((await claims(h.db)).get('02:00:00:00:0d:00')).toMatchObject({ state: 'released', name: 'd1' });

    clock += 9 * 60_000; // within the default 10 minute cool-down
    const auto = await h.post(MUTATE, review('CREATE', vm('d1-next', 'd', [{ name: 'default' }])));
    expect(auto.body.response.allowed).toBe(false);
    expect(auto.body.response.status.message).toContain('the range is full');
    expect(auto.body.response.status.message).toContain('1 released MACs are cooling down');

    // U6: the DELETE is not confirmed (the VM may still be shutting down, or the DELETE refused): another VM asking
    // for the MAC explicitly waits for a reconcile or the cool-down (release.test.ts covers the confirmation).
    const explicit = await h.post(
      MUTATE,
      review('CREATE', vm('d1-explicit', 'd', [{ name: 'default', mac: '02:00:00:00:0D:00' }])),
    );
    expect(explicit.body.response.allowed).toBe(false);
    expect(explicit.body.response.status.message).toContain(
      '02:00:00:00:0d:00 requested for interface default is already in use',
    );
    expect((await claims(h.db)).get('02:00:00:00:0d:00')).toMatchObject({ state: 'released', name: 'd1' });
  });

  it('U5: after the cool-down automatic allocation hands the MAC out again', async () => {
    const storedVm = vm('d1-explicit', 'd', [{ name: 'default', mac: '02:00:00:00:0D:00' }], { uid: 'uid-x' });
    await h.post(MUTATE, review('DELETE', null, storedVm));
    clock += 10 * 60_000 + 1;
    const res = await h.post(MUTATE, review('CREATE', vm('d1-later', 'd', [{ name: 'default' }])));
    expect(res.body.response.allowed).toBe(true);
  });

  it('D1: a DELETE frees only claims owned by that VM, and not when the recorded uid differs', async () => {
    await setRange(h.db, '02:00:00:00:0e:00', '02:00:00:00:0e:ff');
    clock += 11_000; // past the config cache
    const a = await createStored(h, 'd-a', 'd', [{ name: 'default' }], 'uid-a');
    // An UPDATE teaches the pool the VM's uid.
    const next = withInterfaces(a, (ifaces, nets) => {
      ifaces.push({ name: 'n', bridge: {} });
      nets.push({ name: 'n', multus: { networkName: 'x' } });
    });
    const upd = await h.post(MUTATE, review('UPDATE', next, a));
    const aNow = stored(review('UPDATE', next, a), upd.body, 'uid-a');
    const before = await activeClaims(h.db);

    const forged = structuredClone(aNow);
    forged.metadata.uid = 'uid-forged';
    const res = await h.post(MUTATE, review('DELETE', null, forged));
    expect(res.body.response.allowed).toBe(true);
    expect(await activeClaims(h.db)).toEqual(before);

    const other = structuredClone(aNow);
    other.metadata.name = 'd-other'; // same MACs, another VM's name: not its claims
    await h.post(MUTATE, review('DELETE', null, other));
    expect(await activeClaims(h.db)).toEqual(before);

    await h.post(MUTATE, review('DELETE', null, aNow));
    const after = await activeClaims(h.db);
    for (const mac of Object.values(macsOf(aNow))) expect(after.has(mac!)).toBe(false);
  });

  it('D1: a dry-run DELETE releases nothing', async () => {
    const a = await createStored(h, 'd-dry', 'd', [{ name: 'default' }], 'uid-dry');
    const before = await claims(h.db);
    await h.post(MUTATE, review('DELETE', null, a, { dryRun: true }));
    expect(await claims(h.db)).toEqual(before);
  });
});

describe('DELETE while Firestore is unreachable', () => {
  it('D1: is allowed anyway', async () => {
    const dead = await startFunction({ firestoreHost: '127.0.0.1:9', budgetMs: 1500 });
    try {
      const res = await dead.post(
        MUTATE,
        review('DELETE', null, vm('gone', 'x', [{ name: 'default', mac: '02:00:00:00:00:01' }], { uid: 'u' })),
      );
      expect(res.status).toBe(200);
      expect(res.body.response.allowed).toBe(true);
    } finally {
      await dead.close();
    }
  });
});
