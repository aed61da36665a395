/**
 * Hostile credentials (S1, S3, S4, D1): credentials that are missing, wrong, mangled, misplaced or another cluster's, and deletes forged
 * with the right names. A request without its cluster's token gets a bare 401 and changes nothing; a cluster's
 * token acts on that cluster's claims only; a DELETE frees a claim only for the VM whose uid the claim recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeClaims, claims, type Harness, startFunction } from '../support/harness.js';
import { macsOf, review, stored, vm } from '../support/fixtures.js';
import { count, note } from '../support/record.js';
import { reconcileHeaders, webhookPaths } from '../support/credentials.js';
import { ROLES, roleCredential } from '../../shared/credentials.js';

const MUTATE = '/mutate-virtualmachines';
const TOKEN_A = 'cluster-a-token-0123456789abcdef';
const TOKEN_A_NEXT = 'cluster-a-rotated-fedcba9876543210';
const TOKEN_B = 'cluster-b-token-abcdef0123456789';
const TOKENS = [TOKEN_A, TOKEN_A_NEXT, TOKEN_B];
/** Every secret and every credential derived from one: none may reach a log line. */
const CREDENTIALS = TOKENS.flatMap((t) => [t, ...ROLES.map((role) => roleCredential(t, role))]);
const VM_A = roleCredential(TOKEN_A, 'vm');

const swapLast = (t: string) => t.slice(0, -1) + (t.endsWith('0') ? '1' : '0');

