/**
 * The Multus networks annotation of a pod (`k8s.v1.cni.cncf.io/networks`), read the way Multus reads it, and
 * written back with MACs (M1, M2).
 *
 * Two forms, as Multus accepts them:
 * - the JSON list: `[{"name": "br1", "namespace": "ns", "mac": "02:...", "interface": "eth1", "ips": [...], ...}]`.
 *   Every element is kept exactly as given (field order and fields macpool does not know included); only `mac` is
 *   added to an element that has none.
 * - the short form: `net1,other-ns/net2@eth2` (comma-separated `[namespace/]name[@interface]`). It has no place for
 *   a MAC, so it is rewritten as the JSON list it stands for: `{"name", "namespace" if given, "interface" if given}`.
 *
 * Multus names an attachment's interface `net<i>` (i from 1, by position) unless the element asks for one; that is
 * the interface a claim records. A value Multus would refuse is refused here, with the reason, so the pod is not
 * stored only to fail at sandbox creation with a less clear error.
 */
import { z } from 'zod';
import { describeZodError } from './admission.js';

export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
/** Written by Multus once the pod's networks are set up; its presence means the MACs are already chosen (M3). */
export const NETWORK_STATUS_ANNOTATIONS = ['k8s.v1.cni.cncf.io/network-status', 'k8s.v1.cni.cncf.io/networks-status'];

/** More attachments than this in one pod is not a real pod; each one is a claim written in the same commit. */
export const MAX_ATTACHMENTS = 64;
/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
const MAX_INTERFACE_NAME = 15;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** One network attachment of a pod. */
export interface Attachment {
  readonly index: number;
  /** `namespace/name` when the element names a namespace, else `name`. */
  readonly network: string;
  /** The interface Multus creates: the one asked for, or `net<index + 1>`. */
  readonly interface: string;
  /** The MAC exactly as written in the element, if any. */
  readonly macText: string | undefined;
}

export interface Networks {
  readonly form: 'json' | 'short';
  readonly attachments: readonly Attachment[];
  /** The elements as the JSON list form holds them (the short form's are built from it). */
  readonly elements: readonly Record<string, unknown>[];
}

export type NetworksResult =
  { readonly ok: true; readonly networks: Networks } | { readonly ok: false; readonly problem: string };

const stringField = z.string({ error: 'must be a string' });
// Multus decodes into a Go struct: null leaves a string field empty, as if it were absent.
const ElementSchema = z.looseObject(
  {
    name: stringField.min(1, 'must not be empty'),
    namespace: stringField.nullish(),
    mac: stringField.nullish(),
    interface: stringField.nullish(),
    interfaceRequest: stringField.nullish(),
    ips: z.array(stringField, { error: 'must be a list of strings' }).nullish(),
    'cni-args': z.record(z.string(), z.unknown(), { error: 'must be an object or null' }).nullish(),
  },
  { error: 'must be an object' },
);

/**
 * The keys of Multus' NetworkSelectionElement. Go's JSON decoder matches keys regardless of case (`"MAC"` sets the
 * MAC) and the last of two wins, so an element with `"mac": ""` and `"MAC": "<a VM's MAC>"` would get the pool's MAC
 * in `mac` and use the other. A key that is one of these in another case is refused.
 */
const MULTUS_KEYS = [
  'name',
  'namespace',
  'ips',
  'mac',
  'infiniband-guid',
  'interface',
  'interfaceRequest',
  'portMappings',
  'bandwidth',
  'deviceID',
  'cni-args',
  'default-route',
];
const MULTUS_KEYS_FOLDED = new Map(MULTUS_KEYS.map((k) => [k.toLowerCase(), k]));
const ListSchema = z.array(z.unknown(), { error: 'must be a JSON list of network selection elements' });

