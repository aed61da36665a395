/**
 * Reconcile: align the claims with the VMs the cluster actually stores (R1-R6). The inventory is what
 * `kubectl get virtualmachines,namespaces -A -o json` prints. The plan is pure (`planReconcile`); the writes
 * are applied one by one, each guarded by the version it was planned from, so admissions may run meanwhile
 * (R5): whatever they change makes the corresponding reconcile write fail alone, and the next run looks again.
 */
import { z } from 'zod';
import { claimData, releaseWrite, type Snapshot, type Write } from './allocator.js';
import { namespaceManaged, parsePoolConfig, RANGE_DOC_PATH, SETTINGS_DOC_PATH, type Settings } from './config.js';
import { CLAIM_OPTIONAL_FIELDS, claimPath, type ClaimDoc, namespacePath } from './documents.js';
import {
  NAMESPACE_NAME,
  NAMESPACE_OPT_LABEL,
  OBJECT_NAME,
  TRANSACTION_TIMESTAMP_ANNOTATION,
  VirtualMachineSchema,
  viewVm,
} from './kubevirt.js';
import { LOG_EVENTS, type Logger } from './log.js';
import { canonicalMac, isMulticast, parseMac } from './mac.js';
import type { OptMode } from './webhooks.js';
import type { Store } from './store.js';

/** A stored VM as the inventory lists it: only what reconcile needs. */
export interface InventoryVm {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly timestamp: string | undefined;
  /** Canonical MACs by interface name, for the interfaces whose MAC the pool manages. */
  readonly macs: ReadonlyMap<string, string>;
}

export interface Inventory {
  readonly vms: readonly InventoryVm[];
  /** Namespace labels that matter, when the input listed namespaces; undefined when it did not. */
  readonly namespaces: ReadonlyMap<string, Record<string, string>> | undefined;
  /** Items that were skipped, and why. */
  readonly problems: readonly string[];
}

export class InventoryError extends Error {
  override readonly name = 'InventoryError';
}

const ListSchema = z.looseObject({
  kind: z.string().regex(/List$/, 'must be a List (what `kubectl get ... -o json` prints)'),
  items: z.array(z.unknown(), { error: 'must be an array' }),
});

const ItemSchema = z.looseObject({
  kind: z.string(),
  metadata: z.looseObject({
    name: z.string().min(1),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    labels: z.record(z.string(), z.string()).nullish(),
  }),
});

/**
 * Reads a Kubernetes List (or an array of Lists) of VirtualMachines and, optionally, Namespaces. Items of other
 * kinds, and VMs that do not parse, are skipped and reported; a body that is not a List is an error.
 */
export function parseInventory(input: unknown): Inventory {
  const lists = Array.isArray(input) ? input : [input];
  const vms: InventoryVm[] = [];
  const problems: string[] = [];
  let namespaces: Map<string, Record<string, string>> | undefined;
  for (const [n, list] of lists.entries()) {
    const parsed = ListSchema.safeParse(list);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = lists.length > 1 ? `list ${n + 1}: ` : '';
      throw new InventoryError(
        `${where}${issue.path.join('.') || 'input'} ${issue.message}; expected the output of ` +
          '`kubectl get virtualmachines -A -o json` (optionally `virtualmachines,namespaces`)',
      );
    }
    for (const [i, raw] of parsed.data.items.entries()) {
      const item = ItemSchema.safeParse(raw);
      if (!item.success) {
        problems.push(`item ${i + 1}: not a Kubernetes object with metadata.name`);
        continue;
      }
      const { kind, metadata } = item.data;
      if (kind === 'Namespace') {
        namespaces ??= new Map();
        if (!NAMESPACE_NAME.test(metadata.name)) {
          problems.push(
            `item ${i + 1} (Namespace ${JSON.stringify(metadata.name.slice(0, 80))}): not a valid name, skipped`,
          );
          continue;
        }
        const label = metadata.labels?.[NAMESPACE_OPT_LABEL];
        namespaces.set(metadata.name, label === undefined ? {} : { [NAMESPACE_OPT_LABEL]: label });
        continue;
      }
      if (kind !== 'VirtualMachine') {
        problems.push(`item ${i + 1} (${kind} ${metadata.name}): not a VirtualMachine or Namespace, skipped`);
        continue;
      }
      const where = `VirtualMachine ${metadata.namespace ?? '?'}/${metadata.name}`;
      if (!metadata.namespace) {
        problems.push(`${where}: no metadata.namespace, skipped`);
        continue;
      }
      if (!NAMESPACE_NAME.test(metadata.namespace) || !OBJECT_NAME.test(metadata.name)) {
        problems.push(`${where}: not a valid Kubernetes namespace and name, skipped`);
        continue;
      }
      const vm = VirtualMachineSchema.safeParse(raw);
      if (!vm.success) {
        problems.push(`${where}: ${vm.error.issues[0]?.path.join('.')}: ${vm.error.issues[0]?.message}, skipped`);
        continue;
      }
      const macs = new Map<string, string>();
      for (const iface of viewVm(vm.data).interfaces) {
        if (iface.macText === undefined) continue;
        const mac = parseMac(iface.macText);
        if (mac === undefined || isMulticast(mac)) {
          problems.push(`${where}: interface ${iface.name} has an unusable MAC ${JSON.stringify(iface.macText)}`);
          continue;
        }
        macs.set(iface.name, canonicalMac(iface.macText)!);
      }
      vms.push({
        namespace: metadata.namespace,
        name: metadata.name,
        uid: metadata.uid,
        timestamp: vm.data.metadata?.annotations?.[TRANSACTION_TIMESTAMP_ANNOTATION],
        macs,
      });
    }
  }
  return { vms, namespaces, problems };
}

