import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Snapshot, Version } from '../../shared/allocator.js';
import { DEFAULT_SETTINGS } from '../../shared/config.js';
import type { ClaimDoc } from '../../shared/documents.js';
import {
  distrust,
  InventoryError,
  type InventoryVm,
  parseInventory,
  planReconcile,
  type ReconcileState,
} from '../../shared/reconcile.js';
import { vm } from '../support/fixtures.js';

const NOW = new Date('2026-11-27T12:00:00Z');
const OLD = new Date(NOW.getTime() - 301_000);
const V = { isEqual: () => true } as Version;

function claim(mac: string, over: Partial<ClaimDoc> = {}): Snapshot<ClaimDoc> {
  return {
    version: V,
    data: {
      mac,
      state: 'pending',
      cluster: 'c',
      kind: 'vm',
      namespace: 'ns',
      name: 'vm1',
      interface: 'default',
      origin: 'allocated',
      createdAt: OLD,
      updatedAt: OLD,
      ...over,
    },
  };
}

const inv = (
  namespace: string,
  name: string,
  macs: Record<string, string>,
  uid = `uid-${name}`,
  deleting = false,
): InventoryVm => ({
  kind: 'vm',
  namespace,
  name,
  uid,
  deleting,
  timestamp: undefined,
  macs: new Map(Object.entries(macs)),
});

function state(
  vms: InventoryVm[],
  claims: Record<string, Snapshot<ClaimDoc> | null>,
  labels: Record<string, Record<string, string>> = {},
): ReconcileState {
  return {
    cluster: 'c',
    now: NOW,
    settings: DEFAULT_SETTINGS,
    vms,
    labels: new Map(Object.entries(labels)),
    claims: new Map(Object.entries(claims)),
  };
}

function plan(
  vms: InventoryVm[],
  claims: Record<string, Snapshot<ClaimDoc> | null>,
  labels: Record<string, Record<string, string>> = {},
) {
  return planReconcile(state(vms, claims, labels));
}

