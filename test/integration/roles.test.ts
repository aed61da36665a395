/**
 * Role-scoped credentials (S4), through the webhook URLs webhookConfigurations() generates: each role's URL works
 * for its role and for nothing else. Every credential a cluster has (each role's, and the secret) is sent to every
 * path, in the URL path and as a Bearer header; a credential that does not match the path's role gets a bare 401
 * and changes nothing in Firestore, except that a DELETE on the VM CREATE/UPDATE credential is allowed and
 * releases nothing (D1). Rotation: the credentials derived from a previous secret keep working for every role.
 */
import { namespaceDigest } from '../../shared/fingerprint.js';
import type { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CredentialSource, type Role, ROLES, roleCredential } from '../../shared/credentials.js';
import { reconcileHeaders, webhookPaths } from '../support/credentials.js';
import {
  hcoReview,
  macsOf,
  namespaceReview,
  networksOf,
  pod,
  podReview,
  review,
  stored,
  storedPod,
  vm,
} from '../support/fixtures.js';
import { activeClaims, claims, type Harness, startFunction } from '../support/harness.js';
import { count, note } from '../support/record.js';

const SECRET = 'east-secret-0123456789abcdef0123';
const PREVIOUS = 'east-previous-fedcba9876543210fe';
const LABEL = 'mutatevirtualmachines.kubemacpool.io';
const POD_LABEL = 'mutatepods.kubemacpool.io';
const RANGE = { rangeStart: '02:20:00:00:00:00', rangeEnd: '02:20:00:00:ff:ff' };
const OLD_RANGE = { rangeStart: '02:00:00:00:00:00', rangeEnd: '02:ff:ff:ff:ff:ff' };

/** What a path's role can change: the claims, the namespace mirror and the range. */
async function state(db: Firestore): Promise<string> {
  const [macs, namespaces, range] = await Promise.all([
    claims(db),
    db.collectionGroup('namespaces').get(),
    db.doc('config/kubeMacPoolConfiguration').get(),
  ]);
  return JSON.stringify({
    macs: [...macs].sort(),
    namespaces: namespaces.docs.map((d) => [d.ref.path, d.data()]).sort(),
    range: range.data() ?? null,
  });
}

type Target = 'create' | 'delete' | 'pod' | 'podDelete' | 'namespace' | 'hyperconverged' | 'reconcile';
/** The role each target needs; DELETE on the VM and pod paths is the release role's. */
const NEEDS: Record<Target, Role> = {
  create: 'vm',
  delete: 'release',
  pod: 'pod',
  podDelete: 'release',
  namespace: 'namespace-sync',
  hyperconverged: 'hyperconverged-sync',
  reconcile: 'reconcile',
};
const TARGETS = Object.keys(NEEDS) as Target[];

