/**
 * Reconcile: align the claims with the VMs and pods the cluster actually stores (R1-R6, M6). The inventory is what
 * `kubectl get virtualmachines,namespaces -A -o json` prints, optionally with the pods on Multus networks. The plan is pure (`planReconcile`); the writes
 * are applied one by one, each guarded by the version it was planned from, so admissions may run meanwhile
 * (R5): whatever they change makes the corresponding reconcile write fail alone, and the next run looks again.
 */
import { z } from 'zod';
import { claimData, confirmWrite, freeForAllocation, releaseWrite, type Snapshot, type Write } from './allocator.js';
import { namespaceManaged, parsePoolConfig, RANGE_DOC_PATH, SETTINGS_DOC_PATH, type Settings } from './config.js';
import {
  CLAIM_OPTIONAL_FIELDS,
  claimPath,
  type ClaimDoc,
  COLLECTIONS,
  namespacePath,
  type OwnerKind,
  releaseUnconfirmed,
  unsettled,
} from './documents.js';
import { CellFigures, claimDigest, FANOUT, fingerprintFields, inCell, LEVELS, namespaceDigest } from './fingerprint.js';
import {
  NAMESPACE_NAME,
  NAMESPACE_OPT_LABEL,
  OBJECT_NAME,
  POD_OPT_LABEL,
  TRANSACTION_TIMESTAMP_ANNOTATION,
  VirtualMachineSchema,
  viewVm,
} from './kubevirt.js';
import { LOG_EVENTS, type Logger } from './log.js';
import { canonicalMac, isMulticast, parseMac } from './mac.js';
import type { OptMode } from './webhooks.js';
import type { Store } from './store.js';
import { relevantLabels, sameLabels } from './sync.js';
import { NETWORK_STATUS_ANNOTATIONS, NETWORKS_ANNOTATION, parseNetworks } from './multus.js';
import { readPod, skipReason } from './pod.js';

/** A stored VM or pod as the inventory lists it: only what reconcile needs. */
export interface InventoryVm {
  readonly kind: OwnerKind;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly timestamp: string | undefined;
  /** `metadata.deletionTimestamp` is set: a finalizer or grace period holds the object while it shuts down. */
  readonly deleting: boolean;
  /** Canonical MACs by interface name, for the interfaces whose MAC the pool manages. */
  readonly macs: ReadonlyMap<string, string>;
}

/** Pod phases after which a pod runs no more: its MACs are off the wire (M6). */
export const TERMINATED_POD_PHASES: ReadonlySet<string> = new Set(['Succeeded', 'Failed']);

export interface Inventory {
  readonly vms: readonly InventoryVm[];
  /**
   * The pods on Multus networks, when the inventory covers pods (it lists a Pod, or the request says so); undefined
   * when it does not, and then no pod claim is bound, released or counted.
   */
  readonly pods: readonly InventoryVm[] | undefined;
  /**
   * Listed pods of a finished phase (`namespace/name`): gone from the wire, and positive evidence of it, so the
   * release of their claims is everyday work and does not count against R8's guard.
   */
  readonly finishedPods: ReadonlySet<string>;
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
    uid: z.string().nullish(),
    labels: z.record(z.string(), z.string()).nullish(),
    deletionTimestamp: z.string().nullish(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
  status: z.looseObject({ phase: z.string().optional() }).nullish(),
});

/**
 * Reads a Kubernetes List (or an array of Lists) of VirtualMachines and, optionally, Namespaces and Pods. Items of
 * other kinds, and VMs that do not parse, are skipped and reported; a body that is not a List is an error. Pods
 * without the networks annotation, virt-launcher pods and pods of a terminated phase are left out (gone, for
 * pods that were served). `coversPods` says the inventory lists every pod on Multus networks even if it lists none.
 */
export function parseInventory(input: unknown, coversPods = false): Inventory {
  const lists = Array.isArray(input) ? input : [input];
  const vms: InventoryVm[] = [];
  let pods: InventoryVm[] | undefined = coversPods ? [] : undefined;
  const finishedPods = new Set<string>();
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
        namespaces.set(metadata.name, relevantLabels(metadata.labels));
        continue;
      }
      if (kind === 'Pod') {
        pods ??= [];
        const pod = inventoryPod(raw, item.data, problems);
        if (pod === 'finished') finishedPods.add(`${metadata.namespace}/${metadata.name}`);
        else if (pod !== undefined) pods.push(pod);
        continue;
      }
      if (kind !== 'VirtualMachine') {
        problems.push(`item ${i + 1} (${kind} ${metadata.name}): not a VirtualMachine, Pod or Namespace, skipped`);
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
        kind: 'vm',
        namespace: metadata.namespace,
        name: metadata.name,
        uid: metadata.uid ?? undefined,
        deleting: typeof metadata.deletionTimestamp === 'string' && metadata.deletionTimestamp !== '',
        timestamp: vm.data.metadata?.annotations?.[TRANSACTION_TIMESTAMP_ANNOTATION],
        macs,
      });
    }
  }
  return { vms, pods, finishedPods, namespaces, problems };
}