export interface Collision {
  readonly mac: string;
  /** `namespace/name` of the VMs of this cluster that carry it. */
  readonly vms: string[];
  /** The MAC is also claimed by a VM of another cluster (not named: S3). */
  readonly otherCluster: boolean;
}

export interface ReconcilePlan {
  readonly writes: Write[];
  readonly bound: number;
  readonly released: number;
  readonly healed: number;
  readonly unchanged: number;
  readonly skippedYoung: number;
  readonly collisions: Collision[];
}

export interface ReconcileState {
  readonly cluster: string;
  readonly now: Date;
  readonly settings: Settings;
  readonly vms: readonly InventoryVm[];
  /** Namespace labels by namespace (from the inventory, or the namespace documents). */
  readonly labels: ReadonlyMap<string, Record<string, string>>;
  /** Every claim of the cluster, and the claims (or their absence) of every MAC the VMs carry. */
  readonly claims: ReadonlyMap<string, Snapshot<ClaimDoc> | null>;
}

const REQUEST = 'reconcile';

/** Decides, without I/O, what a reconcile writes (R1-R4). */
export function planReconcile(s: ReconcileState): ReconcilePlan {
  const { cluster, now } = s;
  const waitMs = s.settings.waitTimeSeconds * 1000;
  const cooldownMs = s.settings.cooldownSeconds * 1000;
  const optMode: OptMode = s.settings.optMode;
  const managed = (ns: string) => namespaceManaged(s.labels.get(ns) ?? {}, optMode);
  // Which stored VMs carry each MAC.
  const carriers = new Map<string, { vm: InventoryVm; iface: string }[]>();
  for (const vm of s.vms) {
    for (const [iface, mac] of vm.macs) {
      const list = carriers.get(mac) ?? [];
      list.push({ vm, iface });
      carriers.set(mac, list);
    }
  }

  const writes: Write[] = [];
  let bound = 0;
  let released = 0;
  let healed = 0;
  let unchanged = 0;
  let skippedYoung = 0;
  const handled = new Set<string>();

  const bind = (snap: Snapshot<ClaimDoc>, doc: ClaimDoc, vm: InventoryVm, iface: string) => {
    if (doc.state === 'bound' && doc.uid === vm.uid && doc.interface === iface && doc.name === vm.name) {
      unchanged++;
      return;
    }
    const data = claimData({
      mac: doc.mac,
      state: 'bound',
      owner: { cluster, namespace: vm.namespace, name: vm.name },
      iface,
      origin: doc.origin,
      uid: vm.uid,
      requestUid: doc.requestUid ?? REQUEST,
      timestamp: doc.transactionTimestamp,
      createdAt: doc.createdAt,
      now,
    });
    writes.push({
      kind: 'update',
      path: claimPath(doc.mac),
      data,
      version: snap.version,
      optional: CLAIM_OPTIONAL_FIELDS,
    });
    bound++;
  };

  // R1, R2: every active claim of this cluster is bound to the VM carrying it, or released once old enough.
  for (const [mac, snap] of s.claims) {
    if (!snap || snap.data === 'corrupt') continue;
    const doc = snap.data;
    if (doc.cluster !== cluster || doc.state === 'released') continue;
    handled.add(mac);
    const sameNamespace = (carriers.get(mac) ?? []).filter((c) => c.vm.namespace === doc.namespace);
    // V12: a generateName claim belongs to the one VM of its namespace that carries the MAC.
    const carrier =
      doc.name === ''
        ? sameNamespace.length === 1
          ? sameNamespace[0]
          : undefined
        : sameNamespace.find((c) => c.vm.name === doc.name);
    if (carrier) {
      bind(snap, doc, carrier.vm, carrier.iface);
      continue;
    }
    // Never release a young claim: its VM may be on its way to being stored, or its update not yet listed.
    if (now.getTime() - doc.updatedAt.getTime() < waitMs) {
      skippedYoung++;
      continue;
    }
    writes.push(releaseWrite(doc, snap.version, REQUEST, now, cooldownMs));
    released++;
  }

  // R3, R4: every MAC a stored VM in a managed namespace carries has a claim for it; collisions are reported.
  const collisions: Collision[] = [];
  for (const [mac, list] of [...carriers].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const inScope = list.filter((c) => managed(c.vm.namespace)).sort((a, b) => key(a.vm).localeCompare(key(b.vm)));
    if (inScope.length === 0) continue;
    const snap = s.claims.get(mac);
    const doc = snap && snap.data !== 'corrupt' ? snap.data : undefined;
    const otherCluster = doc !== undefined && doc.state !== 'released' && doc.cluster !== cluster;
    const names = inScope.map((c) => key(c.vm));
    if (inScope.length > 1 || otherCluster) collisions.push({ mac, vms: names, otherCluster });
    if (handled.has(mac) || snap === undefined || (snap && snap.data === 'corrupt')) continue;
    if (doc !== undefined && doc.state !== 'released') continue; // held elsewhere: a collision, not ours to take
    const first = inScope[0]!;
    const data = claimData({
      mac,
      state: 'bound',
      owner: { cluster, namespace: first.vm.namespace, name: first.vm.name },
      iface: first.iface,
      origin: 'healed',
      uid: first.vm.uid,
      requestUid: REQUEST,
      timestamp: first.vm.timestamp,
      createdAt: now,
      now,
    });
    writes.push(
      snap === null
        ? { kind: 'create', path: claimPath(mac), data }
        : { kind: 'update', path: claimPath(mac), data, version: snap.version, optional: CLAIM_OPTIONAL_FIELDS },
    );
    healed++;
  }
  return { writes, bound, released, healed, unchanged, skippedYoung, collisions };
}

