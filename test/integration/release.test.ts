/**
 * Releases that wait for the truth (S5, U5, U6, D1, R8): an admitted UPDATE or DELETE may never be stored, and a
 * deleted VM runs on while its finalizer holds it, so no MAC is free to others while the cluster may still carry it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claims, type Harness, startFunction } from '../support/harness.js';
import { review, stored, vm } from '../support/fixtures.js';
import { count, note } from '../support/record.js';

const MUTATE = '/mutate-virtualmachines';
const NIC = '02:00:00:00:c0:01';
const POD_NIC = '02:00:00:00:c0:00';

/** What `kubectl get virtualmachines -A -o json` prints. */
const list = (vms: any[]) => ({ apiVersion: 'v1', kind: 'List', items: vms, metadata: { resourceVersion: '' } });

let h: Harness;
let clock = Date.parse('2026-11-27T12:00:00Z');
/** Past the reconcile's wait time (300 s), within the cool-down (600 s). */
const later = () => (clock += 301_000);

beforeEach(async () => {
  h = await startFunction({ now: () => new Date(clock) });
});
afterEach(async () => h.close());

/** VM `web` in `lab`, stored with uid `uid-web`, two NICs with pinned MACs, bound by a reconcile. */
async function storedWeb(): Promise<any> {
  const req = review(
    'CREATE',
    vm('web', 'lab', [
      { name: 'default', mac: POD_NIC },
      { name: 'nic', network: 'multus', mac: NIC },
    ]),
  );
  const web = stored(req, (await h.post(MUTATE, req)).body, 'uid-web');
  later();
  const r = await h.post('/reconcile', list([web]));
  expect(r.body).toMatchObject({ bound: 2 });
  return web;
}

/** `vm` without its multus NIC: the UPDATE a user sends to remove it. */
function withoutNic(object: any): any {
  const copy = structuredClone(object);
  copy.spec.template.spec.domain.devices.interfaces = copy.spec.template.spec.domain.devices.interfaces.slice(0, 1);
  copy.spec.template.spec.networks = copy.spec.template.spec.networks.slice(0, 1);
  return copy;
}

/**
 * An UPDATE naming `object` as a holder of the VM webhook credential could send it: its oldObject (whatever the sender
 * writes) has another uid and only the pod network, and the new object adds an interface, so the UPDATE is processed.
 */
function forgedUpdate(object: any): any {
  const forged = structuredClone(object);
  forged.metadata.uid = 'uid-forged';
  forged.spec.template.spec.domain.devices.interfaces = [{ name: 'default', masquerade: {} }];
  forged.spec.template.spec.networks = [{ name: 'default', pod: {} }];
  const changed = structuredClone(forged);
  changed.spec.template.spec.domain.devices.interfaces.push({ name: 'x', bridge: {} });
  changed.spec.template.spec.networks.push({ name: 'x', multus: { networkName: 'x' } });
  return review('UPDATE', changed, forged);
}

/** Another VM, in another namespace, asking for `mac` explicitly (a VM re-created from YAML, GitOps style). */
const pinned = (name: string, mac: string) =>
  h.post(MUTATE, review('CREATE', vm(name, 'other', [{ name: 'nic', network: 'multus', mac }])));

describe('S5: an UPDATE frees only claims of its own uid', () => {
  it('a forged UPDATE with another uid frees nothing and keeps the uid; the genuine one releases', async () => {
    const web = await storedWeb();
    const forged = structuredClone(web);
    forged.metadata.uid = 'uid-forged';
    const res = await h.post(MUTATE, review('UPDATE', withoutNic(forged), forged));
    expect(res.body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'bound', uid: 'uid-web', name: 'web' });
    const line = h.logs.find((l) => l.operation === 'UPDATE');
    expect(line?.detail).toContain(`left claims that recorded another uid: ${POD_NIC}, ${NIC}`);

    note({
      area: 'Releases',
      case: 'A forged UPDATE (the VM webhook credential, another uid in oldObject) removing a bound NIC',
      runs: '1 run',
      outcome: `allowed; the claim stayed bound with uid ${String((await claims(h.db)).get(NIC)?.uid)}; the log line names the 2 claims left alone`,
    });
    const genuine = await h.post(MUTATE, review('UPDATE', withoutNic(web), web));
    expect(genuine.body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({
      state: 'released',
      releasedBy: 'UPDATE',
      uid: 'uid-web',
      requestUid: genuine.body.response.uid,
    });
  });
});