describe('parseInventory', () => {
  it('reads VMs and namespaces from a kubectl List, keeping the opt label only', () => {
    const object = vm(
      'a',
      'ns',
      [
        { name: 'default', mac: '02-00-00-00-00-01' },
        { name: 'n', network: 'multus' },
      ],
      { uid: 'u' },
    );
    const out = parseInventory({
      kind: 'List',
      items: [
        object,
        {
          kind: 'Namespace',
          metadata: { name: 'ns', labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore', x: 'y' } },
        },
      ],
    });
    expect(out.vms).toEqual([
      {
        kind: 'vm',
        namespace: 'ns',
        name: 'a',
        uid: 'u',
        deleting: false,
        timestamp: undefined,
        macs: new Map([['default', '02:00:00:00:00:01']]),
      },
    ]);
    expect(out.namespaces).toEqual(new Map([['ns', { 'mutatevirtualmachines.kubemacpool.io': 'ignore' }]]));
  });
  it('accepts several lists; namespaces stay undefined when none were listed', () => {
    const out = parseInventory([
      { kind: 'List', items: [] },
      { kind: 'VirtualMachineList', items: [vm('b', 'ns', [{ name: 'd' }])] },
    ]);
    expect(out.vms).toHaveLength(1);
    expect(out.namespaces).toBeUndefined();
  });
  it.each([
    {
      name: 'a single object',
      input: { kind: 'VirtualMachine', metadata: { name: 'x' } },
      message: 'kind must be a List',
    },
    { name: 'items not an array', input: { kind: 'List', items: {} }, message: 'items must be an array' },
    { name: 'a string', input: 'hello', message: 'expected the output of `kubectl get virtualmachines -A -o json`' },
  ])('refuses $name', ({ input, message }) => {
    expect(() => parseInventory(input)).toThrow(InventoryError);
    expect(() => parseInventory(input)).toThrow(message);
  });
  it('skips, and reports, items it cannot use', () => {
    const bad = vm('bad', 'ns', [{ name: 'd', mac: 'zz' }]);
    const out = parseInventory({
      kind: 'List',
      items: [
        { kind: 'Service', metadata: { name: 'p' } },
        { kind: 'VirtualMachine', metadata: { name: 'nons' } },
        bad,
        42,
      ],
    });
    expect(out.problems).toEqual([
      'item 1 (Service p): not a VirtualMachine, Pod or Namespace, skipped',
      'VirtualMachine ?/nons: no metadata.namespace, skipped',
      'VirtualMachine ns/bad: interface d has an unusable MAC "zz"',
      'item 4: not a Kubernetes object with metadata.name',
    ]);
  });
});

describe('planReconcile', () => {
  it('R1: a claim whose VM carries the MAC is bound, with the uid and interface; an already bound one is unchanged', () => {
    const p = plan(
      [inv('ns', 'vm1', { eth: '02:00:00:00:00:01' }), inv('ns', 'vm2', { default: '02:00:00:00:00:02' })],
      {
        '02:00:00:00:00:01': claim('02:00:00:00:00:01'),
        '02:00:00:00:00:02': claim('02:00:00:00:00:02', { name: 'vm2', state: 'bound', uid: 'uid-vm2' }),
      },
    );
    expect(p).toMatchObject({ bound: 1, unchanged: 1, released: 0, healed: 0 });
    expect(p.writes[0]).toMatchObject({ kind: 'update', data: { state: 'bound', uid: 'uid-vm1', interface: 'eth' } });
  });
  it.each([
    { name: 'VM absent, old claim', vms: [], updatedAt: OLD, released: 1, young: 0 },
    { name: 'VM without the MAC, old claim', vms: [inv('ns', 'vm1', {})], updatedAt: OLD, released: 1, young: 0 },
    { name: 'VM absent, young claim', vms: [], updatedAt: new Date(NOW.getTime() - 299_000), released: 0, young: 1 },
  ])('R2: $name', ({ vms, updatedAt, released, young }) => {
    const p = plan(vms, { '02:00:00:00:00:01': claim('02:00:00:00:00:01', { updatedAt }) });
    expect(p).toMatchObject({ released, skippedYoung: young });
  });
  it('R3: a MAC on a VM with no claim, or a released one, is claimed for it; not in a namespace the pool ignores', () => {
    const p = plan(
      [
        inv('ns', 'a', { d: '02:00:00:00:00:01' }),
        inv('ns', 'b', { d: '02:00:00:00:00:02' }),
        inv('off', 'c', { d: '02:00:00:00:00:03' }),
      ],
      {
        '02:00:00:00:00:01': null,
        '02:00:00:00:00:02': claim('02:00:00:00:00:02', { state: 'released', name: 'old' }),
        '02:00:00:00:00:03': null,
      },
      { off: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' } },
    );
    expect(p.healed).toBe(2);
    expect(p.writes.map((w) => [w.kind, w.path])).toEqual([
      ['create', 'macs/02:00:00:00:00:01'],
      ['update', 'macs/02:00:00:00:00:02'],
    ]);
  });
  it('R4: two VMs with one MAC, or a MAC another cluster holds, are collisions; other clusters are not named', () => {
    const p = plan(
      [
        inv('ns', 'a', { d: '02:00:00:00:00:01' }),
        inv('ns2', 'b', { d: '02:00:00:00:00:01' }),
        inv('ns', 'c', { d: '02:00:00:00:00:09' }),
      ],
      {
        '02:00:00:00:00:01': null,
        '02:00:00:00:00:09': claim('02:00:00:00:00:09', { cluster: 'other', name: 'secret' }),
      },
    );
    expect(p.collisions).toEqual([
      { mac: '02:00:00:00:00:01', vms: ['ns/a', 'ns2/b'], otherCluster: false },
      { mac: '02:00:00:00:00:09', vms: ['ns/c'], otherCluster: true },
    ]);
    expect(JSON.stringify(p.collisions)).not.toContain('secret');
    expect(p.healed).toBe(1); // the shared MAC is claimed for one of them, so the pool never hands it out
  });
  it('V12: a generateName claim goes to the one VM of its namespace that carries the MAC', () => {
    const p = plan([inv('ns', 'named', { d: '02:00:00:00:00:01' })], {
      '02:00:00:00:00:01': claim('02:00:00:00:00:01', { name: '' }),
    });
    expect(p.writes[0]).toMatchObject({ data: { name: 'named', state: 'bound' } });
  });
});

describe('U6 in a reconcile: unconfirmed releases', () => {
  const M = '02:00:00:00:00:a0';
  const releasedBy = (by: 'UPDATE' | 'DELETE', over: Partial<ClaimDoc> = {}) => ({
    [M]: claim(M, { state: 'released', releasedBy: by, releasedAt: OLD, uid: 'uid-vm1', ...over }),
  });

  it.each([
    { name: 'the VM is gone', vms: [inv('ns', 'other', {})], confirmed: 1, rebound: 0, waiting: 0 },
    { name: 'the VM is stored without the MAC', vms: [inv('ns', 'vm1', {})], confirmed: 1, rebound: 0, waiting: 0 },
    {
      name: 'the VM is stored carrying it (the change never happened)',
      vms: [inv('ns', 'vm1', { default: M })],
      confirmed: 0,
      rebound: 1,
      waiting: 0,
    },
    {
      name: 'the VM carries it while being deleted',
      vms: [inv('ns', 'vm1', { default: M }, 'uid-vm1', true)],
      confirmed: 0,
      rebound: 0,
      waiting: 1,
    },
  ])('$name', ({ vms, confirmed, rebound, waiting }) => {
    for (const by of ['UPDATE', 'DELETE'] as const) {
      const p = plan(vms, releasedBy(by));
      expect({ confirmed: p.confirmed, rebound: p.rebound, waiting: p.awaitingDeletion }).toEqual({
        confirmed,
        rebound,
        waiting,
      });
      expect(p.healed).toBe(0); // never taken again as a heal
      const w = p.writes.find((x) => x.path === `macs/${M}`);
      if (confirmed) expect(w).toMatchObject({ kind: 'update', data: { releaseConfirmedAt: NOW } });
      if (rebound) {
        expect(w).toMatchObject({ kind: 'update', data: { state: 'bound', name: 'vm1', uid: 'uid-vm1' } });
        expect(w?.kind === 'update' && w.data.releasedBy).toBeUndefined();
      }
      if (waiting) expect(w).toBeUndefined();
    }
  });

  it('a release younger than the wait time is confirmed by no run that does not list its VM: the inventory may predate it', () => {
    const young = { updatedAt: new Date(NOW.getTime() - 5_000), releasedAt: new Date(NOW.getTime() - 5_000) };
    const p = plan([], releasedBy('DELETE', young));
    expect(p.writes).toEqual([]);
    expect(p.youngReleases).toBe(1);
    // The VM listed carrying it is evidence at any age: binding only keeps the MAC reserved.
    const carried = plan([inv('ns', 'vm1', { default: M })], releasedBy('UPDATE', young));
    expect(carried.rebound).toBe(1);
  });

  it('R8: an inventory listing no VM at all confirms nothing (no evidence the VM is gone), unless forced', () => {
    for (const by of ['UPDATE', 'DELETE'] as const) {
      const p = plan([], releasedBy(by));
      expect({ confirmed: p.confirmed, withheld: p.withheldConfirmations, writes: p.writes }).toEqual({
        confirmed: 0,
        withheld: 1,
        writes: [],
      });
      const forced = planReconcile({ ...state([], releasedBy(by)), force: true });
      expect({ confirmed: forced.confirmed, withheld: forced.withheldConfirmations }).toEqual({
        confirmed: 1,
        withheld: 0,
      });
    }
  });

  it('R8: past its cool-down a release is confirmed even from an inventory listing nothing (it is free to all anyway)', () => {
    const cooled = new Date(NOW.getTime() - (DEFAULT_SETTINGS.cooldownSeconds + 1) * 1000);
    const p = plan([], releasedBy('DELETE', { releasedAt: cooled, updatedAt: cooled }));
    expect({ confirmed: p.confirmed, withheld: p.withheldConfirmations }).toEqual({ confirmed: 1, withheld: 0 });
  });

  it('R8: a pod release is withheld by an inventory listing no pod, and confirmed by one listing other pods', () => {
    const pod = releasedBy('DELETE', { kind: 'pod', name: 'p1' });
    const none = planReconcile({ ...state([inv('ns', 'vm1', {})], pod), pods: [] });
    expect({ confirmed: none.confirmed, withheld: none.withheldConfirmations }).toEqual({ confirmed: 0, withheld: 1 });
    const other = { ...inv('ns', 'p2', {}), kind: 'pod' as const };
    const some = planReconcile({ ...state([], pod), pods: [other] });
    expect({ confirmed: some.confirmed, withheld: some.withheldConfirmations }).toEqual({ confirmed: 1, withheld: 0 });
  });

  it('confirmed releases are not touched', () => {
    const p = plan([], releasedBy('DELETE', { releaseConfirmedAt: OLD }));
    expect(p.writes).toEqual([]);
  });
});

describe('R8: an inventory is evidence only if it looks whole', () => {
  const boundClaims = (n: number) =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => {
        const m = `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;
        return [m, claim(m, { state: 'bound', name: `vm${i}` })];
      }),
    );
  const vmsCarrying = (n: number, from: number) =>
    Array.from({ length: n }, (_, k) => {
      const i = from + k;
      return inv('ns', `vm${i}`, { default: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}` });
    });

  it.each([
    { name: 'empty inventory, bound claims', vms: 0, listed: 0, claims: 20, refused: 'lists no VirtualMachine' },
    { name: 'one VM of 20 listed', vms: 1, listed: 1, claims: 20, refused: 'would release 19 of the' },
    { name: '2 of 20 gone (10%)', vms: 18, listed: 18, claims: 20, refused: undefined },
    { name: '3 of 20 gone (15%)', vms: 17, listed: 17, claims: 20, refused: 'more than the 10%' },
    { name: 'empty inventory, no claims', vms: 0, listed: 0, claims: 0, refused: undefined },
  ])('$name', ({ listed, claims, refused }) => {
    const vms = vmsCarrying(listed, 0);
    const p = plan(vms, boundClaims(claims));
    const reason = distrust(p, 10);
    if (refused === undefined) expect(reason).toBeUndefined();
    else expect(reason).toContain(refused);
  });

  it('pending claims of VMs that never persisted do not count against the inventory', () => {
    const p = plan([], { '02:00:00:00:02:00': claim('02:00:00:00:02:00') });
    expect(p.released).toBe(1);
    expect(distrust(p, 10)).toBeUndefined();
  });
});

