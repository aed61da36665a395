/**
 * Pods on Multus networks (M1-M6) against the emulator, with pods from Multus' and KubeMacPool's own examples.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claims, documentCount, type Harness, startFunction } from '../support/harness.js';
import { note } from '../support/record.js';
import {
  example,
  macsOf,
  mutated,
  namespaceReview,
  networksOf,
  NETWORKS,
  patchOf,
  pod,
  podReview,
  review,
  storedPod,
  vm,
} from '../support/fixtures.js';

const PODS = '/mutate-pods';
const VMS = '/mutate-virtualmachines';
const CANONICAL = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const POD_LABEL = 'mutatepods.kubemacpool.io';

/** What the CronJob sends: the VMs and namespaces, and the pods on Multus networks, marked as covering pods. */
function inventory(items: { vms?: any[]; pods?: any[] }) {
  const list = (entries: any[]) => ({ apiVersion: 'v1', kind: 'List', items: entries, metadata: {} });
  return { inventory: [list(items.vms ?? []), list(items.pods ?? [])], pods: true, force: true };
}

describe('pods on Multus networks (/mutate-pods)', () => {
  let h: Harness;
  let clock = Date.parse('2026-12-03T12:00:00Z');
  // Namespaces opted in with the pod label (M4: pods are opt-in by default), mirrored the way the cluster does it.
  const optIn = async (namespace: string, value = 'allocate') => {
    const res = await h.post('/validate-namespaces', namespaceReview('CREATE', namespace, { [POD_LABEL]: value }));
    expect(res.body.response.allowed).toBe(true);
  };
  const create = async (p: any, options: { uid?: string; dryRun?: boolean } = {}) => {
    const req = podReview('CREATE', p, null, options);
    const res = await h.post(PODS, req);
    expect(res.status).toBe(200);
    return { req, res, response: res.body.response };
  };
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
    for (const ns of ['default', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']) await optIn(ns);
  });
  afterAll(async () => h.close());

  it('M1: the Multus quickstart pod (short form) gets a MAC; the patch rewrites only the annotation, as a JSON list', async () => {
    const req = example('create-pod-multus-short');
    const res = await h.post(PODS, req);
    expect(res.body.response).toMatchObject({ uid: req.request.uid, allowed: true, patchType: 'JSONPatch' });
    const ops = patchOf(res.body);
    expect(ops.map((o) => [o.op, o.path])).toEqual([['replace', '/metadata/annotations/k8s.v1.cni.cncf.io~1networks']]);
    const networks = networksOf(req, res.body);
    expect(networks).toEqual([{ name: 'macvlan-conf', mac: expect.stringMatching(CANONICAL) }]);
    // Nothing else of the pod changed.
    const after = mutated(req, res.body);
    after.metadata.annotations[NETWORKS] = req.request.object.metadata.annotations[NETWORKS];
    expect(after).toEqual(req.request.object);
    expect((await claims(h.db)).get(networks[0].mac)).toMatchObject({
      state: 'pending',
      kind: 'pod',
      cluster: 'default',
      namespace: 'default',
      name: 'samplepod',
      interface: 'net1',
      origin: 'allocated',
    });
  });

  it('M1: the JSON form keeps every element as given (fields, order, ips, cni-args) and adds only `mac`', async () => {
    const req = example('create-pod-multus-json');
    const res = await h.post(PODS, req);
    const networks = networksOf(req, res.body);
    expect(networks).toEqual([
      { name: 'macvlan-conf-1', interface: 'macvlan1', mac: expect.stringMatching(CANONICAL) },
      { name: 'macvlan-conf-2', mac: expect.stringMatching(CANONICAL) },
    ]);
    const docs = await claims(h.db);
    expect(docs.get(networks[0].mac)).toMatchObject({ kind: 'pod', name: 'pod-case-06', interface: 'macvlan1' });
    expect(docs.get(networks[1].mac)).toMatchObject({ kind: 'pod', name: 'pod-case-06', interface: 'net2' });

    // KMP's round-trip case: several networks with `ips` arrays, and cni-args, keep their fields and their order.
    const given = [
      { name: 'br1', namespace: 'p1', ips: ['10.1.1.10/24'], 'cni-args': { foo: 'bar' }, interface: 'eth1' },
      { interface: 'eth2', name: 'br2', ips: ['10.1.2.10/24', 'fd00::10/64'] },
    ];
    const { req: r2, res: res2 } = await create(pod('ips', 'p1', JSON.stringify(given)));
    const after = networksOf(r2, res2.body);
    expect(after.map((e: any) => Object.keys(e))).toEqual([
      ['name', 'namespace', 'ips', 'cni-args', 'interface', 'mac'],
      ['interface', 'name', 'ips', 'mac'],
    ]);
    expect(after.map((e: any) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'mac')))).toEqual(given);
  });

  it('M1: the short form with namespaces and interfaces becomes the JSON list it stands for', async () => {
    const { req, res } = await create(pod('short', 'p1', 'macvlan-conf-1@macvlan1, testns1/macvlan-conf-3'));
    expect(networksOf(req, res.body)).toEqual([
      { name: 'macvlan-conf-1', interface: 'macvlan1', mac: expect.stringMatching(CANONICAL) },
      { name: 'macvlan-conf-3', namespace: 'testns1', mac: expect.stringMatching(CANONICAL) },
    ]);
  });

  it('M2: a requested MAC is claimed as written, with no patch; one outside the range is claimed with a warning', async () => {
    const { response } = await create(pod('req', 'p2', '[{"name":"ovs-conf","mac":"02-00-00-00-0A-01"}]'));
    expect(response).toMatchObject({ allowed: true });
    expect(response.patch).toBeUndefined();
    expect((await claims(h.db)).get('02:00:00:00:0a:01')).toMatchObject({ kind: 'pod', origin: 'requested' });
    const outside = await create(pod('out', 'p2', '[{"name":"ovs-conf","mac":"0a:00:00:00:00:01"}]'));
    expect(outside.response.allowed).toBe(true);
    expect(outside.response.warnings?.[0]).toContain('outside the pool range');
    expect(outside.response.warnings?.[0]).toContain('reserved for this pod');
  });

  it('M2: a duplicate within one pod, a multicast or malformed MAC is denied with 422', async () => {
    const cases = [
      {
        networks: '[{"name":"a","mac":"02:00:00:00:0a:02"},{"name":"b","mac":"02-00-00-00-0a-02"}]',
        message: 'duplicate MAC address 02:00:00:00:0a:02 found on interfaces: net1 and net2',
      },
      {
        networks: '[{"name":"a","mac":"03:00:00:00:00:01"}]',
        message: "a pod's network attachment needs a unicast MAC",
      },
      {
        networks: '[{"name":"a","mac":"not-a-mac"}]',
        message: 'invalid MAC address format for interface net1: not-a-mac',
      },
      {
        networks: '[{"name":"a","interface":"eth1"},{"name":"b","interface":"eth1"}]',
        message: 'every network attachment of a pod must have its own interface name (eth1 appears twice)',
      },
    ];
    const before = await documentCount(h.db);
    for (const c of cases) {
      const { response } = await create(pod('dup', 'p2', c.networks));
      expect(response.allowed, c.networks).toBe(false);
      expect(response.status.code).toBe(422);
      expect(response.status.message).toContain(c.message);
    }
    expect(await documentCount(h.db)).toBe(before);
  });

  it.each([
    { networks: 'not json [', problem: 'is not valid JSON' },
    { networks: '{"name":"a"}', problem: 'must be a JSON list of network selection elements' },
    { networks: '[{"name":"a","ips":"10.0.0.1"}]', problem: 'element 1.ips: must be a list of strings' },
    { networks: '[{"namespace":"x"}]', problem: 'element 1.name: must be a string' },
    { networks: '[42]', problem: 'element 1: must be an object' },
    { networks: 'a/b/c', problem: 'more than one "/"' },
    { networks: 'net@if@x', problem: 'more than one "@"' },
    { networks: 'Net_1', problem: '"Net_1" is not a valid name' },
    { networks: 'net1@averyveryverylongname', problem: 'longer than 15 bytes' },
    { networks: 'net1, ,net2', problem: 'no network name' },
  ])('a malformed annotation ($networks) is denied with 422 saying what is wrong', async ({ networks, problem }) => {
    const { response } = await create(pod('bad', 'p2', networks));
    expect(response.allowed).toBe(false);
    expect(response.status.code).toBe(422);
    expect(response.status.message).toContain(`invalid Pod: metadata.annotations["${NETWORKS}"]`);
    expect(response.status.message).toContain(problem);
  });

  it("V5 across kinds: a pod asking for a VM's MAC is denied naming the VM, a VM asking for a pod's naming the pod", async () => {
    const vmReq = review('CREATE', vm('holder', 'p3', [{ name: 'n', network: 'multus', mac: '02:00:00:00:0b:01' }]));
    expect((await h.post(VMS, vmReq)).body.response.allowed).toBe(true);
    const { response } = await create(pod('wants', 'p3', '[{"name":"ovs","mac":"02:00:00:00:0b:01"}]'));
    expect(response.status).toMatchObject({ code: 409 });
    expect(response.status.message).toBe(
      'MAC address 02:00:00:00:0b:01 requested for interface net1 is already in use by virtual machine holder',
    );
    await create(pod('podholder', 'p3', '[{"name":"ovs","mac":"02:00:00:00:0b:02"}]'));
    const vm2 = review('CREATE', vm('wants', 'p3', [{ name: 'n', network: 'multus', mac: '02:00:00:00:0b:02' }]));
    const denied = (await h.post(VMS, vm2)).body.response;
    expect(denied.status.message).toBe(
      'MAC address 02:00:00:00:0b:02 requested for interface n is already in use by pod podholder',
    );
  });

  it.each([
    {
      name: "a virt-launcher pod (KubeVirt's label)",
      p: pod('virt-launcher-vm-abcde', 'p4', '[{"name":"br"}]', { labels: { 'kubevirt.io': 'virt-launcher' } }),
      outcome: 'virt-launcher',
    },
    {
      name: 'a pod Multus already set up (network-status present)',
      p: pod('ready', 'p4', 'br', { annotations: { 'k8s.v1.cni.cncf.io/network-status': '[]' } }),
      outcome: 'network-status-present',
    },
    { name: 'a pod without the annotation', p: pod('plain', 'p4', undefined), outcome: 'no-networks' },
    { name: 'a pod with an empty annotation', p: pod('empty', 'p4', '  '), outcome: 'no-networks' },
    {
      name: 'a pod in a namespace not opted in (M4: opt-in)',
      p: pod('x', 'unlabelled', 'br'),
      outcome: 'namespace-not-managed',
    },
  ])('M3: $name is allowed unchanged and nothing is written', async ({ p, outcome }) => {
    const before = await documentCount(h.db);
    const { response } = await create(p);
    expect(response).toEqual({ uid: expect.any(String), allowed: true });
    expect(await documentCount(h.db)).toBe(before);
    expect(h.logs.at(-1)).toMatchObject({ outcome, kind: 'pod' });
  });

  it('V10, V13: a dry run writes nothing; a repeated request gets the same MACs and writes nothing more', async () => {
    const before = await documentCount(h.db);
    const dry = await create(pod('dry', 'p7', 'a,b'), { dryRun: true });
    expect(networksOf(dry.req, dry.res.body)).toHaveLength(2);
    expect(await documentCount(h.db)).toBe(before);
    const first = await create(pod('again', 'p7', 'a,b'), { uid: 'repeat-uid' });
    const second = await create(pod('again', 'p7', 'a,b'), { uid: 'repeat-uid' });
    expect(networksOf(second.req, second.res.body)).toEqual(networksOf(first.req, first.res.body));
    expect(await documentCount(h.db)).toBe(before + 2);
  });

  it('V12: ReplicaSet pods (generateName) get distinct MACs, claimed by request until a reconcile names them', async () => {
    const template = example('create-pod-generate-name');
    const reqs = [0, 1, 2].map(() => {
      const r = structuredClone(template);
      r.request.uid = crypto.randomUUID();
      return r;
    });
    const results = await Promise.all(reqs.map((r) => h.post(PODS, r)));
    const macs = results.map((res, i) => networksOf(reqs[i], res.body)[0].mac);
    expect(new Set(macs).size).toBe(3);
    const docs = await claims(h.db);
    for (const [i, mac] of macs.entries()) {
      expect(docs.get(mac)).toMatchObject({ kind: 'pod', name: '', requestUid: reqs[i]!.request.uid });
    }
    // The API server stores them with generated names; a reconcile binds each claim to its pod (V12, M6).
    const podsStored = results.map((res, i) => storedPod(reqs[i], res.body, `uid-rs-${i}`));
    clock += 1_000;
    const report = await h.post('/reconcile', inventory({ pods: podsStored }));
    expect(report.status).toBe(200);
    const after = await claims(h.db);
    for (const [i, mac] of macs.entries()) {
      expect(after.get(mac)).toMatchObject({ state: 'bound', name: podsStored[i].metadata.name, uid: `uid-rs-${i}` });
    }
  });

  it('M5: a pod DELETE releases its claims, only with the uid they recorded; a VM DELETE of the same name never does', async () => {
    const { req, res } = await create(pod('web', 'p8', 'br-a,br-b'));
    const stored = storedPod(req, res.body, 'uid-web');
    const macs = networksOf(req, res.body).map((n: any) => n.mac);
    clock += 1_000;
    await h.post('/reconcile', inventory({ pods: [stored] }));
    expect((await claims(h.db)).get(macs[0])).toMatchObject({ state: 'bound', uid: 'uid-web' });

    // A VM named like the pod, deleted: the pod's claims are not the VM's.
    const vmDelete = review('DELETE', null, vm('web', 'p8', [{ name: 'default' }], { uid: 'uid-web' }));
    expect((await h.post(VMS, vmDelete)).body.response.allowed).toBe(true);
    // A stale DELETE of an earlier pod of that name (another uid) releases nothing.
    const stale = { ...stored, metadata: { ...stored.metadata, uid: 'uid-older' } };
    expect((await h.post(PODS, podReview('DELETE', null, stale))).body.response.allowed).toBe(true);
    for (const mac of macs) expect((await claims(h.db)).get(mac)).toMatchObject({ state: 'bound' });

    const del = await h.post(PODS, podReview('DELETE', null, stored));
    expect(del.body.response).toEqual({ uid: expect.any(String), allowed: true });
    const after = await claims(h.db);
    for (const mac of macs) {
      // U6: the pod may still be terminating; the release is confirmed once a reconcile shows it gone.
      expect(after.get(mac)).toMatchObject({ state: 'released', releasedBy: 'DELETE', kind: 'pod' });
      expect(after.get(mac)?.releaseConfirmedAt).toBeUndefined();
    }
  });

  it("M5: a pod's DELETE never frees a nameless (generateName) claim just because its annotation names the MAC", async () => {
    const rs = example('create-pod-generate-name');
    rs.request.uid = crypto.randomUUID();
    rs.request.namespace = rs.request.object.metadata.namespace = 'p8';
    const res = await h.post(PODS, rs);
    const mac = networksOf(rs, res.body)[0].mac;
    // Another pod of the namespace, its annotation edited (pod UPDATEs do not pass the webhook) to name that MAC.
    const other = pod('squatter', 'p8', JSON.stringify([{ name: 'ovs-conf', mac }]), { uid: 'uid-squatter' });
    expect((await h.post(PODS, podReview('DELETE', null, other))).body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(mac)).toMatchObject({ state: 'pending', name: '' });
  });

  it('the example DELETE is always allowed, and with no claim for its MAC releases nothing', async () => {
    const res = await h.post(PODS, example('delete-pod-multus'));
    expect(res.body.response).toEqual({ uid: example('delete-pod-multus').request.uid, allowed: true });
  });
});