describe('U6: released, but not confirmed', () => {
  it('after an UPDATE removes a NIC, its MAC is refused to others until a reconcile shows the VM without it', async () => {
    const web = await storedWeb();
    expect((await h.post(MUTATE, review('UPDATE', withoutNic(web), web))).body.response.allowed).toBe(true);
    const denied = await pinned('newcomer', NIC);
    expect(denied.body.response).toMatchObject({ allowed: false, status: { code: 409 } });
    expect(denied.body.response.status.message).toContain(
      `MAC address ${NIC} requested for interface nic is already in use`,
    );
    // When it frees (released at 12:05:01 plus the 600 s cool-down) and how to confirm sooner, word for word.
    expect(denied.body.response.status.message).toBe(
      `MAC address ${NIC} requested for interface nic is already in use: the VM that held it was updated or deleted, ` +
        'but the cluster has not yet shown it without the MAC (the change may not have been stored, or the VM is still ' +
        `shutting down). It frees at ${new Date(clock + 600_000).toISOString()}, or sooner once a reconcile (macpool ` +
        `reconcile) sees that VM without it; for a VM known to be gone: macpool claims release ${NIC} --now`,
    );
    expect(denied.body.response.status.message).not.toContain('web'); // S3: another namespace's VM is not named

    later();
    const r = await h.post('/reconcile', list([withoutNic(web)]));
    expect(r.body).toMatchObject({ confirmed: 1, rebound: 0 });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(true);
    note({
      area: 'Releases',
      case: 'An admitted UPDATE removing a NIC, then another namespace asking for that MAC explicitly',
      runs: '2 requests, 1 reconcile',
      outcome: 'denied 409 (already in use, with when it frees) until a reconcile saw the VM without it; then allowed',
    });
  });

  it('a stale UPDATE that the API server refused: the reconcile finds the VM unchanged and binds the MAC again', async () => {
    const web = await storedWeb();
    // KMP e2e: an older UPDATE without the NIC, admitted, then refused with 409 by the API server.
    expect((await h.post(MUTATE, review('UPDATE', withoutNic(web), web))).body.response.allowed).toBe(true);
    later();
    const r = await h.post('/reconcile', list([web]));
    expect(r.body).toMatchObject({ rebound: 1, confirmed: 0 });
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'bound', name: 'web', uid: 'uid-web' });
    expect((await claims(h.db)).get(NIC)?.releasedBy).toBeUndefined();
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);
    note({
      area: 'Releases',
      case: 'A stale UPDATE without a NIC, admitted and then refused by the API server (KubeMacPool e2e)',
      runs: '1 run',
      outcome: 'the reconcile found the stored VM unchanged and bound the MAC to it again; another VM still denied',
    });
  });

  it('after a DELETE: refused to others until a reconcile shows the VM gone, then allowed at once; automatic allocation still waits', async () => {
    await h.db.doc('config/kubeMacPoolConfiguration').set({ rangeStart: NIC, rangeEnd: NIC }); // a one-MAC pool
    const web = await storedWeb();
    expect((await h.post(MUTATE, review('DELETE', null, web))).body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'released', releasedBy: 'DELETE' });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);

    // While the finalizer holds the VM (deletionTimestamp set), it still carries the MAC: the release waits.
    later();
    const deleting = {
      ...structuredClone(web),
      metadata: { ...web.metadata, deletionTimestamp: '2026-11-27T12:05:00Z' },
    };
    expect((await h.post('/reconcile', list([deleting]))).body).toMatchObject({ awaitingDeletion: 2, rebound: 0 });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);

    // An inventory that lists no VM at all (a wrong kubectl context) is no evidence that it is gone (R8).
    expect((await h.post('/reconcile', list([]))).body).toMatchObject({ confirmed: 0, withheldConfirmations: 2 });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);

    // Gone, with the cluster's other VMs listed: confirmed. Within the cool-down, automatic allocation still finds
    // the one-MAC pool full...
    const bystander = { ...structuredClone(web), metadata: { ...web.metadata, name: 'bystander', uid: 'uid-b' } };
    bystander.spec.template.spec.domain.devices.interfaces = [{ name: 'default', masquerade: {} }];
    bystander.spec.template.spec.networks = [{ name: 'default', pod: {} }];
    expect((await h.post('/reconcile', list([bystander]))).body).toMatchObject({ confirmed: 2 });
    const auto = await h.post(MUTATE, review('CREATE', vm('auto', 'other', [{ name: 'nic', network: 'multus' }])));
    expect(auto.body.response.status.message).toContain('the range is full');
    // ...while an explicit request is allowed at once.
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(true);
    note({
      area: 'Releases',
      case: 'An admitted DELETE of a VM held by its finalizer (deletionTimestamp), then gone; one-MAC pool',
      runs: '4 requests, 3 reconciles',
      outcome:
        'explicit reuse denied while the VM was stored or deleting, and after an empty List (no evidence); allowed ' +
        "once a reconcile listing the cluster's other VMs saw it gone, within the cool-down; automatic allocation " +
        'still "the range is full" until the cool-down ends',
    });
  });

  it('a later admission of the same VM whose oldObject no longer carries the MAC confirms the release at once', async () => {
    const web = await storedWeb();
    const slim = withoutNic(web);
    expect((await h.post(MUTATE, review('UPDATE', slim, web))).body.response.allowed).toBe(true);
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);
    // The next change of the VM (a label) arrives with the stored VM as oldObject: without the NIC.
    const labelled = structuredClone(slim);
    labelled.metadata.labels = { tier: 'web' };
    labelled.spec.template.spec.domain.devices.interfaces.push({ name: 'extra', bridge: {} });
    labelled.spec.template.spec.networks.push({ name: 'extra', multus: { networkName: 'extra' } });
    const next = await h.post(MUTATE, review('UPDATE', labelled, slim));
    expect(next.body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'released', releasedBy: 'UPDATE' });
    expect((await claims(h.db)).get(NIC)?.releaseConfirmedAt).toBeDefined();
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(true);
    note({
      area: 'Releases',
      case: 'An admitted UPDATE removing a NIC, then the next UPDATE of the same VM (its oldObject without the NIC)',
      runs: '3 requests',
      outcome: 'the second UPDATE confirmed the release; the MAC went to another namespace at once, no reconcile',
    });
  });

  it('a forged UPDATE naming a VM no reconcile has seen yet releases its MAC unconfirmed, and a reconcile binds it back', async () => {
    const req = review('CREATE', vm('young', 'lab', [{ name: 'nic', network: 'multus', mac: NIC }]));
    const young = stored(req, (await h.post(MUTATE, req)).body, 'uid-young');
    expect((await claims(h.db)).get(NIC)?.uid).toBeUndefined();
    expect((await h.post(MUTATE, forgedUpdate(young))).body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'released', releasedBy: 'UPDATE' });
    expect((await claims(h.db)).get(NIC)?.releaseConfirmedAt).toBeUndefined();
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);
    // The real VM, still stored with the NIC: the next reconcile binds the claim to it again, with its uid.
    expect((await h.post('/reconcile', list([young]))).body).toMatchObject({ rebound: 1 });
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'bound', name: 'young', uid: 'uid-young' });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);
    note({
      area: 'Releases',
      case: 'An UPDATE forged with the VM webhook credential for a VM no reconcile has seen (no uid), oldObject without its NIC',
      runs: '3 requests, 1 reconcile',
      outcome: 'released but unconfirmed: another VM denied; the next reconcile bound the MAC back to the real VM',
    });
  });

  it('a forged UPDATE cannot confirm the release of a VM deleted before any reconcile recorded its uid', async () => {
    await h.db.doc('config/kubeMacPoolConfiguration').set({ rangeStart: NIC, rangeEnd: NIC }); // a one-MAC pool
    const req = review('CREATE', vm('fresh', 'lab', [{ name: 'nic', network: 'multus', mac: NIC }]));
    const fresh = stored(req, (await h.post(MUTATE, req)).body, 'uid-fresh');
    expect((await claims(h.db)).get(NIC)?.uid).toBeUndefined(); // a CREATE cannot know the uid
    expect((await h.post(MUTATE, review('DELETE', null, fresh))).body.response.allowed).toBe(true);
    // The release records the DELETE's uid: only that VM's later admissions can show it true.
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'released', releasedBy: 'DELETE', uid: 'uid-fresh' });
    expect((await claims(h.db)).get(NIC)?.releaseTimestamp).toMatch(/^2026-11-27T/);

    // A holder of the VM webhook credential sends an UPDATE naming the VM, with another uid and no NIC.
    await h.post(MUTATE, forgedUpdate(fresh));
    expect((await claims(h.db)).get(NIC)?.releaseConfirmedAt).toBeUndefined();
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(false);
    note({
      area: 'Releases',
      case: 'A VM deleted before any reconcile (no uid on its claim), then an UPDATE forged with another uid and no NIC',
      runs: '3 requests',
      outcome: "the release recorded the DELETE's uid; the forged UPDATE confirmed nothing; another VM still denied",
    });
  });

  it('the same VM re-applied after its DELETE gets its MACs back at once', async () => {
    const web = await storedWeb();
    expect((await h.post(MUTATE, review('DELETE', null, web))).body.response.allowed).toBe(true);
    const again = review(
      'CREATE',
      vm('web', 'lab', [
        { name: 'default', mac: POD_NIC },
        { name: 'nic', network: 'multus', mac: NIC },
      ]),
    );
    const res = await h.post(MUTATE, again);
    expect(res.body.response.allowed).toBe(true);
    expect((await claims(h.db)).get(NIC)).toMatchObject({ state: 'pending', name: 'web', namespace: 'lab' });
    note({
      area: 'Releases',
      case: 'The same VM re-applied from its YAML (MACs pinned) right after its admitted DELETE',
      runs: '2 requests',
      outcome: 'allowed at once, both claims pending for the VM again; no cool-down, no reconcile',
    });
  });

  it('macpool claims release --now confirms by hand: others may take the MAC at once', async () => {
    const web = await storedWeb();
    expect((await h.post(MUTATE, review('DELETE', null, web))).body.response.allowed).toBe(true);
    const { releaseClaim } = await import('../../shared/admin.js');
    const { Store } = await import('../../shared/store.js');
    const out = await releaseClaim(new Store(h.db), NIC, { now: new Date(clock), immediate: true });
    expect(out.kind).toBe('released');
    expect((await claims(h.db)).get(NIC)).toMatchObject({ releasedBy: 'operator' });
    expect((await pinned('newcomer', NIC)).body.response.allowed).toBe(true);
    note({
      area: 'Releases',
      case: 'An admitted DELETE, then an operator confirming it by hand (claims release --now)',
      runs: '2 requests',
      outcome: 'confirmed, releasedBy operator; another namespace got the MAC at once',
    });
  });
});