/**
 * A listed pod as the reconcile sees it: its MACs, `finished` for a pod of a terminated phase, or undefined when it
 * is not the pool's to track. The MACs are those Multus reports in `network-status` for each attachment's
 * interface, where it has: the networks annotation can be edited after the pod started, its network cannot.
 */
function inventoryPod(
  raw: unknown,
  item: z.infer<typeof ItemSchema>,
  problems: string[],
): InventoryVm | 'finished' | undefined {
  const { metadata } = item;
  const where = `Pod ${metadata.namespace ?? '?'}/${metadata.name}`;
  if (!metadata.namespace || !NAMESPACE_NAME.test(metadata.namespace) || !OBJECT_NAME.test(metadata.name)) {
    problems.push(`${where}: not a valid Kubernetes namespace and name, skipped`);
    return undefined;
  }
  const pod = readPod(raw);
  if (pod === undefined) {
    problems.push(`${where}: metadata does not parse, skipped`);
    return undefined;
  }
  if (skipReason(pod) === 'virt-launcher') return undefined;
  if (TERMINATED_POD_PHASES.has(item.status?.phase ?? '')) return 'finished';
  const networks = parseNetworks(metadata.annotations?.[NETWORKS_ANNOTATION]);
  if (networks === undefined) return undefined;
  if (!networks.ok) {
    problems.push(`${where}: annotation ${NETWORKS_ANNOTATION} ${networks.problem}, skipped`);
    return undefined;
  }
  const reported = networkStatusMacs(metadata.annotations);
  const macs = new Map<string, string>();
  for (const a of networks.networks.attachments) {
    const text = reported.get(a.interface) ?? a.macText;
    if (text === undefined) continue;
    const mac = parseMac(text);
    if (mac === undefined || isMulticast(mac)) {
      problems.push(`${where}: interface ${a.interface} has an unusable MAC ${JSON.stringify(text)}`);
      continue;
    }
    macs.set(a.interface, canonicalMac(text)!);
  }
  return {
    kind: 'pod',
    namespace: metadata.namespace,
    name: metadata.name,
    uid: metadata.uid ?? undefined,
    deleting: typeof metadata.deletionTimestamp === 'string' && metadata.deletionTimestamp !== '',
    timestamp: undefined,
    macs,
  };
}

/** What `/reconcile` takes: a bare inventory, or one wrapped with the run's options. */
export interface ReconcileRequest {
  readonly inventory: Inventory;
  readonly mode: ReconcileMode;
  readonly force: boolean;
  /** R7: read every claim (the CronJob does not ask; a run reads everything at least daily anyway). */
  readonly full: boolean;
}

const NetworkStatusSchema = z.array(z.looseObject({ interface: z.string().optional(), mac: z.string().optional() }));

/** The MAC Multus reports for each interface (`network-status`), by interface; empty when there is none. */
function networkStatusMacs(annotations: Record<string, string> | null | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of NETWORK_STATUS_ANNOTATIONS) {
    const text = annotations?.[key];
    if (text === undefined) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = NetworkStatusSchema.safeParse(json);
    if (!parsed.success) continue;
    for (const entry of parsed.data) {
      if (entry.interface && entry.mac && !out.has(entry.interface)) out.set(entry.interface, entry.mac);
    }
  }
  return out;
}

const WrappedSchema = z.strictObject({
  inventory: z.unknown(),
  dryRun: z.boolean().optional(),
  force: z.boolean().optional(),
  /** The inventory lists every pod on Multus networks, even when it lists none (what the CronJob sends). */
  pods: z.boolean().optional(),
  full: z.boolean().optional(),
});

/**
 * Reads a `/reconcile` body: the inventory itself (what the CronJob sends), or
 * `{"inventory": <List>, "dryRun": true, "force": true}` for a dry run or a forced run (R8).
 */
export function parseReconcileRequest(body: unknown): ReconcileRequest {
  const isWrapped = typeof body === 'object' && body !== null && !Array.isArray(body) && 'inventory' in body;
  if (!isWrapped) return { inventory: parseInventory(body), mode: 'commit', force: false, full: false };
  const wrapped = WrappedSchema.safeParse(body);
  if (!wrapped.success) {
    const issue = wrapped.error.issues[0]!;
    throw new InventoryError(
      `${issue.path.join('.') || 'body'}: ${issue.message}; expected {"inventory": <List>, "dryRun": boolean, "force": boolean, "pods": boolean, "full": boolean}`,
    );
  }
  return {
    inventory: parseInventory(wrapped.data.inventory, wrapped.data.pods === true),
    mode: wrapped.data.dryRun ? 'plan' : 'commit',
    force: wrapped.data.force === true,
    full: wrapped.data.full === true,
  };
}

