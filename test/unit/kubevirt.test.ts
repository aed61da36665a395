import { describe, expect, it } from 'vitest';
import { errorMessage } from '../../shared/errors.js';
import {
  checkIdentity,
  checkInterfaces,
  sameInterfaces,
  VirtualMachineSchema,
  viewVm,
  type VmInterface,
} from '../../shared/kubevirt.js';
import { example, vm } from '../support/fixtures.js';

const view = (object: unknown) => viewVm(VirtualMachineSchema.parse(object));

describe('which interfaces need a MAC (V1, V2)', () => {
  it.each([
    {
      name: 'masquerade on the pod network',
      ifaces: [{ name: 'default', binding: 'masquerade' as const, network: 'pod' as const }],
      needs: [true],
    },
    {
      name: 'bridge on multus',
      ifaces: [{ name: 'br', binding: 'bridge' as const, network: 'multus' as const }],
      needs: [true],
    },
    {
      name: 'SR-IOV on multus',
      ifaces: [{ name: 'vf', binding: 'sriov' as const, network: 'multus' as const }],
      needs: [true],
    },
    {
      name: 'bridge on the pod network',
      ifaces: [{ name: 'default', binding: 'bridge' as const, network: 'pod' as const }],
      needs: [false],
    },
    {
      name: 'slirp on the pod network',
      ifaces: [{ name: 'default', binding: 'slirp' as const, network: 'pod' as const }],
      needs: [false],
    },
    {
      name: 'passt on the pod network',
      ifaces: [{ name: 'default', binding: 'passt' as const, network: 'pod' as const }],
      needs: [false],
    },
  ])('$name', ({ ifaces, needs }) => {
    expect(view(vm('v', 'ns', ifaces)).interfaces.map((i) => i.needsMac)).toEqual(needs);
  });

  it('a binding plugin on the pod network gets none', () => {
    const object = vm('v', 'ns', [{ name: 'default' }]);
    object.spec.template.spec.domain.devices.interfaces = [{ name: 'default', binding: { name: 'l2bridge' } }];
    expect(view(object).interfaces[0]!.needsMac).toBe(false);
  });

  it('the KubeVirt examples', () => {
    expect(view(example('create-vm-multus').request.object).interfaces.map((i) => [i.name, i.needsMac])).toEqual([
      ['default', true],
      ['ptp', true],
    ]);
    expect(view(example('create-vm-bridge-pod-network').request.object).interfaces.every((i) => !i.needsMac)).toBe(
      true,
    );
  });

  it('an empty macAddress counts as none', () => {
    const object = vm('v', 'ns', [{ name: 'default', mac: '' }]);
    expect(view(object).interfaces[0]!.macText).toBeUndefined();
  });

  it('a VM without template, interfaces or networks', () => {
    expect(view({ metadata: { name: 'x' }, spec: {} }).hasTemplate).toBe(false);
    expect(view(vm('v', 'ns', [])).interfaces).toEqual([]);
  });
});

describe('checkInterfaces (V4, V6, V7)', () => {
  const iface = (name: string, macText?: string): VmInterface => ({ index: 0, name, macText, needsMac: true });
  it.each([
    {
      name: 'valid MACs in any spelling',
      ifaces: [iface('a', '02:00:00:00:00:01'), iface('b', '02-00-00-00-00-02'), iface('c')],
      message: undefined,
    },
    {
      name: 'an invalid MAC',
      ifaces: [iface('a', 'zz:00:00:00:00:01')],
      message: 'invalid MAC address format for interface a: zz:00:00:00:00:01',
    },
    {
      name: 'a multicast MAC',
      ifaces: [iface('a', '01:00:5e:00:00:01')],
      message: 'invalid MAC address for interface a: 01:00:5e:00:00:01 is a multicast address',
    },
    {
      name: 'the same MAC in two spellings',
      ifaces: [iface('a', '02:00:00:00:00:01'), iface('b', '02-00-00-00-00-01')],
      message: 'duplicate MAC address 02:00:00:00:00:01 found on interfaces: a and b',
    },
    {
      name: 'two interfaces with one name',
      ifaces: [iface('a'), iface('a')],
      message: 'Failed to mutate virtual machine: every interface must have a unique name',
    },
  ])('$name', ({ ifaces, message }) => {
    const problem = checkInterfaces(ifaces);
    if (message === undefined) expect(problem).toBeUndefined();
    else expect(errorMessage(problem!)).toContain(message);
  });
});