describe('R8: a reconcile is evidence only if its inventory is', () => {
  /** 20 stored VMs, one NIC each, bound. */
  async function fleet(): Promise<any[]> {
    const vms: any[] = [];
    for (let i = 0; i < 20; i++) {
      const req = review('CREATE', vm(`vm-${i}`, 'lab', [{ name: 'default' }]));
      vms.push(stored(req, (await h.post(MUTATE, req)).body, `uid-${i}`));
    }
    later();
    expect((await h.post('/reconcile', list(vms))).body).toMatchObject({ bound: 20 });
    later();
    return vms;
  }
  const snapshot = async () => JSON.stringify([...(await claims(h.db)).entries()].sort());

  it.each([
    { name: 'an empty List (a wrong context)', keep: 0, reason: 'lists no VirtualMachine' },
    { name: 'a truncated List (a forgotten -A)', keep: 5, reason: 'would release 15 of the' },
  ])('$name releases nothing without force (409, with the report); forced, it releases', async ({ keep, reason }) => {
    const vms = await fleet();
    const before = await snapshot();
    const refused = await h.post('/reconcile', list(vms.slice(0, keep)));
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ released: 20 - keep, wrote: false });
    expect(refused.body.refused).toContain(reason);
    expect(await snapshot()).toBe(before);
    expect(h.logs.some((l) => l.message === 'reconcile refused')).toBe(true);

    const forced = await h.post('/reconcile', { inventory: list(vms.slice(0, keep)), force: true });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ released: 20 - keep, wrote: true });
    const released = [...(await claims(h.db)).values()].filter((c) => c.state === 'released');
    expect(released).toHaveLength(20 - keep);
    note({
      area: 'Releases',
      case: `A reconcile with ${keep === 0 ? 'an empty List (a wrong context)' : 'a truncated List (a forgotten -A)'}, 20 bound claims`,
      runs: count(2, 'reconciles'),
      outcome: `409, ${20 - keep} releases reported and 0 written; forced, the same ${20 - keep} written`,
    });
  });

  it('a dry run returns the full report and writes nothing', async () => {
    const vms = await fleet();
    const before = await snapshot();
    const dry = await h.post('/reconcile', { inventory: list(vms.slice(0, 19)), dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ released: 1, unchanged: 19, wrote: false });
    expect(await snapshot()).toBe(before);
    note({
      area: 'Releases',
      case: 'A dry-run reconcile (dryRun: true) of 19 of 20 stored VMs',
      runs: '1 reconcile',
      outcome: 'the full report (1 release, 19 unchanged), wrote: false, every claim byte for byte as before',
    });
  });

  it('a wrapped body with an unknown field is a 400 naming what is allowed', async () => {
    const res = await h.post('/reconcile', { inventory: list([]), dryrun: true });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(
      'expected {"inventory": <List>, "dryRun": boolean, "force": boolean, "pods": boolean, "full": boolean}',
    );
  });
});
