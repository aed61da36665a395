import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, claims, documentCount, type Harness, setRange, startFunction } from '../support/harness.js';
import { example, macsOf, mutated, patchOf, review, stored, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';
const CANONICAL = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

describe('VM CREATE', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  it('V1: masquerade and multus interfaces of the KubeVirt multus example each get a MAC from the range', async () => {
    const req = example('create-vm-multus');
    const res = await h.post(MUTATE, req);
    expect(res.status).toBe(200);
    expect(res.body.response).toMatchObject({ uid: req.request.uid, allowed: true, patchType: 'JSONPatch' });
    const macs = macsOf(mutated(req, res.body));
    expect(Object.keys(macs)).toEqual(['default', 'ptp']);
    for (const mac of Object.values(macs)) {
      expect(mac).toMatch(CANONICAL);
      expect(mac!.startsWith('02:')).toBe(true); // KMP's default range 02:00:00:00:00:00-02:ff:ff:ff:ff:ff
    }
    const ops = patchOf(res.body).filter((op) => op.path.endsWith('/macAddress'));
    expect(ops.map((o) => [o.op, o.path])).toEqual([
      ['add', '/spec/template/spec/domain/devices/interfaces/0/macAddress'],
      ['add', '/spec/template/spec/domain/devices/interfaces/1/macAddress'],
    ]);
    const docs = await claims(h.db);
    for (const [iface, mac] of Object.entries(macs)) {
      expect(docs.get(mac!)).toMatchObject({
        state: 'pending',
        cluster: 'default',
        namespace: 'default',
        name: 'vm-multus-multiple-net',
        interface: iface,
        origin: 'allocated',
      });
    }
  });

  it('V1: SR-IOV on multus gets a MAC', async () => {
    const req = example('create-vm-sriov');
    const res = await h.post(MUTATE, req);
    const macs = macsOf(mutated(req, res.body));
    expect(Object.values(macs).every((m) => m !== undefined && CANONICAL.test(m))).toBe(true);
  });

  it.each([
    { name: 'bridge on the pod network (KubeVirt example)', req: () => example('create-vm-bridge-pod-network') },
    {
      name: 'slirp on the pod network',
      req: () => review('CREATE', vm('slirp', 'v2', [{ name: 'default', binding: 'slirp' }])),
    },
    {
      name: 'passt on the pod network',
      req: () => review('CREATE', vm('passt', 'v2', [{ name: 'default', binding: 'passt' }])),
    },
  ])('V2: $name gets no MAC and nothing is written', async ({ req }) => {
    const r = req();
    const before = (await claims(h.db)).size;
    const res = await h.post(MUTATE, r);
    expect(res.body.response.allowed).toBe(true);
    expect(patchOf(res.body).filter((op) => op.path.endsWith('macAddress'))).toEqual([]);
    expect((await claims(h.db)).size).toBe(before);
  });

  it.each([
    {
      name: 'no template',
      object: {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachine',
        metadata: { name: 'a', namespace: 'v2' },
        spec: {},
      },
    },
    { name: 'no interfaces', object: { ...vm('b', 'v2', []) } },
    {
      name: 'no networks',
      object: (() => {
        const v = vm('c', 'v2', [{ name: 'default' }]);
        delete v.spec.template.spec.networks;
        return v;
      })(),
    },
  ])('V2: a VM with $name is allowed unchanged', async ({ object }) => {
    const res = await h.post(MUTATE, review('CREATE', object));
    expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('V3: all MACs of a request or none: a denied request leaves no claim behind', async () => {
    const holder = await h.post(
      MUTATE,
      review('CREATE', vm('v3-holder', 'v3', [{ name: 'a', network: 'multus', mac: '02:00:00:00:33:01' }])),
    );
    expect(holder.body.response.allowed).toBe(true);
    const before = await claims(h.db);
    const res = await h.post(
      MUTATE,
      review(
        'CREATE',
        vm('v3-loser', 'v3', [
          { name: 'auto1' },
          { name: 'auto2', network: 'multus' },
          { name: 'taken', network: 'multus', mac: '02:00:00:00:33:01' },
        ]),
      ),
    );
    expect(res.body.response.allowed).toBe(false);
    expect(await claims(h.db)).toEqual(before);
  });

  it.each([
    { name: 'dashes, upper case', mac: '02-AA-BB-CC-DD-01', canonical: '02:aa:bb:cc:dd:01' },
    { name: 'colons, mixed case', mac: '02:aA:bB:cC:dD:02', canonical: '02:aa:bb:cc:dd:02' },
    { name: 'dotted', mac: '02aa.bbcc.dd03', canonical: '02:aa:bb:cc:dd:03' },
  ])('V4: a user MAC written with $name is left as written and claimed canonically', async ({ mac, canonical }) => {
    const req = review('CREATE', vm(`v4-${canonical.slice(-2)}`, 'v4', [{ name: 'net1', network: 'multus', mac }]));
    const res = await h.post(MUTATE, req);
    expect(res.body.response.allowed).toBe(true);
    expect(patchOf(res.body).some((op) => op.path.endsWith('macAddress'))).toBe(false);
    expect(macsOf(mutated(req, res.body)).net1).toBe(mac);
    expect((await claims(h.db)).get(canonical)).toMatchObject({
      origin: 'requested',
      interface: 'net1',
      state: 'pending',
    });
  });

  it.each([
    { name: 'garbage', mac: 'not-a-mac' },
    { name: 'too short', mac: '02:00:00:00:00' },
    { name: 'EUI-64', mac: '02:00:00:00:00:00:00:01' },
    { name: 'single-digit groups', mac: '2:0:0:0:0:1' },
  ])('V4: $name is denied with the KMP message', async ({ mac }) => {
    const res = await h.post(MUTATE, review('CREATE', vm('v4-bad', 'v4', [{ name: 'eth1', network: 'multus', mac }])));
    expect(res.body.response.allowed).toBe(false);
    expect(res.body.response.status.code).toBe(422);
    expect(res.body.response.status.message).toContain(`invalid MAC address format for interface eth1: ${mac}`);
  });

  it('V5: a MAC held by another VM is denied; the holder is named only within the same cluster and namespace (S3)', async () => {
    await h.post(
      MUTATE,
      review('CREATE', vm('v5-owner', 'team-a', [{ name: 'n', network: 'multus', mac: '02:00:00:00:55:01' }])),
    );
    const same = await h.post(
      MUTATE,
      review('CREATE', vm('v5-same-ns', 'team-a', [{ name: 'x', network: 'multus', mac: '02-00-00-00-55-01' }])),
    );
    expect(same.body.response.allowed).toBe(false);
    expect(same.body.response.status).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(same.body.response.status.message).toBe(
      'MAC address 02:00:00:00:55:01 requested for interface x is already in use by virtual machine v5-owner',
    );
    const other = await h.post(
      MUTATE,
      review('CREATE', vm('v5-other-ns', 'team-b', [{ name: 'y', network: 'multus', mac: '02:00:00:00:55:01' }])),
    );
    expect(other.body.response.status.message).toBe(
      'MAC address 02:00:00:00:55:01 requested for interface y is already in use',
    );
    expect(other.body.response.status.message).not.toContain('v5-owner');
  });

  it.each([
    {
      name: 'the same MAC on two interfaces',
      ifaces: [
        { name: 'a', network: 'multus' as const, mac: '02:00:00:00:66:01' },
        { name: 'b', network: 'multus' as const, mac: '02-00-00-00-66-01' },
      ],
      message: 'duplicate MAC address 02:00:00:00:66:01 found on interfaces: a and b',
    },
    {
      name: 'two interfaces with one name',
      ifaces: [{ name: 'a' }, { name: 'a', network: 'multus' as const }],
      message: 'every interface must have a unique name',
    },
  ])('V6: $name is denied', async ({ ifaces, message }) => {
    const before = (await claims(h.db)).size;
    const res = await h.post(MUTATE, review('CREATE', vm('v6', 'v6', ifaces)));
    expect(res.body.response.allowed).toBe(false);
    expect(res.body.response.status.message).toContain(message);
    expect((await claims(h.db)).size).toBe(before);
  });

  it('V7: a user MAC outside the range is claimed with a warning; a multicast one is denied', async () => {
    const out = await h.post(
      MUTATE,
      review('CREATE', vm('v7-out', 'v7', [{ name: 'n', network: 'multus', mac: '0a:00:00:00:77:01' }])),
    );
    expect(out.body.response.allowed).toBe(true);
    expect(out.body.response.warnings).toEqual([
      expect.stringContaining(
        '0a:00:00:00:77:01 of interface n is outside the pool range 02:00:00:00:00:00-02:ff:ff:ff:ff:ff',
      ),
    ]);
    expect((await claims(h.db)).get('0a:00:00:00:77:01')).toMatchObject({ state: 'pending', origin: 'requested' });
    const multi = await h.post(
      MUTATE,
      review('CREATE', vm('v7-multi', 'v7', [{ name: 'm', network: 'multus', mac: '03:00:00:00:77:02' }])),
    );
    expect(multi.body.response.allowed).toBe(false);
    expect(multi.body.response.status.message).toContain('03:00:00:00:77:02 is a multicast address');
  });

  it('V10: a dry run answers with MACs in the patch and writes nothing', async () => {
    const before = await documentCount(h.db);
    const req = review('CREATE', vm('v10', 'v10', [{ name: 'default' }, { name: 'n', network: 'multus' }]), null, {
      dryRun: true,
    });
    const res = await h.post(MUTATE, req);
    const macs = macsOf(mutated(req, res.body));
    expect(Object.values(macs).every((m) => CANONICAL.test(m!))).toBe(true);
    expect(await documentCount(h.db)).toBe(before);
  });

  it('V11: CREATE stamps an RFC 3339 nanosecond timestamp and records it on the claims', async () => {
    const req = review('CREATE', vm('v11', 'v11', [{ name: 'default' }], { annotations: { keep: 'me' } }));
    const res = await h.post(MUTATE, req);
    const object = mutated(req, res.body);
    const ts = object.metadata.annotations['kubemacpool.io/transaction-timestamp'];
    expect(ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/);
    expect(object.metadata.annotations.keep).toBe('me');
    expect(
      (await claims(h.db)).get(object.spec.template.spec.domain.devices.interfaces[0].macAddress)?.transactionTimestamp,
    ).toBe(ts);
  });

  it('V12: a generateName CREATE holds its claims under the request until a later admission names the VM', async () => {
    const req = example('create-vm-generate-name');
    const res = await h.post(MUTATE, req);
    const mac = macsOf(mutated(req, res.body)).default!;
    expect((await claims(h.db)).get(mac)).toMatchObject({ name: '', requestUid: req.request.uid, state: 'pending' });
    // The API server stores it as vm-x7k2q; an UPDATE adding an interface sees the stored VM with that MAC.
    const storedVm = stored(req, res.body, 'uid-v12');
    storedVm.metadata.name = 'vm-x7k2q';
    const next = structuredClone(storedVm);
    next.spec.template.spec.domain.devices.interfaces.push({ name: 'extra', bridge: {} });
    next.spec.template.spec.networks.push({ name: 'extra', multus: { networkName: 'extra' } });
    const upd = await h.post(MUTATE, review('UPDATE', next, storedVm));
    expect(upd.body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(mac)).toMatchObject({ name: 'vm-x7k2q', uid: 'uid-v12', state: 'pending' });
    const owned = [...(await activeClaims(h.db)).values()].filter((c) => c.name === 'vm-x7k2q');
    expect(owned.map((c) => c.interface).sort()).toEqual(['default', 'extra']);
    expect(
      [...(await activeClaims(h.db)).values()].filter((c) => c.requestUid === req.request.uid && c.name === ''),
    ).toEqual([]);
  });

  it('V13: the same AdmissionReview twice gets the same answer and leaves the same claims', async () => {
    const req = review('CREATE', vm('v13', 'v13', [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const first = await h.post(MUTATE, req);
    const after1 = await claims(h.db);
    const second = await h.post(MUTATE, req);
    expect(second.body).toEqual(first.body);
    expect(await claims(h.db)).toEqual(after1);
  });

  it('V13: a CREATE of a name whose earlier CREATE never persisted reuses its pending claims', async () => {
    const first = await h.post(
      MUTATE,
      review('CREATE', vm('v13-retry', 'v13', [{ name: 'default' }, { name: 'n', network: 'multus' }])),
    );
    const retryReq = review('CREATE', vm('v13-retry', 'v13', [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const retry = await h.post(MUTATE, retryReq);
    const a = patchOf(first.body).filter((o) => o.path.endsWith('macAddress'));
    const b = patchOf(retry.body).filter((o) => o.path.endsWith('macAddress'));
    expect(b).toEqual(a);
    const owned = [...(await activeClaims(h.db)).values()].filter((c) => c.name === 'v13-retry');
    expect(owned).toHaveLength(2);
    expect(owned.every((c) => c.requestUid === retryReq.request.uid)).toBe(true);
  });
});

describe('VM CREATE with a small range', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
    await setRange(h.db, '02:00:00:00:08:00', '02:00:00:00:08:02');
  });
  afterAll(async () => h.close());

  it('V8: once the range is full, CREATE is denied with "the range is full" and no claim is left behind', async () => {
    const ok = await h.post(
      MUTATE,
      review('CREATE', vm('v8-a', 'v8', [{ name: 'a' }, { name: 'b', network: 'multus' }])),
    );
    expect(ok.body.response.allowed).toBe(true);
    const full = await h.post(
      MUTATE,
      review('CREATE', vm('v8-b', 'v8', [{ name: 'a' }, { name: 'b', network: 'multus' }])),
    );
    expect(full.body.response.allowed).toBe(false);
    expect(full.body.response.status).toMatchObject({ code: 403 });
    expect(full.body.response.status.message).toContain('the range is full');
    expect(full.body.response.status.message).toContain('02:00:00:00:08:00-02:00:00:00:08:02');
    const owners = [...(await activeClaims(h.db)).values()].map((c) => c.name);
    expect(owners.sort()).toEqual(['v8-a', 'v8-a']);
    const lastReq = review('CREATE', vm('v8-c', 'v8', [{ name: 'a' }]));
    const last = await h.post(MUTATE, lastReq);
    expect(last.body.response.allowed).toBe(true);
    const remaining = macsOf(mutated(lastReq, last.body)).a;
    expect(['02:00:00:00:08:00', '02:00:00:00:08:01', '02:00:00:00:08:02']).toContain(remaining);
    expect(h.logs.some((l) => l.message === 'MAC range is full' && l.event === 'range-full')).toBe(true);
  });
});

describe('namespace opt-out and opt-in (V9)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
    await h.db
      .doc('clusters/default/namespaces/skipped')
      .set({ labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' } });
    await h.db
      .doc('clusters/default/namespaces/chosen')
      .set({ labels: { 'mutatevirtualmachines.kubemacpool.io': 'allocate' } });
  });
  afterAll(async () => h.close());

  it('opt-out: a namespace labelled ignore is left alone: no patch, no writes', async () => {
    const before = await documentCount(h.db);
    const res = await h.post(
      MUTATE,
      review('CREATE', vm('v9', 'skipped', [{ name: 'default' }, { name: 'bad', network: 'multus', mac: 'nonsense' }])),
    );
    expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
    expect(await documentCount(h.db)).toBe(before);
  });

  it('opt-out: an unlabelled namespace is served', async () => {
    const res = await h.post(MUTATE, review('CREATE', vm('v9', 'plain', [{ name: 'default' }])));
    expect(patchOf(res.body).some((o) => o.path.endsWith('macAddress'))).toBe(true);
  });

  it('opt-in (config/settings optMode): only namespaces labelled allocate are served', async () => {
    await h.db.doc('config/settings').set({ optMode: 'opt-in' });
    const opt = await startFunction({ projectId: h.projectId }); // a fresh instance reads the setting at once
    try {
      const plain = await opt.post(MUTATE, review('CREATE', vm('v9-in', 'plain', [{ name: 'default' }])));
      expect(plain.body.response).toEqual({ uid: expect.any(String), allowed: true });
      const chosen = await opt.post(MUTATE, review('CREATE', vm('v9-in', 'chosen', [{ name: 'default' }])));
      expect(patchOf(chosen.body).some((o) => o.path.endsWith('macAddress'))).toBe(true);
    } finally {
      await opt.close();
    }
  });
});