describe('hostile credentials', () => {
  let h: Harness;
  let clock = Date.parse('2026-11-27T12:00:00Z');
  beforeAll(async () => {
    h = await startFunction({
      tokens: [
        { cluster: 'cluster-a', token: TOKEN_A },
        { cluster: 'cluster-a', token: TOKEN_A_NEXT },
        { cluster: 'cluster-b', token: TOKEN_B },
      ],
      now: () => new Date(clock),
    });
  });
  afterAll(async () => h.close());

  /** The VM path with `credential` as its prefix, to mangle the credential the VM webhook URL carries. */
  const as = (credential: string) => `/t/${credential}${MUTATE}`;
  const createAs = async (secret: string, name: string, ns: string) => {
    const req = review('CREATE', vm(name, ns, [{ name: 'default' }, { name: 'n', network: 'multus' }]));
    const res = await h.post(webhookPaths(secret).mutateVirtualMachines, req);
    expect(res.body.response.allowed).toBe(true);
    return stored(req, res.body, `uid-${name}`);
  };

  const REFUSED = [
    { name: 'no token', path: MUTATE, headers: {} },
    { name: 'an empty path token', path: `/t/${MUTATE}`, headers: {} },
    { name: 'a random credential of the same length', path: as('x'.repeat(VM_A.length)), headers: {} },
    { name: 'the credential cut by one character', path: as(VM_A.slice(0, -1)), headers: {} },
    { name: 'the credential and one more character', path: as(`${VM_A}0`), headers: {} },
    { name: 'the credential with its last character changed', path: as(swapLast(VM_A)), headers: {} },
    { name: 'the credential in upper case', path: as(VM_A.toUpperCase()), headers: {} },
    { name: 'its first half only', path: as(VM_A.slice(0, 32)), headers: {} },
    { name: 'the cluster name instead of a credential', path: as('cluster-a'), headers: {} },
    { name: 'the cluster secret in the path (S4)', path: as(TOKEN_A), headers: {} },
    { name: 'the credential in a query string', path: `${MUTATE}?token=${VM_A}`, headers: {} },
    { name: 'the credential as Basic credentials', path: MUTATE, headers: { authorization: `Basic ${VM_A}` } },
    { name: 'the credential in another header', path: MUTATE, headers: { 'x-macpool-token': VM_A } },
    { name: 'Bearer with two credentials', path: MUTATE, headers: { authorization: `Bearer ${VM_A} ${TOKEN_B}` } },
    {
      name: 'a wrong path credential and the right header',
      path: as(swapLast(VM_A)),
      headers: { authorization: `Bearer ${TOKEN_A}` },
    },
    {
      name: 'the credential split between path and header',
      path: as(VM_A.slice(0, 32)),
      headers: { authorization: `Bearer ${VM_A.slice(32)}` },
    },
  ];

  it.each(REFUSED)('S1: $name gets a bare 401 and writes nothing', async ({ path, headers }) => {
    const req = review('CREATE', vm('refused', 'auth', [{ name: 'default' }]));
    const before = await claims(h.db);
    const res = await h.post(path, req, headers);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthorized' });
    expect(await claims(h.db)).toEqual(before);
  });

  it('S1: a rotated token names the same cluster as the old one', async () => {
    const a = await createAs(TOKEN_A, 'rotated-a', 'auth');
    const b = await createAs(TOKEN_A_NEXT, 'rotated-b', 'auth');
    const docs = await claims(h.db);
    expect(docs.get(macsOf(a).default!)?.cluster).toBe('cluster-a');
    expect(docs.get(macsOf(b).default!)?.cluster).toBe('cluster-a');
  });

  it("S3: another cluster's token cannot take, free or learn about cluster A's claims", async () => {
    const victim = await createAs(TOKEN_A, 'victim', 'shared');
    const before = await activeClaims(h.db);
    // The same VM, names and uid included, sent by cluster B.
    const update = structuredClone(victim);
    update.metadata.labels = { changed: 'yes' };
    update.spec.template.spec.domain.devices.interfaces.push({ name: 'hot', bridge: {} });
    update.spec.template.spec.networks.push({ name: 'hot', multus: { networkName: 'hot-nad' } });
    const takeover = await h.post(webhookPaths(TOKEN_B).mutateVirtualMachines, review('UPDATE', update, victim));
    expect(takeover.body.response).toMatchObject({ allowed: false, status: { code: 409 } });
    expect(takeover.body.response.status.message).not.toContain('victim'); // S3: never names another cluster's VM
    const forgedDelete = await h.post(webhookPaths(TOKEN_B).releaseVirtualMachines, review('DELETE', null, victim));
    expect(forgedDelete.body.response.allowed).toBe(true); // a DELETE is never blocked (D1)...
    const forgedInventory = await h.post('/reconcile', { kind: 'List', items: [] }, reconcileHeaders(TOKEN_B));
    expect(forgedInventory.status).toBe(200);
    clock += 3_600_000; // even once A's claims are old enough for a reconcile to release them
    const later = await h.post('/reconcile', { kind: 'List', items: [] }, { authorization: `Bearer ${TOKEN_B}` });
    expect(later.body.released).toBe(0);
    // ...but nothing of cluster A changed.
    const after = await activeClaims(h.db);
    for (const mac of Object.values(macsOf(victim))) expect(after.get(mac!)).toEqual(before.get(mac!));
  });

  it('D1: a forged DELETE with the right names but another uid, or none, frees nothing; the real one frees', async () => {
    const live = await createAs(TOKEN_A, 'd1-live', 'auth');
    // A reconcile sees the stored VM and records its uid on the claims (an UPDATE would too).
    const bound = await h.post('/reconcile', { kind: 'List', items: [live] }, reconcileHeaders(TOKEN_A));
    expect(bound.body.bound).toBe(2);
    const macs = Object.values(macsOf(live)) as string[];
    for (const uid of ['uid-of-another-vm', undefined]) {
      const forged = structuredClone(live);
      if (uid === undefined) delete forged.metadata.uid;
      else forged.metadata.uid = uid;
      const res = await h.post(webhookPaths(TOKEN_A).releaseVirtualMachines, review('DELETE', null, forged));
      expect(res.body.response.allowed).toBe(true);
      const active = await activeClaims(h.db);
      for (const mac of macs) expect(active.get(mac)).toMatchObject({ state: 'bound', uid: 'uid-d1-live' });
    }
    const lines = h.logs.filter((l) => l.outcome === 'release-refused-uid-mismatch');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const real = await h.post(webhookPaths(TOKEN_A).releaseVirtualMachines, review('DELETE', null, live));
    expect(real.body.response.allowed).toBe(true);
    const active = await activeClaims(h.db);
    for (const mac of macs) expect(active.has(mac)).toBe(false);
  });

  it('D1, as specified: until a uid is recorded, a DELETE naming the VM frees its claims whatever its uid', async () => {
    const fresh = await createAs(TOKEN_A, 'd1-fresh', 'auth');
    const forged = structuredClone(fresh);
    forged.metadata.uid = 'uid-of-another-vm';
    await h.post(webhookPaths(TOKEN_A).releaseVirtualMachines, review('DELETE', null, forged));
    const active = await activeClaims(h.db);
    for (const mac of Object.values(macsOf(fresh))) expect(active.has(mac!)).toBe(false);
  });

  /** Credentials where no route takes one: the function answers 404 (or 401) and its log shows the path masked. */
  const MISPLACED = [
    { name: 'behind a path prefix', path: `/base/t/${VM_A}${MUTATE}`, masked: `/*/t/*${MUTATE}` },
    { name: 'under an upper-case T', path: `/T/${VM_A}${MUTATE}`, masked: `/*/*${MUTATE}` },
    {
      name: 'in a second /t/ segment',
      path: `/t/${VM_A}/t/${roleCredential(TOKEN_A, 'reconcile')}/reconcile`,
      masked: '/t/*/reconcile',
    },
    { name: 'as the last segment', path: `${MUTATE}/${VM_A}`, masked: `${MUTATE}/*` },
    { name: 'the secret as a path of its own', path: `/${TOKEN_A}`, masked: '/*' },
  ];

  it.each(MISPLACED)(
    'S1: a credential $name is refused, and the log and the answer show the path masked',
    async ({ path, masked }) => {
      const req = review('CREATE', vm('misplaced', 'auth', [{ name: 'default' }]));
      const before = await claims(h.db);
      const res = await h.post(path, req);
      expect([401, 404]).toContain(res.status);
      expect(JSON.stringify(res.body)).not.toContain(VM_A.slice(0, 12));
      expect(JSON.stringify(res.body)).not.toContain(TOKEN_A.slice(0, 12));
      expect(h.logs.at(-1)).toMatchObject({ path: masked });
      expect(await claims(h.db)).toEqual(before);
    },
  );

  it('S1: no log line holds a secret or a role credential, or a recognisable part of one', () => {
    const all = JSON.stringify(h.logs);
    expect(h.logs.length).toBeGreaterThan(REFUSED.length);
    for (const token of CREDENTIALS) {
      for (let i = 0; i + 12 <= token.length; i += 4) expect(all).not.toContain(token.slice(i, i + 12));
      expect(all.toLowerCase()).not.toContain(token.toLowerCase());
    }
    note({
      area: 'Auth',
      case:
        'Missing, wrong, cut, extended, changed, upper-cased, split, misplaced (query, Basic, other header, a path ' +
        'prefix, a second /t/ segment) VM ' +
        'credentials, the cluster secret in the path, and other-cluster credentials; forged DELETEs with the right ' +
        'names and another uid or none',
      runs: count(REFUSED.length + MISPLACED.length + 6, 'cases'),
      outcome:
        `every bad token a bare 401 with nothing written; cluster B's token took, freed and learned nothing of ` +
        `cluster A (409 without the holder's name, 0 released by its DELETE and empty inventory); a forged DELETE ` +
        `freed nothing once a uid was recorded; 0 of ${h.logs.length} log lines hold a secret or credential`,
    });
  });
});