/** Parses the annotation's value; `undefined` or blank means the pod asks for no secondary network. */
export function parseNetworks(value: string | undefined): NetworksResult | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  // Multus takes the value as JSON as soon as it contains one of these characters.
  const result = /[[{"]/.test(value) ? parseJsonForm(value) : parseShortForm(value);
  if (!result.ok) return result;
  const { elements } = result;
  if (elements.length === 0) return undefined;
  const attachments: Attachment[] = [];
  for (const [index, element] of elements.entries()) {
    const name = element.name as string;
    const namespace = (element.namespace as string | null | undefined) ?? undefined;
    const requested =
      (element.interface as string | null | undefined) || (element.interfaceRequest as string | null | undefined);
    if (requested) {
      const problem = interfaceProblem(requested);
      if (problem !== undefined) return { ok: false, problem: `element ${index + 1}: interface ${problem}` };
    }
    const mac = element.mac as string | null | undefined;
    attachments.push({
      index,
      network: namespace ? `${namespace}/${name}` : name,
      interface: requested || `net${index + 1}`,
      macText: mac === undefined || mac === null || mac === '' ? undefined : mac,
    });
  }
  return { ok: true, networks: { form: result.form, attachments, elements } };
}

/** The annotation's new value: the JSON list, with `mac` added to the attachments in `macs` (by index). */
export function renderNetworks(networks: Networks, macs: ReadonlyMap<number, string>): string {
  return JSON.stringify(
    networks.elements.map((element, index) => {
      const mac = macs.get(index);
      return mac === undefined ? element : { ...element, mac };
    }),
  );
}

type Elements =
  { ok: true; form: Networks['form']; elements: Record<string, unknown>[] } | { ok: false; problem: string };

function parseJsonForm(value: string): Elements {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (e) {
    return { ok: false, problem: `is not valid JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  const list = ListSchema.safeParse(json);
  if (!list.success) return { ok: false, problem: 'must be a JSON list of network selection elements' };
  if (list.data.length > MAX_ATTACHMENTS) return tooMany(list.data.length);
  const elements: Record<string, unknown>[] = [];
  for (const [i, raw] of list.data.entries()) {
    const element = ElementSchema.safeParse(raw);
    if (!element.success) return { ok: false, problem: describeZodError(element.error, `element ${i + 1}`) };
    for (const key of Object.keys(raw as object)) {
      const known = MULTUS_KEYS_FOLDED.get(key.toLowerCase());
      if (known !== undefined && known !== key) {
        return {
          ok: false,
          problem: `element ${i + 1}: key ${JSON.stringify(key)} is ${JSON.stringify(known)} in another case, which Multus would read as ${JSON.stringify(known)}; write it as ${JSON.stringify(known)}`,
        };
      }
    }
    // The raw element, not the parsed copy: fields are kept exactly as given, in their order.
    elements.push(raw as Record<string, unknown>);
  }
  return { ok: true, form: 'json', elements };
}

/** `[namespace/]name[@interface]`, comma-separated, each part a DNS label (Multus' own rules). */
function parseShortForm(value: string): Elements {
  const elements: Record<string, unknown>[] = [];
  const items = value.split(',');
  if (items.length > MAX_ATTACHMENTS) return tooMany(items.length);
  for (const [i, raw] of items.entries()) {
    const item = raw.trim();
    const where = `item ${i + 1} (${JSON.stringify(item.slice(0, 80))})`;
    const slash = item.split('/');
    if (slash.length > 2)
      return { ok: false, problem: `${where}: more than one "/"; expected [namespace/]name[@interface]` };
    const namespace = slash.length === 2 ? slash[0]!.trim() : '';
    const at = slash[slash.length - 1]!.split('@');
    if (at.length > 2)
      return { ok: false, problem: `${where}: more than one "@"; expected [namespace/]name[@interface]` };
    const name = at[0]!.trim();
    const iface = at.length === 2 ? at[1]!.trim() : '';
    if (name === '') return { ok: false, problem: `${where}: no network name; expected [namespace/]name[@interface]` };
    for (const part of [namespace, name]) {
      if (part !== '' && !DNS_LABEL.test(part)) {
        return {
          ok: false,
          problem:
            `${where}: ${JSON.stringify(part)} is not a valid name (lower-case letters, digits and "-", ` +
            'starting and ending with a letter or digit)',
        };
      }
    }
    if (iface !== '') {
      const problem = interfaceProblem(iface);
      if (problem !== undefined) return { ok: false, problem: `${where}: interface ${problem}` };
    }
    elements.push({ name, ...(namespace !== '' ? { namespace } : {}), ...(iface !== '' ? { interface: iface } : {}) });
  }
  return { ok: true, form: 'short', elements };
}

function tooMany(n: number): { ok: false; problem: string } {
  return { ok: false, problem: `lists ${n} networks; at most ${MAX_ATTACHMENTS} are served` };
}

function interfaceProblem(name: string): string | undefined {
  if (Buffer.byteLength(name) > MAX_INTERFACE_NAME) {
    return `${JSON.stringify(name.slice(0, 40))} is longer than ${MAX_INTERFACE_NAME} bytes (the Linux limit)`;
  }
  if (/[\s/]/.test(name)) return `${JSON.stringify(name)} contains a space or "/"`;
  return undefined;
}