function key(vm: InventoryVm): string {
  return `${vm.namespace}/${vm.name}`;
}

export interface ReconcileOptions {
  readonly cluster: string;
  readonly now?: Date;
  readonly onProgress?: (done: number, total: number) => void;
  readonly log?: Logger;
}

export interface ReconcileReport {
  readonly vms: number;
  readonly claims: number;
  readonly bound: number;
  readonly released: number;
  readonly healed: number;
  readonly unchanged: number;
  readonly skippedYoung: number;
  /** Writes that found their document changed since it was read (an admission ran meanwhile). */
  readonly conflicts: number;
  /** Namespace documents written or deleted to match the inventory. */
  readonly namespaces: number;
  readonly collisions: Collision[];
  readonly problems: string[];
  readonly durationMs: number;
}

/** Reads the claims, plans (R1-R4) and applies the writes; safe to run while admissions continue (R5). */
export async function reconcile(
  store: Store,
  inventory: Inventory,
  options: ReconcileOptions,
): Promise<ReconcileReport> {
  const started = performance.now();
  const now = options.now ?? new Date();
  const { cluster } = options;
  const [rangeDoc, settingsDoc] = await Promise.all([store.get(RANGE_DOC_PATH), store.get(SETTINGS_DOC_PATH)]);
  const settings = parsePoolConfig(rangeDoc, settingsDoc).settings;
  if (!settings.ok) throw new Error(`cannot reconcile: ${settings.reason}`);

  // Claims first, then the VMs' own MACs: a claim written after the inventory was taken is young, and kept.
  const claims = new Map<string, Snapshot<ClaimDoc> | null>(await store.claimsOfCluster(cluster));
  const carried = inventory.vms.flatMap((vm) => [...vm.macs.values()]).filter((m) => !claims.has(m));
  for (const [mac, snap] of await store.readMany(carried)) claims.set(mac, snap);

  const stored = await store.namespaceLabels(cluster);
  const labels = inventory.namespaces ?? stored;
  const namespaceWrites = inventory.namespaces ? namespaceSync(cluster, stored, inventory.namespaces) : [];
  const plan = planReconcile({ cluster, now, settings: settings.settings, vms: inventory.vms, labels, claims });

  const writes = [...plan.writes, ...namespaceWrites];
  options.onProgress?.(0, writes.length);
  const { failed } = await store.applyEach(writes, (done) => options.onProgress?.(done, writes.length));
  for (const c of plan.collisions) {
    options.log?.('WARNING', LOG_EVENTS.collision.message, {
      event: LOG_EVENTS.collision.event,
      cluster,
      mac: c.mac,
      vms: c.vms,
      otherCluster: c.otherCluster,
    });
  }
  return {
    vms: inventory.vms.length,
    claims: claims.size,
    bound: plan.bound,
    released: plan.released,
    healed: plan.healed,
    unchanged: plan.unchanged,
    skippedYoung: plan.skippedYoung,
    conflicts: failed,
    namespaces: namespaceWrites.length,
    collisions: plan.collisions,
    problems: [...inventory.problems],
    durationMs: Math.round(performance.now() - started),
  };
}

/** Writes that make the namespace documents mirror the inventory's namespaces (and drop the ones gone). */
function namespaceSync(
  cluster: string,
  stored: ReadonlyMap<string, Record<string, string>>,
  listed: ReadonlyMap<string, Record<string, string>>,
): Write[] {
  const writes: Write[] = [];
  for (const [ns, labels] of listed) {
    const current = stored.get(ns);
    if (current !== undefined && current[NAMESPACE_OPT_LABEL] === labels[NAMESPACE_OPT_LABEL]) continue;
    writes.push({ kind: 'set', path: namespacePath(cluster, ns), data: { labels } });
  }
  for (const ns of stored.keys())
    if (!listed.has(ns)) writes.push({ kind: 'delete', path: namespacePath(cluster, ns) });
  return writes;
}