describe('reconcile with pods (M6)', () => {
  let h: Harness;
  let clock = Date.parse('2026-12-03T12:00:00Z');
  const twinVm = vm('twin', 'r', [{ name: 'n', network: 'multus', mac: '02:00:00:00:c0:01' }], { uid: 'uid-twin' });
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
    await h.post('/validate-namespaces', namespaceReview('CREATE', 'r', { [POD_LABEL]: 'allocate' }));
  });
  afterAll(async () => h.close());

  it('binds listed pods, releases the claims of pods gone or finished, leaves pod claims alone without pods, reports pod-VM and pod-pod collisions', async () => {
    const made = async (name: string, networks: string) => {
      const req = podReview('CREATE', pod(name, 'r', networks));
      const res = await h.post(PODS, req);
      return { stored: storedPod(req, res.body, `uid-${name}`), mac: networksOf(req, res.body)[0].mac as string };
    };
    const alive = await made('alive', 'br');
    const gone = await made('gone', 'br');
    const finished = await made('finished', 'br');
    const finishedPod = { ...finished.stored, status: { phase: 'Succeeded' } };
    // A VM and two pods carrying one MAC the pool never handed out: collisions of every pair.
    const twinPodA = pod('twin-a', 'r', '[{"name":"br","mac":"02:00:00:00:c0:01"}]', {
      uid: 'uid-ta',
      phase: 'Running',
    });
    const twinPodB = pod('twin-b', 'r', '[{"name":"br","mac":"02:00:00:00:c0:02"}]', {
      uid: 'uid-tb',
      phase: 'Running',
    });
    const twinPodC = pod('twin-c', 'r', '[{"name":"br","mac":"02-00-00-00-C0-02"}]', {
      uid: 'uid-tc',
      phase: 'Running',
    });

    // An inventory of VMs only says nothing about pods: their claims stay as they are, whatever their age.
    clock += 3_600_000;
    const vmsOnly = await h.post('/reconcile', {
      inventory: { apiVersion: 'v1', kind: 'List', items: [twinVm] },
      force: true,
    });
    expect(vmsOnly.body).not.toHaveProperty('pods');
    for (const m of [alive.mac, gone.mac, finished.mac]) expect((await claims(h.db)).get(m)?.state).toBe('pending');

    const res = await h.post(
      '/reconcile',
      inventory({ vms: [twinVm], pods: [alive.stored, finishedPod, twinPodA, twinPodB, twinPodC] }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ vms: 1, pods: 4 });
    const docs = await claims(h.db);
    expect(docs.get(alive.mac)).toMatchObject({ state: 'bound', kind: 'pod', name: 'alive', uid: 'uid-alive' });
    expect(docs.get(gone.mac)).toMatchObject({ state: 'released', releasedBy: 'reconcile' });
    expect(docs.get(finished.mac)).toMatchObject({ state: 'released', releasedBy: 'reconcile' });
    // R3: the MAC a VM and a pod both carry is healed for the VM; the pods' own for the first pod.
    expect(docs.get('02:00:00:00:c0:01')).toMatchObject({ state: 'bound', kind: 'vm', name: 'twin', origin: 'healed' });
    expect(docs.get('02:00:00:00:c0:02')).toMatchObject({ state: 'bound', kind: 'pod', name: 'twin-b' });
    expect(res.body.collisions).toEqual([
      { mac: '02:00:00:00:c0:01', vms: ['r/twin'], pods: ['r/twin-a'], otherCluster: false },
      { mac: '02:00:00:00:c0:02', vms: [], pods: ['r/twin-b', 'r/twin-c'], otherCluster: false },
    ]);
  });

  it('R8: an inventory that covers pods but lists none does not release bound pod claims unless forced', async () => {
    const req = podReview('CREATE', pod('kept', 'r', 'br'));
    const res = await h.post(PODS, req);
    const mac = networksOf(req, res.body)[0].mac;
    clock += 1_000;
    await h.post('/reconcile', inventory({ pods: [storedPod(req, res.body, 'uid-kept')] }));
    clock += 3_600_000;
    const refused = await h.post('/reconcile', { ...inventory({ vms: [twinVm] }), force: false });
    expect(refused.status).toBe(409);
    expect(refused.body.refused).toContain('lists no pod on a Multus network');
    expect((await claims(h.db)).get(mac)?.state).toBe('bound');
  });

  it('finished pods are evidence: releasing their bound claims is not refused, however many they are (R8)', async () => {
    const made = await Promise.all(
      ['job-a', 'job-b'].map(async (name) => {
        const req = podReview('CREATE', pod(name, 'r', 'br'));
        const res = await h.post(PODS, req);
        return { stored: storedPod(req, res.body, `uid-${name}`), mac: networksOf(req, res.body)[0].mac as string };
      }),
    );
    clock += 1_000;
    await h.post('/reconcile', inventory({ vms: [twinVm], pods: made.map((m) => m.stored) }));
    for (const m of made) expect((await claims(h.db)).get(m.mac)?.state).toBe('bound');
    clock += 3_600_000;
    const finished = made.map((m) => ({ ...m.stored, status: { phase: 'Succeeded' } }));
    const res = await h.post('/reconcile', { ...inventory({ vms: [twinVm], pods: finished }), force: false });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ pods: 0, finishedPods: 2 });
    for (const m of made) expect((await claims(h.db)).get(m.mac)?.state).toBe('released');
  });

  it("a pod's MACs are those Multus reports in network-status, not an annotation edited after the pod started", async () => {
    const req = podReview('CREATE', pod('edited', 'r', 'br'));
    const res = await h.post(PODS, req);
    const stored = storedPod(req, res.body, 'uid-edited');
    const mac = networksOf(req, res.body)[0].mac;
    stored.metadata.annotations['k8s.v1.cni.cncf.io/network-status'] = JSON.stringify([
      { name: 'default', interface: 'eth0', mac: '0a:58:0a:80:02:11', default: true },
      { name: 'r/br', interface: 'net1', mac },
    ]);
    // The annotation edited to another MAC: the pod's interface still has the one Multus gave it.
    stored.metadata.annotations[NETWORKS] = JSON.stringify([{ name: 'br', mac: '02:00:00:00:c0:99' }]);
    clock += 1_000;
    await h.post('/reconcile', inventory({ vms: [twinVm], pods: [stored] }));
    clock += 3_600_000;
    await h.post('/reconcile', inventory({ vms: [twinVm], pods: [stored] }));
    const docs = await claims(h.db);
    expect(docs.get(mac)).toMatchObject({ state: 'bound', name: 'edited' });
    expect(docs.has('02:00:00:00:c0:99')).toBe(false);
  });

  it('a VM example and the pod examples share one pool: no MAC twice', async () => {
    const vmRes = await h.post(VMS, example('create-vm-multus'));
    const vmMacs = Object.values(macsOf(mutated(example('create-vm-multus'), vmRes.body)));
    const podReq = example('create-pod-multus-json');
    podReq.request.namespace = 'r';
    podReq.request.object.metadata.namespace = 'r';
    const podMacs = networksOf(podReq, (await h.post(PODS, podReq)).body).map((n: any) => n.mac);
    expect(new Set([...vmMacs, ...podMacs]).size).toBe(vmMacs.length + podMacs.length);
  });
});

