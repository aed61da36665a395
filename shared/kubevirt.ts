import { z } from 'zod';
import { canonicalMac, isMulticast, parseMac } from './mac.js';
import type { DomainError } from './errors.js';

/** Annotation stamped on every VM write that changes interfaces (V11); same key as KubeMacPool's. */
export const TRANSACTION_TIMESTAMP_ANNOTATION = 'kubemacpool.io/transaction-timestamp';
/** Namespace label that opts a namespace out (`ignore`) or in (`allocate`); same key as KubeMacPool's. */
export const NAMESPACE_OPT_LABEL = 'mutatevirtualmachines.kubemacpool.io';
/** The same for pods (M4): KubeMacPool's pod label, with the same values. */
export const POD_OPT_LABEL = 'mutatepods.kubemacpool.io';
/** The namespace labels the pool mirrors and reads. */
export const OPT_LABELS = [NAMESPACE_OPT_LABEL, POD_OPT_LABEL] as const;
export const OPT_OUT_VALUE = 'ignore';
export const OPT_IN_VALUE = 'allocate';

export const INTERFACES_PATH = '/spec/template/spec/domain/devices/interfaces';

/** Kubernetes names as the API server enforces them; anything else did not come from an API server. */
export const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const OBJECT_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_UID = 128;
const MAX_INTERFACE_NAME = 253;
/** Interfaces are a few levels deep; far deeper nesting is hostile and would exhaust the comparison's stack. */
const MAX_INTERFACE_DEPTH = 32;

/**
 * Checks the identity the pool writes into Firestore ids and fields, for VMs and pods alike: request uid, namespace,
 * object name (empty for generateName). Kubernetes never sends anything else; a token holder might, and must get a
 * 422 naming the field rather than a Firestore error.
 */
export function checkObjectIdentity(requestUid: string, namespace: string, name: string): DomainError | undefined {
  const invalid = (path: string, problem: string): DomainError => ({ code: 'invalid-object', path, problem });
  if (requestUid.length > MAX_UID || !requestUid.isWellFormed()) {
    return invalid(
      'request.uid',
      `must be at most ${MAX_UID} characters of well-formed text (the API server sends a UUID)`,
    );
  }
  if (!NAMESPACE_NAME.test(namespace)) {
    return invalid(
      'namespace',
      'must be a Kubernetes namespace name (a DNS label: a-z, 0-9 and "-", at most 63 characters)',
    );
  }
  if (name !== '' && !OBJECT_NAME.test(name)) {
    return invalid('metadata.name', 'must be a Kubernetes object name (a DNS subdomain, at most 253 characters)');
  }
  return undefined;
}

/** checkObjectIdentity, and a VM's interface names and the nesting of its interface list. */
export function checkIdentity(
  requestUid: string,
  namespace: string,
  name: string,
  vms: readonly VirtualMachine[],
): DomainError | undefined {
  const invalid = (path: string, problem: string): DomainError => ({ code: 'invalid-object', path, problem });
  const identity = checkObjectIdentity(requestUid, namespace, name);
  if (identity) return identity;
  for (const vm of vms) {
    const interfaces = vm.spec?.template?.spec?.domain?.devices?.interfaces ?? [];
    for (const [i, iface] of interfaces.entries()) {
      const path = `spec.template.spec.domain.devices.interfaces[${i}]`;
      if (iface.name.length > MAX_INTERFACE_NAME || !iface.name.isWellFormed()) {
        return invalid(`${path}.name`, `must be at most ${MAX_INTERFACE_NAME} characters of well-formed text`);
      }
      if (depthExceeds(iface, MAX_INTERFACE_DEPTH))
        return invalid(path, `is nested more than ${MAX_INTERFACE_DEPTH} levels deep`);
    }
  }
  return undefined;
}

/** Whether a JSON value nests deeper than `limit`, checked without recursion. */
function depthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(v as object)) stack.push([child, depth + 1]);
  }
  return false;
}