export interface Collision {
  readonly mac: string;
  /** `namespace/name` of the VMs of this cluster that carry it. */
  readonly vms: string[];
  /** `namespace/name` of the pods of this cluster that carry it; absent when none does. */
  readonly pods?: string[];
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
  /** U6: unconfirmed releases the inventory shows true (the VM gone, or without the MAC). */
  readonly confirmed: number;
  /** U6: unconfirmed releases whose VM is stored carrying the MAC after all: bound to it again. */
  readonly rebound: number;
  /** U6: unconfirmed releases whose VM is being deleted: they wait until it is gone. */
  readonly awaitingDeletion: number;
  /** U6: unconfirmed releases whose VM is not listed, younger than the wait time: a later run decides them. */
  readonly youngReleases: number;
  /**
   * R8, U6: unconfirmed releases whose VM is not listed, from an inventory that lists no object of their kind at
   * all (a wrong kubectl context, a forgotten `-A`): no evidence the VM is gone, so they stay unconfirmed (the
   * cool-down still frees them) unless the run is forced.
   */
  readonly withheldConfirmations: number;
  /**
   * R8: whether the inventory lists no object of a kind at all (pods: none running nor finished, in an inventory
   * that covers pods): no evidence that one of them is gone.
   */
  readonly listsNoneOf: Readonly<Record<OwnerKind, boolean>>;
  /** R8: bound claims of the cluster, and how many of them this plan releases (in all, and of each kind). */
  readonly boundClaims: number;
  readonly releasingBound: number;
  readonly releasingBoundOf: Readonly<Record<OwnerKind, number>>;
  readonly collisions: Collision[];
}

export interface ReconcileState {
  readonly cluster: string;
  readonly now: Date;
  readonly settings: Settings;
  readonly vms: readonly InventoryVm[];
  /** The listed pods; undefined when the inventory does not cover pods (their claims are left alone). */
  readonly pods?: readonly InventoryVm[] | undefined;
  /** Listed pods of a finished phase (`namespace/name`): releasing their claims is not suspicious (R8). */
  readonly finishedPods?: ReadonlySet<string>;
  /** Namespace labels by namespace (from the inventory, or the namespace documents). */
  readonly labels: ReadonlyMap<string, Record<string, string>>;
  /**
   * The claims read: every claim of the cluster and those of every MAC the listed objects carry (the full path), or
   * only those that can differ from what the inventory implies (the cells path, R7); a claim not read is as implied.
   */
  readonly claims: ReadonlyMap<string, Snapshot<ClaimDoc> | null>;
  /** R8 on the cells path: the cluster's bound claims as the aggregations counted them. */
  readonly boundTotal?: number;
  /** R8: take an inventory that lists no object of a kind as evidence all the same (the run is forced). */
  readonly force?: boolean;
}

const REQUEST = 'reconcile';

/** Whether the pool serves a listed object's namespace: V9 for VMs, M4 for pods (each kind its own label and mode). */
export function servedBy(
  settings: Settings,
  labels: ReadonlyMap<string, Record<string, string>>,
): (o: InventoryVm) => boolean {
  const optMode: OptMode = settings.optMode;
  const podOptMode: OptMode = settings.podOptMode;
  return (o) =>
    o.kind === 'pod'
      ? namespaceManaged(labels.get(o.namespace) ?? {}, podOptMode, POD_OPT_LABEL)
      : namespaceManaged(labels.get(o.namespace) ?? {}, optMode, NAMESPACE_OPT_LABEL);
}

