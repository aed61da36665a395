import { describe, expect, it } from 'vitest';
import type { Snapshot, Version } from '../../shared/allocator.js';
import { DEFAULT_SETTINGS } from '../../shared/config.js';
import type { ClaimDoc } from '../../shared/documents.js';
import {
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

const inv = (namespace: string, name: string, macs: Record<string, string>, uid = `uid-${name}`): InventoryVm => ({
  namespace,
  name,
  uid,
  timestamp: undefined,
  macs: new Map(Object.entries(macs)),
});

function plan(
  vms: InventoryVm[],
  claims: Record<string, Snapshot<ClaimDoc> | null>,
  labels: Record<string, Record<string, string>> = {},
) {
  const state: ReconcileState = {
    cluster: 'c',
    now: NOW,
    settings: DEFAULT_SETTINGS,
    vms,
    labels: new Map(Object.entries(labels)),
    claims: new Map(Object.entries(claims)),
  };
  return planReconcile(state);
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
      { namespace: 'ns', name: 'a', uid: 'u', timestamp: undefined, macs: new Map([['default', '02:00:00:00:00:01']]) },
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
        { kind: 'Pod', metadata: { name: 'p' } },
        { kind: 'VirtualMachine', metadata: { name: 'nons' } },
        bad,
        42,
      ],
    });
    expect(out.problems).toEqual([
      'item 1 (Pod p): not a VirtualMachine or Namespace, skipped',
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