describe('R8, U6 over every input: an inventory that lists no object of a kind frees none of its cooling releases', () => {
  const COOLDOWN_S = DEFAULT_SETTINGS.cooldownSeconds;
  const releaseArb = (i: number) =>
    fc
      .record({
        kind: fc.constantFrom('vm', 'pod'),
        by: fc.constantFrom('UPDATE', 'DELETE'),
        ageS: fc.integer({ min: 0, max: 2 * COOLDOWN_S }),
        uid: fc.constantFrom(undefined, 'u1'),
      })
      .map(({ kind, by, ageS, uid }) => {
        const m = `02:00:00:00:03:${i.toString(16).padStart(2, '0')}`;
        const at = new Date(NOW.getTime() - ageS * 1000);
        return [
          m,
          claim(m, {
            kind,
            name: `o${i}`,
            state: 'released',
            releasedBy: by,
            releasedAt: at,
            updatedAt: at,
            ...(uid !== undefined ? { uid } : {}),
          }),
        ] as const;
      });
  const claimsArb = fc
    .integer({ min: 1, max: 8 })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => releaseArb(i))));

  it('unforced: no release still cooling down is confirmed for a kind the inventory lists none of; forced, none is withheld', () => {
    fc.assert(
      fc.property(claimsArb, fc.boolean(), fc.boolean(), fc.boolean(), (entries, listVm, coverPods, listPod) => {
        const claims = Object.fromEntries(entries);
        const vms = listVm ? [inv('ns', 'bystander', {})] : [];
        const pods = coverPods
          ? listPod
            ? [{ ...inv('ns', 'pod-bystander', {}), kind: 'pod' as const }]
            : []
          : undefined;
        const base = { ...state(vms, claims), ...(pods !== undefined ? { pods } : {}) };
        const p = planReconcile(base);
        const confirmedPaths = new Set(p.writes.map((w) => w.path));
        for (const [m, snap] of entries) {
          const doc = snap.data as ClaimDoc;
          const cooling = NOW.getTime() - doc.releasedAt!.getTime() < COOLDOWN_S * 1000;
          const listsNone = doc.kind === 'vm' ? !listVm : pods !== undefined && pods.length === 0;
          if (cooling && listsNone) expect(confirmedPaths.has(`macs/${m}`)).toBe(false);
        }
        expect(planReconcile({ ...base, force: true }).withheldConfirmations).toBe(0);
      }),
      { numRuns: 1_000 },
    );
  });
});