/** Decides, without I/O, what a reconcile writes (R1-R4). */
export function planReconcile(s: ReconcileState): ReconcilePlan {
  const { cluster, now } = s;
  const waitMs = s.settings.waitTimeSeconds * 1000;
  const cooldownMs = s.settings.cooldownSeconds * 1000;
  const managed = servedBy(s.settings, s.labels);
  const coversPods = s.pods !== undefined;
  // Which stored VMs and pods carry each MAC.
  const carriers = new Map<string, { vm: InventoryVm; iface: string }[]>();
  for (const vm of [...s.vms, ...(s.pods ?? [])]) {
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
  let confirmed = 0;
  let rebound = 0;
  let awaitingDeletion = 0;
  let youngReleases = 0;
  let withheldConfirmations = 0;
  let boundClaims = 0;
  const releasingBoundOf: Record<OwnerKind, number> = { vm: 0, pod: 0 };
  const handled = new Set<string>();

  const bind = (snap: Snapshot<ClaimDoc>, doc: ClaimDoc, vm: InventoryVm, iface: string) => {
    if (doc.state === 'bound' && doc.uid === vm.uid && doc.interface === iface && doc.name === vm.name) {
      unchanged++;
      return;
    }
    const data = claimData({
      mac: doc.mac,
      state: 'bound',
      owner: { cluster, namespace: vm.namespace, name: vm.name, kind: vm.kind },
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

  const carrierOf = (mac: string, doc: ClaimDoc) => {
    const sameNamespace = (carriers.get(mac) ?? []).filter(
      (c) => c.vm.namespace === doc.namespace && c.vm.kind === doc.kind,
    );
    // V12: a generateName claim belongs to the one object of its kind and namespace that carries the MAC.
    return doc.name === ''
      ? sameNamespace.length === 1
        ? sameNamespace[0]
        : undefined
      : sameNamespace.find((c) => c.vm.name === doc.name);
  };
  const listsNoneOf = {
    vm: s.vms.length === 0,
    pod: coversPods && (s.pods?.length ?? 0) + (s.finishedPods?.size ?? 0) === 0,
  };
  // Evidence about a claim changed less than the wait time ago is not trusted: the inventory may predate it.
  const young = (doc: ClaimDoc) => now.getTime() - doc.updatedAt.getTime() < waitMs;

  // R1, R2: every active claim of this cluster is bound to the VM carrying it, or released once old enough.
  // U6: every unconfirmed release is confirmed when its VM is gone or no longer carries the MAC, and bound again
  // when the VM is stored carrying it after all (the UPDATE or DELETE never happened), unless it is being deleted.
  for (const [mac, snap] of s.claims) {
    if (!snap || snap.data === 'corrupt') continue;
    const doc = snap.data;
    if (doc.cluster !== cluster) continue;
    // An inventory without pods says nothing about them: their claims are neither bound nor released (M6).
    if (doc.kind === 'pod' && !coversPods) {
      handled.add(mac);
      continue;
    }
    if (doc.state === 'bound') boundClaims++;
    if (doc.state === 'released') {
      if (!releaseUnconfirmed(doc)) continue;
      handled.add(mac);
      // A stored VM carrying the MAC is trusted at once (binding only keeps the MAC reserved longer); its absence
      // only once the release is older than the wait time (confirming frees the MAC to others).
      const carrier = carrierOf(mac, doc);
      if (carrier?.vm.deleting) {
        awaitingDeletion++;
      } else if (carrier !== undefined) {
        bind(snap, doc, carrier.vm, carrier.iface);
        rebound++;
      } else if (young(doc)) {
        youngReleases++;
      } else if (!s.force && listsNoneOf[doc.kind] && !freeForAllocation(snap, now, cooldownMs)) {
        // Past the cool-down an unconfirmed release is free to everyone anyway: confirming it only settles it.
        withheldConfirmations++;
      } else {
        writes.push(confirmWrite(doc, snap.version, now));
        confirmed++;
      }
      continue;
    }
    handled.add(mac);
    const carrier = carrierOf(mac, doc);
    if (carrier) {
      bind(snap, doc, carrier.vm, carrier.iface);
      continue;
    }
    // Never release a young claim: its VM may be on its way to being stored, or its update not yet listed.
    if (young(doc)) {
      skippedYoung++;
      continue;
    }
    writes.push(releaseWrite(doc, snap.version, REQUEST, now, cooldownMs, { by: 'reconcile', confirmedAt: now }));
    released++;
    const finished = doc.kind === 'pod' && (s.finishedPods?.has(`${doc.namespace}/${doc.name}`) ?? false);
    if (doc.state === 'bound' && !finished) releasingBoundOf[doc.kind]++;
  }

  // R3, R4: every MAC a stored VM or pod in a managed namespace carries has a claim for it; collisions (VM-VM,
  // pod-pod and pod-VM) are reported. VMs come first, so a MAC both carry is healed for the VM.
  const collisions: Collision[] = [];
  for (const [mac, list] of [...carriers].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const inScope = list
      .filter((c) => managed(c.vm))
      .sort((a, b) => Number(b.vm.kind === 'vm') - Number(a.vm.kind === 'vm') || key(a.vm).localeCompare(key(b.vm)));
    if (inScope.length === 0) continue;
    const snap = s.claims.get(mac);
    const doc = snap && snap.data !== 'corrupt' ? snap.data : undefined;
    const otherCluster = doc !== undefined && doc.state !== 'released' && doc.cluster !== cluster;
    const vms = inScope.filter((c) => c.vm.kind === 'vm').map((c) => key(c.vm));
    const pods = inScope.filter((c) => c.vm.kind === 'pod').map((c) => key(c.vm));
    if (inScope.length > 1 || otherCluster) {
      collisions.push({ mac, vms, ...(pods.length > 0 ? { pods } : {}), otherCluster });
    }
    if (handled.has(mac) || snap === undefined || (snap && snap.data === 'corrupt')) continue;
    if (doc !== undefined && doc.state !== 'released') continue; // held elsewhere: a collision, not ours to take
    const first = inScope[0]!;
    const data = claimData({
      mac,
      state: 'bound',
      owner: { cluster, namespace: first.vm.namespace, name: first.vm.name, kind: first.vm.kind },
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
  // The re-bound claims were counted by bind() too; report them once, as re-bound.
  return {
    writes,
    bound: bound - rebound,
    released,
    healed,
    unchanged,
    skippedYoung,
    confirmed,
    rebound,
    awaitingDeletion,
    youngReleases,
    withheldConfirmations,
    listsNoneOf,
    boundClaims: s.boundTotal ?? boundClaims,
    releasingBound: releasingBoundOf.vm + releasingBoundOf.pod,
    releasingBoundOf,
    collisions,
  };
}

/**
 * R8: why an inventory is not evidence enough for the releases it implies, or undefined when it is. An empty
 * inventory (a wrong kubectl context, a forgotten `-A`) releasing any bound claim, or one releasing more than
 * `percent` of the cluster's bound claims, is refused unless forced.
 */
export function distrust(plan: ReconcilePlan, percent: number): string | undefined {
  if (plan.releasingBound === 0) return undefined;
  if (plan.listsNoneOf.vm && plan.releasingBoundOf.vm > 0) {
    return (
      `the inventory lists no VirtualMachine, yet it would release ${plan.releasingBoundOf.vm} bound claims: ` +
      'check the kubectl context and that the list was taken with -A'
    );
  }
  if (plan.listsNoneOf.pod && plan.releasingBoundOf.pod > 0) {
    return (
      `the inventory lists no pod on a Multus network, yet it would release ${plan.releasingBoundOf.pod} bound pod ` +
      'claims: check the kubectl context and that the pods were listed with -A'
    );
  }
  const share = (plan.releasingBound / plan.boundClaims) * 100;
  if (share <= percent) return undefined;
  return (
    `the inventory would release ${plan.releasingBound} of the cluster's ${plan.boundClaims} bound claims ` +
    `(${share.toFixed(1)}%, more than the ${percent}% of config/settings releaseGuardPercent): ` +
    'check that it lists every VirtualMachine of the cluster'
  );
}

function key(vm: InventoryVm): string {
  return `${vm.namespace}/${vm.name}`;
}

/** Mode of a reconcile run: write the plan, or only report it (dry run). */
export const RECONCILE_MODES = ['commit', 'plan'] as const;
export type ReconcileMode = (typeof RECONCILE_MODES)[number];

export interface ReconcileOptions {
  readonly cluster: string;
  readonly mode?: ReconcileMode;
  /** R8: apply the plan even when the inventory looks incomplete. The CronJob never forces. */
  readonly force?: boolean;
  /** R7: read every claim of the cluster, whatever the cells say (otherwise done at least daily). */
  readonly full?: boolean;
  readonly now?: Date;
  readonly onProgress?: (done: number, total: number) => void;
  readonly log?: Logger;
}

export interface ReconcileReport {
  readonly vms: number;
  /** When the inventory covers pods: the pods listed that may run (pending, running), and those that finished. */
  readonly pods?: number;
  readonly finishedPods?: number;
  readonly claims: number;
  readonly bound: number;
  readonly released: number;
  readonly healed: number;
  readonly unchanged: number;
  readonly skippedYoung: number;
  readonly confirmed: number;
  readonly rebound: number;
  readonly awaitingDeletion: number;
  readonly youngReleases: number;
  /** Unconfirmed releases kept so because the inventory lists no object of their kind (R8); see ReconcilePlan. */
  readonly withheldConfirmations: number;
  /** Nothing was written: a dry run (`plan`), or an inventory R8 does not trust (`refused`). */
  readonly wrote: boolean;
  /** R8: why the inventory was not trusted; nothing was written. */
  readonly refused?: string;
  /** Writes that found their document changed since it was read (an admission ran meanwhile). */
  readonly conflicts: number;
  /** R7: how the claims were read (`full`, or only the `cells` whose figures differ), and what it cost. */
  readonly readPath: ReadPath;
  /** Firestore document reads as billed: documents read, and one per up to 1,000 index entries aggregated. */
  readonly reads: number;
  /** Cells whose claims were read on the cells path. */
  readonly cellsRead: number;
  /** Claims that got their fingerprint on the full path (claims from before fingerprints, or edited by hand). */
  readonly fingerprinted: number;
  /** Namespace documents written or deleted to match the inventory. */
  readonly namespaces: number;
  readonly collisions: Collision[];
  readonly problems: string[];
  readonly durationMs: number;
}

/** What a run reads and decides, before it writes anything. */
export interface PreparedRun {
  readonly store: Store;
  readonly read: ClaimsRead;
  readonly plan: ReconcilePlan;
  readonly settings: Settings;
  readonly kind: OwnerKind | undefined;
  /** The namespace documents to write so they mirror the inventory's namespaces. */
  readonly namespaceWrites: readonly Write[];
  /** On the full path: the claims whose fingerprint is missing or stale, and what gives them one. */
  readonly fingerprints: readonly Write[];
}

/**
 * Reads what the run needs (every claim on the full path, only the cells that differ on the cells path, R7) and
 * plans; writes nothing. `reconcile` applies what it decides.
 */
export async function prepareReconcile(
  shared: Store,
  inventory: Inventory,
  options: Pick<ReconcileOptions, 'cluster' | 'full' | 'now' | 'force'>,
): Promise<PreparedRun> {
  // This run's own meter: the reads it reports are its own, whatever admissions do meanwhile.
  const store = shared.metered();
  const now = options.now ?? new Date();
  const { cluster } = options;
  const [rangeDoc, settingsDoc, marker] = await Promise.all([
    store.get(RANGE_DOC_PATH),
    store.get(SETTINGS_DOC_PATH),
    store.get(fingerprintMarkerPath(cluster)),
  ]);
  const settings = parsePoolConfig(rangeDoc, settingsDoc).settings;
  if (!settings.ok) throw new Error(`cannot reconcile: ${settings.reason}`);

  // Namespaces: the inventory's labels decide what is served; their documents are read only when their figures
  // differ from the inventory's (R7).
  let labels: ReadonlyMap<string, Record<string, string>>;
  let namespaceWrites: Write[] = [];
  if (inventory.namespaces !== undefined) {
    labels = inventory.namespaces;
    const want = { count: 0, sum: 0 };
    for (const [ns, l] of inventory.namespaces) {
      want.count++;
      want.sum += namespaceDigest(ns, l);
    }
    const have = await store.namespaceFigures(cluster);
    if (have.count !== want.count || have.sum !== want.sum) {
      namespaceWrites = namespaceSync(cluster, await store.namespaceDocs(cluster), inventory.namespaces);
    }
  } else {
    labels = new Map([...(await store.namespaceDocs(cluster))].map(([ns, d]) => [ns, d.labels]));
  }

  // Claims first, then the objects' own MACs: a claim written after the inventory was taken is young, and kept.
  const objects = [...inventory.vms, ...(inventory.pods ?? [])];
  const kind: OwnerKind | undefined = inventory.pods === undefined ? 'vm' : undefined;
  const fullAt = markerTime(marker);
  const full = options.full === true || fullAt === undefined || now.getTime() - fullAt >= FULL_READ_EVERY_MS;
  const read = full
    ? await readAllClaims(store, cluster, objects)
    : await readChangedCells(store, cluster, objects, kind, servedBy(settings.settings, labels));
  const plan = planReconcile({
    cluster,
    now,
    settings: settings.settings,
    vms: inventory.vms,
    pods: inventory.pods,
    finishedPods: inventory.finishedPods,
    labels,
    claims: read.claims,
    ...(read.boundTotal !== undefined ? { boundTotal: read.boundTotal } : {}),
    force: options.force === true,
  });
  const fingerprints = full ? fingerprintWrites(read.claims, cluster, new Set(plan.writes.map((w) => w.path))) : [];
  return { store, read, plan, settings: settings.settings, kind, namespaceWrites, fingerprints };
}

/** Reads the claims, plans (R1-R4) and applies the writes; safe to run while admissions continue (R5). */
export async function reconcile(
  shared: Store,
  inventory: Inventory,
  options: ReconcileOptions,
): Promise<ReconcileReport> {
  const started = performance.now();
  const now = options.now ?? new Date();
  const { cluster } = options;
  const { store, read, plan, settings, kind, namespaceWrites, fingerprints } = await prepareReconcile(
    shared,
    inventory,
    { ...options, now },
  );
  const full = read.path === 'full';

  const refused = options.force ? undefined : distrust(plan, settings.releaseGuardPercent);
  const wrote = refused === undefined && (options.mode ?? 'commit') === 'commit';
  const writes = wrote ? [...plan.writes, ...fingerprints, ...namespaceWrites] : [];
  if (refused !== undefined) {
    options.log?.('ERROR', 'reconcile refused', { cluster, reason: refused, releasingBound: plan.releasingBound });
  }
  options.onProgress?.(0, writes.length);
  const { failed } = await store.applyEach(writes, (done) => options.onProgress?.(done, writes.length));
  // Every claim now carries its fingerprint: later runs may read only the cells that differ. A write that failed
  // (an admission ran meanwhile) may have left one without; the next run reads everything again.
  // A run that found nothing at all (an empty inventory, no claims) records nothing: the next one reads nothing anyway.
  if (full && wrote && failed === 0 && (read.claims.size > 0 || inventory.vms.length > 0)) {
    await store.applyEach([
      { kind: 'set', path: fingerprintMarkerPath(cluster), data: { fullAt: now, claims: read.claims.size } },
    ]);
  }
  for (const c of plan.collisions) {
    options.log?.('WARNING', LOG_EVENTS.collision.message, {
      event: LOG_EVENTS.collision.event,
      cluster,
      mac: c.mac,
      vms: c.vms,
      ...(c.pods !== undefined ? { pods: c.pods } : {}),
      otherCluster: c.otherCluster,
    });
  }
  return {
    vms: inventory.vms.length,
    ...(inventory.pods !== undefined ? { pods: inventory.pods.length, finishedPods: inventory.finishedPods.size } : {}),
    claims: read.claims.size,
    bound: plan.bound,
    released: plan.released,
    healed: plan.healed,
    // On the cells path the bound claims not read are unchanged too: their cells hold what the inventory implies.
    unchanged: plan.unchanged + (read.boundTotal === undefined ? 0 : read.boundTotal - boundRead(read, cluster, kind)),
    skippedYoung: plan.skippedYoung,
    confirmed: plan.confirmed,
    rebound: plan.rebound,
    awaitingDeletion: plan.awaitingDeletion,
    youngReleases: plan.youngReleases,
    withheldConfirmations: plan.withheldConfirmations,
    wrote,
    ...(refused !== undefined ? { refused } : {}),
    conflicts: failed,
    readPath: read.path,
    reads: store.meter.reads,
    cellsRead: read.cellsRead,
    fingerprinted: wrote ? fingerprints.length : 0,
    namespaces: namespaceWrites.length,
    collisions: plan.collisions,
    problems: [...inventory.problems],
    durationMs: Math.round(performance.now() - started),
  };
}

/** The full path: every claim of the cluster, and the claims (or their absence) of every MAC the objects carry. */
async function readAllClaims(store: Store, cluster: string, objects: readonly InventoryVm[]): Promise<ClaimsRead> {
  const claims = new Map<string, Snapshot<ClaimDoc> | null>(await store.claimsOfCluster(cluster));
  const carried = objects.flatMap((o) => [...o.macs.values()]).filter((m) => !claims.has(m));
  for (const [mac, snap] of await store.readMany(carried)) claims.set(mac, snap);
  return { claims, path: 'full', cellsRead: 0 };
}

/** The bound claims of the cluster (of the kind the figures count) among those read. */
function boundRead(read: ClaimsRead, cluster: string, kind: OwnerKind | undefined): number {
  let n = 0;
  for (const snap of read.claims.values()) {
    const doc = snap && snap.data !== 'corrupt' ? snap.data : undefined;
    if (doc?.state === 'bound' && doc.cluster === cluster && (kind === undefined || doc.kind === kind)) n++;
  }
  return n;
}

function markerTime(marker: Record<string, unknown> | undefined): number | undefined {
  const at = marker?.fullAt as { toDate?: () => Date } | undefined;
  return typeof at?.toDate === 'function' ? at.toDate().getTime() : undefined;
}

/** Where a cluster's reconcile records that every claim carries its fingerprint, and when it last read them all. */
export function fingerprintMarkerPath(cluster: string): string {
  return `${COLLECTIONS.clusters}/${cluster}/state/reconcile`;
}

/** A reconcile reads every claim (and rewrites stale fingerprints) at least this often, whatever the cells say. */
export const FULL_READ_EVERY_MS = 24 * 3600 * 1000;

/** How the claims were read: all of them, or only the cells whose figures differ (R7). */
export const READ_PATHS = ['full', 'cells'] as const;
export type ReadPath = (typeof READ_PATHS)[number];

interface ClaimsRead {
  readonly claims: Map<string, Snapshot<ClaimDoc> | null>;
  readonly path: ReadPath;
  /** R8 on the cells path: the cluster's bound claims, counted by the aggregations (the claims read are a few). */
  readonly boundTotal?: number;
  readonly cellsRead: number;
}

/**
 * The cells path (R7): read the unsettled claims, the claims of MACs the inventory cannot predict (carried by
 * several objects, or in namespaces the pool does not serve), and the claims of every cell whose count and digest
 * sum of bound claims differ from what the inventory implies; nothing else.
 */
async function readChangedCells(
  store: Store,
  cluster: string,
  objects: readonly InventoryVm[],
  kind: OwnerKind | undefined,
  managed: (o: InventoryVm) => boolean,
): Promise<ClaimsRead> {
  const carriers = new Map<string, { o: InventoryVm; iface: string }[]>();
  for (const o of objects) {
    for (const [iface, mac] of o.macs) {
      const list = carriers.get(mac) ?? [];
      list.push({ o, iface });
      carriers.set(mac, list);
    }
  }
  const claims = new Map<string, Snapshot<ClaimDoc> | null>(await store.unsettledClaims(cluster));
  const expected = new CellFigures();
  const uncertain: string[] = [];
  for (const [mac, list] of carriers) {
    // A pending claim or an unconfirmed release is read already, and not bound: it is in no cell's figures.
    if (claims.has(mac)) continue;
    const only = list.length === 1 ? list[0]! : undefined;
    if (only === undefined || !managed(only.o)) {
      uncertain.push(mac);
      continue;
    }
    expected.add(mac, claimDigest({ mac, cluster, ...only.o, interface: only.iface }));
  }
  // What the inventory cannot predict is read, and its bound claim of this cluster expected as it is.
  for (const [mac, snap] of await store.readMany(uncertain)) {
    claims.set(mac, snap);
    const doc = snap && snap.data !== 'corrupt' ? snap.data : undefined;
    if (doc?.state === 'bound' && doc.cluster === cluster && (kind === undefined || doc.kind === kind))
      if (doc.digest !== undefined) expected.add(mac, doc.digest);
  }
  // Descend from the 32 top cells into those whose figures differ; read a cell once descending would cost more, or
  // once the run has spent DESCENT_BUDGET_MS descending (many cells differ: reading them is then the quicker way).
  const toRead: number[][] = [];
  let boundTotal = 0;
  let frontier: number[][] = [[]];
  const descentEnds = Date.now() + DESCENT_BUDGET_MS;
  for (let level = 0; level < LEVELS && frontier.length > 0; level++) {
    const next: number[][] = [];
    const figures = await mapLimited(frontier, DESCENT_CONCURRENCY, (prefix) =>
      level > 0 && Date.now() > descentEnds ? Promise.resolve(undefined) : store.cellFigures(cluster, kind, prefix),
    );
    frontier.forEach((prefix, i) => {
      const cells = figures[i];
      if (cells === undefined) {
        toRead.push(prefix);
        return;
      }
      cells.forEach((actual, b) => {
        const cell = [...prefix, b];
        if (level === 0) boundTotal += actual.count;
        const want = expected.get(cell);
        if (actual.count === want.count && actual.sum === want.sum) return;
        if (level + 1 === LEVELS || Math.max(actual.count, want.count) <= FANOUT) toRead.push(cell);
        else next.push(cell);
      });
    });
    frontier = next;
  }
  const read = await mapLimited(toRead, CELL_READ_CONCURRENCY, (cell) => store.claimsInCell(cluster, kind, cell));
  for (const cellClaims of read) for (const [mac, snap] of cellClaims) claims.set(mac, snap);
  // The MACs the inventory carries in those cells without a claim among them: absent, released, another kind's or
  // another cluster's.
  const missing = [...carriers.keys()].filter((mac) => !claims.has(mac) && toRead.some((cell) => inCell(mac, cell)));
  for (const [mac, snap] of await store.readMany(missing)) claims.set(mac, snap);
  return { claims, path: 'cells', boundTotal, cellsRead: toRead.length };
}

/** Cells whose 32 sub-cells are aggregated at once (32 queries each), and cells read at once. */
const DESCENT_CONCURRENCY = 2;
const CELL_READ_CONCURRENCY = 16;
/** How long a run may spend on aggregations below the top cells before it reads the cells still differing. */
const DESCENT_BUDGET_MS = 10_000;

async function mapLimited<T, R>(items: readonly T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * Writes that give every claim of the cluster read on the full path its current fingerprint (and kind), where a
 * claim from before fingerprints, or one an operator edited, lacks it. After a full run whose writes all went
 * through, the cells path can trust that every claim's fingerprint is in the figures.
 */
function fingerprintWrites(
  claims: ReadonlyMap<string, Snapshot<ClaimDoc> | null>,
  cluster: string,
  planned: ReadonlySet<string>,
): Write[] {
  const writes: Write[] = [];
  for (const [mac, snap] of claims) {
    if (!snap || snap.data === 'corrupt' || snap.data.cluster !== cluster || planned.has(claimPath(mac))) continue;
    const doc = snap.data;
    const want = {
      kind: doc.kind,
      ...fingerprintFields({ ...doc, uid: doc.uid, interface: doc.interface }, unsettled(doc)),
    };
    const have = doc as unknown as Record<string, unknown>;
    if (Object.entries(want).every(([k, v]) => k === 'kind' || have[k] === v) && doc.b1 !== undefined) continue;
    writes.push({ kind: 'update', path: claimPath(mac), data: want, version: snap.version, optional: [] });
  }
  return writes;
}

/** Writes that make the namespace documents mirror the inventory's namespaces (and drop the ones gone). */
function namespaceSync(
  cluster: string,
  stored: ReadonlyMap<string, { labels: Record<string, string>; digest: number | undefined }>,
  listed: ReadonlyMap<string, Record<string, string>>,
): Write[] {
  const writes: Write[] = [];
  for (const [ns, labels] of listed) {
    const current = stored.get(ns);
    const digest = namespaceDigest(ns, labels);
    if (current !== undefined && sameLabels(current.labels, labels) && current.digest === digest) continue;
    writes.push({ kind: 'set', path: namespacePath(cluster, ns), data: { labels, digest } });
  }
  for (const ns of stored.keys())
    if (!listed.has(ns)) writes.push({ kind: 'delete', path: namespacePath(cluster, ns) });
  return writes;
}