describe('pods with podOptMode opt-out (M4)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
    await h.db.doc('config/settings').set({ podOptMode: 'opt-out' });
    await h.post('/validate-namespaces', namespaceReview('CREATE', 'skipped', { [POD_LABEL]: 'ignore' }));
    await h.post(
      '/validate-namespaces',
      namespaceReview('CREATE', 'vm-label-only', { 'mutatevirtualmachines.kubemacpool.io': 'ignore' }),
    );
  });
  afterAll(async () => h.close());

  it.each([
    { namespace: 'skipped', served: false },
    { namespace: 'unlabelled', served: true },
    // The VM label says nothing about pods.
    { namespace: 'vm-label-only', served: true },
  ])('a pod in namespace $namespace is served: $served', async ({ namespace, served }) => {
    const res = await h.post(PODS, podReview('CREATE', pod('x', namespace, 'br')));
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.patch !== undefined).toBe(served);
  });
});

describe('U6 and R8 for pods, on a pool of their own', () => {
  let h: Harness;
  let clock = Date.parse('2026-12-03T12:00:00Z');
  const create = async (p: any) => {
    const req = podReview('CREATE', p, null);
    const res = await h.post(PODS, req);
    expect(res.body.response.allowed).toBe(true);
    return { req, res };
  };
  beforeAll(async () => {
    h = await startFunction({ now: () => new Date(clock) });
    const res = await h.post('/validate-namespaces', namespaceReview('CREATE', 'p9', { [POD_LABEL]: 'allocate' }));
    expect(res.body.response.allowed).toBe(true);
  });
  afterAll(async () => h.close());

  it('U6 for pods: a DELETE proves nothing, even with the annotation edited; others get the MAC once a reconcile shows the pod gone', async () => {
    const { req, res } = await create(pod('term', 'p9', 'br-a'));
    const stored = storedPod(req, res.body, 'uid-term');
    const [mac] = networksOf(req, res.body).map((n: any) => n.mac);
    // The annotation edited without the webhook (no mac any more): the pod still carries the MAC on the wire.
    const edited = structuredClone(stored);
    edited.metadata.annotations['k8s.v1.cni.cncf.io/networks'] = 'br-a';
    expect((await h.post(PODS, podReview('DELETE', null, edited))).body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(mac)).toMatchObject({ state: 'released', releasedBy: 'DELETE', uid: 'uid-term' });
    expect((await claims(h.db)).get(mac)?.releaseConfirmedAt).toBeUndefined();
    const pinned = () =>
      h.post(VMS, review('CREATE', vm('wants-it', 'vms-p9', [{ name: 'nic', network: 'multus', mac }])));
    const denied = await pinned();
    expect(denied.body.response).toMatchObject({ allowed: false, status: { code: 409 } });
    expect(denied.body.response.status.message).toContain('the pod that held it was updated or deleted');

    clock += 301_000; // past the wait time, within the cool-down
    // Terminating (deletionTimestamp set): the release waits.
    const terminating = {
      ...stored,
      metadata: { ...stored.metadata, deletionTimestamp: new Date(clock).toISOString() },
    };
    const other = storedPod(
      ...(await (async () => {
        const o = await create(pod('other', 'p9', 'br-b'));
        return [o.req, o.res.body, 'uid-other'] as const;
      })()),
    );
    expect((await h.post('/reconcile', inventory({ pods: [terminating, other] }))).body).toMatchObject({
      awaitingDeletion: 1,
      confirmed: 0,
    });
    expect((await pinned()).body.response.allowed).toBe(false);
    // An inventory listing no pod at all is no evidence (R8).
    const unforced = (items: { vms?: any[]; pods?: any[] }) => ({ ...inventory(items), force: false });
    expect((await h.post('/reconcile', unforced({ pods: [] }))).body).toMatchObject({
      withheldConfirmations: 1,
      confirmed: 0,
    });
    expect((await pinned()).body.response.allowed).toBe(false);
    // Gone, beside the namespace's other pod: confirmed, and the VM gets it at once.
    expect((await h.post('/reconcile', unforced({ pods: [other] }))).body).toMatchObject({ confirmed: 1 });
    expect((await pinned()).body.response.allowed).toBe(true);
    note({
      area: 'Releases',
      case: "A pod's DELETE with its networks annotation edited (no mac), then reconciles: terminating, an empty pod List, gone",
      runs: '3 requests, 3 reconciles',
      outcome:
        'unconfirmed after the DELETE, while terminating and after the empty List (withheld); a VM got the MAC once ' +
        "a reconcile listing the namespace's other pod saw it gone",
    });
  });
});