// Only the fields macpool reads are typed; everything else passes through untouched.
const InterfaceSchema = z.looseObject({
  name: z.string({ error: 'must be a string' }),
  macAddress: z.string({ error: 'must be a string' }).nullish(),
  masquerade: z.unknown().optional(),
});

const NetworkSchema = z.looseObject({
  name: z.string({ error: 'must be a string' }),
  pod: z.unknown().optional(),
  multus: z.unknown().optional(),
});

const MetadataSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  annotations: z.record(z.string(), z.string()).nullish(),
});

export const VirtualMachineSchema = z.looseObject({
  metadata: MetadataSchema.optional(),
  spec: z
    .looseObject({
      template: z
        .looseObject({
          spec: z
            .looseObject({
              domain: z
                .looseObject({
                  devices: z.looseObject({ interfaces: z.array(InterfaceSchema).nullish() }).nullish(),
                })
                .nullish(),
              networks: z.array(NetworkSchema).nullish(),
            })
            .nullish(),
        })
        .nullish(),
    })
    .nullish(),
});

export type VirtualMachine = z.infer<typeof VirtualMachineSchema>;

/** One interface of a VM template, as macpool sees it. */
export interface VmInterface {
  readonly index: number;
  readonly name: string;
  /** The MAC exactly as the user wrote it; undefined when absent or empty. */
  readonly macText: string | undefined;
  /** V1: masquerade binding, or the network of the same name is multus. */
  readonly needsMac: boolean;
}

export interface VmView {
  readonly hasTemplate: boolean;
  readonly interfaces: readonly VmInterface[];
  readonly hasNetworks: boolean;
  readonly annotations: Readonly<Record<string, string>> | undefined;
}

/** Reads the parts of a VirtualMachine that decide which interfaces need a MAC (V1, V2). */
export function viewVm(vm: VirtualMachine): VmView {
  const template = vm.spec?.template ?? undefined;
  const spec = template?.spec ?? undefined;
  const networks = spec?.networks ?? [];
  const multus = new Set(networks.filter((n) => n.multus !== undefined && n.multus !== null).map((n) => n.name));
  const interfaces = (spec?.domain?.devices?.interfaces ?? []).map((iface, index) => ({
    index,
    name: iface.name,
    macText: iface.macAddress ? iface.macAddress : undefined,
    needsMac: (iface.masquerade !== undefined && iface.masquerade !== null) || multus.has(iface.name),
  }));
  return {
    hasTemplate: template !== undefined && template !== null,
    interfaces,
    hasNetworks: networks.length > 0,
    annotations: vm.metadata?.annotations ?? undefined,
  };
}

/**
 * Checks a VM's interfaces the way KubeMacPool does before any claim: every MAC parses (V4) and is unicast
 * (V7), no MAC appears twice (V6), no name appears twice (V6).
 */
export function checkInterfaces(interfaces: readonly VmInterface[]): DomainError | undefined {
  const seen = new Map<string, string>();
  for (const iface of interfaces) {
    if (iface.macText === undefined) continue;
    const mac = parseMac(iface.macText);
    if (mac === undefined) return { code: 'invalid-mac', interface: iface.name, value: iface.macText };
    if (isMulticast(mac)) return { code: 'multicast-mac', interface: iface.name, value: iface.macText };
    const canonical = canonicalMac(iface.macText)!;
    const other = seen.get(canonical);
    if (other !== undefined) return { code: 'duplicate-mac', mac: canonical, first: other, second: iface.name };
    seen.set(canonical, iface.name);
  }
  const names = new Set<string>();
  for (const iface of interfaces) {
    if (names.has(iface.name)) return { code: 'duplicate-interface-name', interface: iface.name };
    names.add(iface.name);
  }
  return undefined;
}

/** The interface lists compared the way an UPDATE decides whether interfaces changed (U4). */
export function sameInterfaces(a: VirtualMachine, b: VirtualMachine): boolean {
  return (
    stableJson(a.spec?.template?.spec?.domain?.devices?.interfaces ?? []) ===
    stableJson(b.spec?.template?.spec?.domain?.devices?.interfaces ?? [])
  );
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}