describe('sameInterfaces (U4)', () => {
  it('ignores key order but not values', () => {
    const a = vm('v', 'ns', [{ name: 'default', mac: '02:00:00:00:00:01' }]);
    const b = structuredClone(a);
    const iface = b.spec.template.spec.domain.devices.interfaces[0];
    b.spec.template.spec.domain.devices.interfaces[0] = {
      macAddress: iface.macAddress,
      masquerade: {},
      name: iface.name,
    };
    expect(sameInterfaces(VirtualMachineSchema.parse(a), VirtualMachineSchema.parse(b))).toBe(true);
    b.spec.template.spec.domain.devices.interfaces[0].macAddress = '02:00:00:00:00:02';
    expect(sameInterfaces(VirtualMachineSchema.parse(a), VirtualMachineSchema.parse(b))).toBe(false);
  });
});

describe('VirtualMachineSchema', () => {
  it.each([
    { name: 'interfaces not a list', mutate: (o: any) => (o.spec.template.spec.domain.devices.interfaces = 'eth0') },
    {
      name: 'an interface name that is a number',
      mutate: (o: any) => (o.spec.template.spec.domain.devices.interfaces[0].name = 7),
    },
    {
      name: 'a macAddress that is an object',
      mutate: (o: any) => (o.spec.template.spec.domain.devices.interfaces[0].macAddress = {}),
    },
    { name: 'networks not a list', mutate: (o: any) => (o.spec.template.spec.networks = {}) },
  ])('rejects $name', ({ mutate }) => {
    const object = vm('v', 'ns', [{ name: 'default' }]);
    mutate(object);
    expect(VirtualMachineSchema.safeParse(object).success).toBe(false);
  });

  it('keeps fields it does not know', () => {
    const object = example('create-vm-sriov').request.object;
    expect(VirtualMachineSchema.parse(object)).toEqual(object);
  });
});

describe('checkIdentity (what reaches Firestore ids and fields)', () => {
  const ok = VirtualMachineSchema.parse(vm('v', 'ns', [{ name: 'default' }]));
  const deep = VirtualMachineSchema.parse(vm('v', 'ns', [{ name: 'default' }]));
  let node: Record<string, unknown> = {};
  (deep.spec!.template!.spec!.domain!.devices!.interfaces![0] as Record<string, unknown>).masquerade = node;
  for (let i = 0; i < 100; i++) node = (node.x = {}) as Record<string, unknown>;
  it.each([
    {
      name: 'a Kubernetes request',
      uid: 'b7e0c7a4-0c1e-4a5e-9d1e-3f0c2c1a9b11',
      ns: 'team-a',
      vmName: 'vm-1.web',
      vms: [ok],
      path: undefined,
    },
    { name: 'a generateName CREATE (no name yet)', uid: 'u', ns: 'team-a', vmName: '', vms: [ok], path: undefined },
    { name: 'a namespace with a slash', uid: 'u', ns: 'a/b', vmName: 'v', vms: [ok], path: 'namespace' },
    { name: 'namespace ".."', uid: 'u', ns: '..', vmName: 'v', vms: [ok], path: 'namespace' },
    { name: 'an upper-case VM name', uid: 'u', ns: 'ns', vmName: 'VM', vms: [ok], path: 'metadata.name' },
    { name: 'a 254-character VM name', uid: 'u', ns: 'ns', vmName: 'a'.repeat(254), vms: [ok], path: 'metadata.name' },
    {
      name: 'a request uid of 1 MB',
      uid: 'u'.repeat(1_000_000),
      ns: 'ns',
      vmName: 'v',
      vms: [ok],
      path: 'request.uid',
    },
    { name: 'a lone surrogate in the uid', uid: 'u\ud800', ns: 'ns', vmName: 'v', vms: [ok], path: 'request.uid' },
    {
      name: 'an interface nested 100 levels deep',
      uid: 'u',
      ns: 'ns',
      vmName: 'v',
      vms: [deep],
      path: 'spec.template.spec.domain.devices.interfaces[0]',
    },
  ])('$name', ({ uid, ns, vmName, vms, path }) => {
    const problem = checkIdentity(uid, ns, vmName, vms);
    if (path === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatchObject({ code: 'invalid-object', path });
  });
});