describe('role-scoped credentials (S4)', () => {
  let h: Harness;
  let victim: any;
  let podVictim: any;
  const inventory: any[] = [];
  const paths = webhookPaths(SECRET);
  beforeAll(async () => {
    h = await startFunction({
      tokens: [
        { cluster: 'east', token: SECRET },
        { cluster: 'east', token: PREVIOUS },
      ],
    });
    await h.db.doc('config/kubeMacPoolConfiguration').set(OLD_RANGE);
    const req = review('CREATE', vm('victim', 'tenant', [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const res = await h.post(paths.mutateVirtualMachines, req);
    expect(res.body.response.allowed).toBe(true);
    victim = stored(req, res.body, 'uid-victim');
    inventory.push(victim);
    // A pod with a claim, in a namespace opted in for pods (M4).
    await h.post(paths.syncNamespaces, namespaceReview('CREATE', 'pods', { [POD_LABEL]: 'allocate' }));
    const podReq = podReview('CREATE', pod('pod-victim', 'pods', 'br'));
    const podRes = await h.post(paths.mutatePods, podReq);
    expect(networksOf(podReq, podRes.body)[0].mac).toBeDefined();
    podVictim = storedPod(podReq, podRes.body, 'uid-pod-victim');
  });
  afterAll(async () => h.close());

  /** A request for a target that, were it authorized, would change something. */
  const send = (target: Target, credential: string, source: CredentialSource) => {
    const path = {
      create: paths.mutateVirtualMachines,
      delete: paths.releaseVirtualMachines,
      pod: paths.mutatePods,
      podDelete: paths.releasePods,
      namespace: paths.syncNamespaces,
      hyperconverged: paths.validateHyperConverged,
      reconcile: '/reconcile',
    }[target].replace(/^\/t\/[^/]+/, '');
    const body = {
      create: review('CREATE', vm(`intruder-${source}`, 'tenant', [{ name: 'default' }])),
      delete: review('DELETE', null, victim),
      pod: podReview('CREATE', pod(`intruder-${source}`, 'pods', 'br')),
      podDelete: podReview('DELETE', null, podVictim),
      namespace: namespaceReview('CREATE', 'tenant', { [LABEL]: 'ignore' }),
      hyperconverged: hcoReview('UPDATE', RANGE, OLD_RANGE),
      // A stored VM whose MAC has no claim: a reconcile would claim it (R3).
      reconcile: {
        kind: 'List',
        items: [
          victim,
          vm('healme', 'tenant', [{ name: 'n', network: 'multus', mac: '02:00:00:aa:00:01' }], { uid: 'u-h' }),
        ],
      },
    }[target];
    return source === 'path'
      ? h.post(`/t/${credential}${path}`, body)
      : h.post(path, body, { authorization: `Bearer ${credential}` });
  };

  const CROSS = ROLES.flatMap((held) =>
    TARGETS.filter(
      (t) => NEEDS[t] !== held && !(held === 'vm' && t === 'delete') && !(held === 'pod' && t === 'podDelete'),
    ).flatMap((target) => (['path', 'bearer'] as const).map((source) => ({ held, target, source }))),
  );
  /** What each refused credential tried, for the reliability record. */
  const tried = new Map<string, Set<string>>();

  it.each(CROSS)('the $held credential ($source) gets 401 from $target and changes nothing', async (c) => {
    const before = await state(h.db);
    const res = await send(c.target, roleCredential(SECRET, c.held), c.source);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthorized' });
    expect(await state(h.db)).toBe(before);
    (tried.get(c.held) ?? tried.set(c.held, new Set()).get(c.held)!).add(`${c.target} (${c.source})`);
  });

  it.each(TARGETS.filter((t) => t !== 'reconcile').map((target) => ({ target })))(
    'the reconcile credential in the URL path gets 401 from $target too',
    async ({ target }) => {
      const res = await send(target, roleCredential(SECRET, 'reconcile'), 'path');
      expect(res.status).toBe(401);
    },
  );

  it.each(TARGETS.map((target) => ({ target })))(
    'the cluster secret in the URL path gets 401 from $target (it is accepted only as a header)',
    async ({ target }) => {
      const before = await state(h.db);
      const res = await send(target, SECRET, 'path');
      expect(res.status).toBe(401);
      expect(await state(h.db)).toBe(before);
    },
  );

  it.each(['path', 'bearer'] as const)(
    'D1: a DELETE on the VM CREATE/UPDATE credential (%s) is allowed and releases nothing',
    async (source) => {
      const before = await activeClaims(h.db);
      expect(before.size).toBe(3); // the VM's two, the pod's one
      const res = await send('delete', roleCredential(SECRET, 'vm'), source);
      expect(res.status).toBe(200);
      expect(res.body.response.allowed).toBe(true);
      expect(await activeClaims(h.db)).toEqual(before);
      expect(h.logs.at(-1)).toMatchObject({ outcome: 'allowed-without-release-role', role: 'vm' });
    },
  );

  it.each(['path', 'bearer'] as const)(
    'M5: a pod DELETE on the pod credential (%s) is allowed and releases nothing',
    async (source) => {
      const before = await activeClaims(h.db);
      const res = await send('podDelete', roleCredential(SECRET, 'pod'), source);
      expect(res.status).toBe(200);
      expect(res.body.response.allowed).toBe(true);
      expect(await activeClaims(h.db)).toEqual(before);
      expect(h.logs.at(-1)).toMatchObject({ outcome: 'allowed-without-release-role', role: 'pod' });
    },
  );

  // The positive cases change state, so they run after every refusal above.
  describe.each([
    { name: 'its role credential', secret: SECRET, source: 'role' as const },
    { name: 'the role credential of the previous secret (rotation)', secret: PREVIOUS, source: 'role' as const },
    { name: 'the cluster secret as a Bearer header', secret: SECRET, source: 'secret' as const },
  ])('each role works with $name', ({ secret, source }) => {
    const credential = (role: Role) => (source === 'secret' ? secret : roleCredential(secret, role));
    const via = (role: Role): CredentialSource => (source === 'secret' || role === 'reconcile' ? 'bearer' : 'path');
    const tag = `${source}-${secret.slice(0, 4)}`;

    it('vm: a CREATE through the VM webhook URL claims its MACs', async () => {
      const req = review('CREATE', vm(`vm-${tag}`, 'tenant', [{ name: 'default' }]));
      const res =
        via('vm') === 'path'
          ? await h.post(webhookPaths(secret).mutateVirtualMachines, req)
          : await h.post('/mutate-virtualmachines', req, { authorization: `Bearer ${credential('vm')}` });
      expect(res.body.response.allowed).toBe(true);
      const mac = macsOf(stored(req, res.body)).default!;
      expect((await activeClaims(h.db)).get(mac)).toMatchObject({ cluster: 'east', name: `vm-${tag}` });
    });

    it('release: a DELETE through the release webhook URL frees the VM', async () => {
      const req = review('CREATE', vm(`rel-${tag}`, 'tenant', [{ name: 'default' }]));
      const created = await h.post(paths.mutateVirtualMachines, req);
      const mac = macsOf(stored(req, created.body)).default!;
      const del = review('DELETE', null, stored(req, created.body));
      const res =
        via('release') === 'path'
          ? await h.post(webhookPaths(secret).releaseVirtualMachines, del)
          : await h.post('/mutate-virtualmachines', del, { authorization: `Bearer ${credential('release')}` });
      expect(res.body.response.allowed).toBe(true);
      expect((await activeClaims(h.db)).has(mac)).toBe(false);
    });

    it('pod: a CREATE through the pod webhook URL claims its MACs, and a DELETE through the release URL frees them', async () => {
      const req = podReview('CREATE', pod(`pod-${tag}`, 'pods', 'br'));
      const res =
        via('pod') === 'path'
          ? await h.post(webhookPaths(secret).mutatePods, req)
          : await h.post('/mutate-pods', req, { authorization: `Bearer ${credential('pod')}` });
      const mac = networksOf(req, res.body)[0].mac;
      expect((await activeClaims(h.db)).get(mac)).toMatchObject({ cluster: 'east', kind: 'pod', name: `pod-${tag}` });
      const del = podReview('DELETE', null, storedPod(req, res.body));
      const freed =
        via('release') === 'path'
          ? await h.post(webhookPaths(secret).releasePods, del)
          : await h.post('/mutate-pods', del, { authorization: `Bearer ${credential('release')}` });
      expect(freed.body.response.allowed).toBe(true);
      expect((await activeClaims(h.db)).has(mac)).toBe(false);
    });

    it('namespace-sync: the namespace webhook URL mirrors the opt label', async () => {
      const name = `ns-${tag}`;
      const req = namespaceReview('CREATE', name, { [LABEL]: 'ignore' });
      const res =
        via('namespace-sync') === 'path'
          ? await h.post(webhookPaths(secret).syncNamespaces, req)
          : await h.post('/validate-namespaces', req, { authorization: `Bearer ${credential('namespace-sync')}` });
      expect(res.body.response.allowed).toBe(true);
      expect((await h.db.doc(`clusters/east/namespaces/${name}`).get()).data()).toEqual({
        labels: { [LABEL]: 'ignore' },
        digest: namespaceDigest(name, { [LABEL]: 'ignore' }),
      });
    });

    it('hyperconverged-sync: the HyperConverged webhook URL syncs the range', async () => {
      const req = hcoReview('UPDATE', RANGE, OLD_RANGE);
      const res =
        via('hyperconverged-sync') === 'path'
          ? await h.post(webhookPaths(secret).validateHyperConverged, req)
          : await h.post('/validate-hyperconverged', req, {
              authorization: `Bearer ${credential('hyperconverged-sync')}`,
            });
      expect(res.body.response.allowed).toBe(true);
      expect((await h.db.doc('config/kubeMacPoolConfiguration').get()).data()).toMatchObject(RANGE);
      await h.db.doc('config/kubeMacPoolConfiguration').set(OLD_RANGE);
    });

    it('reconcile: /reconcile takes its credential as a header and claims what the inventory shows', async () => {
      const mac = `02:00:00:bb:00:0${secret === PREVIOUS ? 1 : source === 'secret' ? 2 : 3}`;
      // Every VM an earlier case stored stays in the inventory: a reconcile that would free bound claims is refused (R8).
      inventory.push(vm(`inv-${tag}`, 'tenant', [{ name: 'n', network: 'multus', mac }], { uid: `u-${tag}` }));
      const headers = source === 'secret' ? { authorization: `Bearer ${secret}` } : reconcileHeaders(secret);
      const res = await h.post('/reconcile', { kind: 'List', items: inventory }, headers);
      expect(res.status).toBe(200);
      expect((await activeClaims(h.db)).get(mac)).toMatchObject({ cluster: 'east', name: `inv-${tag}` });
    });
  });

  it('S1: no log line holds a secret or a role credential', () => {
    const all = JSON.stringify(h.logs);
    expect(h.logs.length).toBeGreaterThan(CROSS.length);
    for (const secret of [SECRET, PREVIOUS]) {
      for (const c of [secret, ...ROLES.map((role) => roleCredential(secret, role))]) {
        for (let i = 0; i + 16 <= c.length; i += 8) expect(all).not.toContain(c.slice(i, i + 16));
      }
    }
    // The refusals say where the credential came from and which path it was for, never what it was.
    const refused = h.logs.filter((l) => l.message === 'unauthorized request');
    expect(refused.length).toBeGreaterThan(CROSS.length);
    for (const l of refused) expect(l.path).toMatch(/^\/[a-z-]+$/);
    for (const [held, targets] of tried) {
      note({
        area: 'Auth',
        case: `The ${held} credential, in the URL path and as a Bearer header, on every path of another role`,
        runs: count(targets.size, 'requests'),
        outcome:
          `every one a bare 401 with claims, namespace mirror and range unchanged (${[...targets].join(', ')})` +
          (held === 'vm' || held === 'pod' ? '; a DELETE on it allowed, 0 claims released' : ''),
      });
    }
    note({
      area: 'Auth',
      case: "The cluster secret in the URL path on every path; rotation: both secrets' credentials for every role",
      runs: count(TARGETS.length + 15, 'requests'),
      outcome: `the secret in a path a bare 401 everywhere, nothing changed; every role worked with its own credential, the previous secret's and the secret as a header; 0 of ${h.logs.length} log lines hold a credential`,
    });
  });
});
