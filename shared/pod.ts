/**
 * The pod rules: pods on Multus networks (M1-M6), KubeMacPool's second webhook. A pod CREATE whose networks
 * annotation lists attachments gets a MAC for each one without, from the same pool and claim engine as VMs; the
 * patch rewrites that one annotation and nothing else. A pod DELETE releases the pod's claims (D1 rules). Claims are
 * recorded as the pod's (`kind: pod`), so VM rules never release them, nor pod rules a VM's.
 *
 * What it skips (M3), allowed unchanged with no Firestore read: pods without the annotation, pods Multus already
 * set up (`network-status` present), and KubeVirt's virt-launcher pods (their MACs are their VM's). Pods are never
 * stamped with the transaction timestamp: a reconcile tells a stored pod by the MACs in its annotation.
 */
import { z } from 'zod';
import type { Owner, PlannedInterface } from './allocator.js';
import { type AdmissionRequest, describeZodError } from './admission.js';
import { namespaceManaged } from './config.js';
import type { ClaimEngine, NamespaceScope } from './engine.js';
import { type DomainError, errorMessage } from './errors.js';
import { checkInterfaces, checkObjectIdentity, POD_OPT_LABEL } from './kubevirt.js';
import { canonicalMac } from './mac.js';
import {
  type Networks,
  NETWORK_STATUS_ANNOTATIONS,
  NETWORKS_ANNOTATION,
  parseNetworks,
  renderNetworks,
} from './multus.js';
import { type AdmissionOutcome, ALLOWED_UNCHANGED, claimedOutcome, denied as deny, simple } from './outcome.js';
import { escapePointer, type JsonPatchOp } from './patch.js';

export interface PodAdmission {
  readonly cluster: string;
  readonly request: AdmissionRequest;
}

/** KubeVirt labels the pods that run VMs `kubevirt.io=virt-launcher`; their owner is a VirtualMachineInstance. */
export const VIRT_LAUNCHER_LABEL = { key: 'kubevirt.io', value: 'virt-launcher' } as const;

/** The path of the networks annotation in a JSON Patch (RFC 6901 escapes the `/` of the key). */
export const NETWORKS_PATCH_PATH = `/metadata/annotations/${escapePointer(NETWORKS_ANNOTATION)}`;

/** M4: the pod opt label and `podOptMode` (opt-in by default, as KMP ships it). */
const POD_SCOPE: NamespaceScope = (labels, settings) => namespaceManaged(labels, settings.podOptMode, POD_OPT_LABEL);

const denied = (error: DomainError, attempts: number) => deny(error, attempts, 'pod');

// Only the fields macpool reads are typed; everything else passes through untouched.
const PodSchema = z.looseObject({
  metadata: z
    .looseObject({
      name: z.string().nullish(),
      generateName: z.string().nullish(),
      namespace: z.string().nullish(),
      uid: z.string().nullish(),
      labels: z.record(z.string(), z.string()).nullish(),
      annotations: z.record(z.string(), z.string()).nullish(),
      ownerReferences: z.array(z.looseObject({ apiVersion: z.string(), kind: z.string() })).nullish(),
    })
    .optional(),
});
export type Pod = z.infer<typeof PodSchema>;

/** Admits a pod request: CREATE claims (M1, M2), DELETE releases (M5); anything else passes unchanged. */
export function admitPod(engine: ClaimEngine, input: PodAdmission): Promise<AdmissionOutcome> {
  switch (input.request.operation) {
    case 'CREATE':
      return create(engine, input);
    case 'DELETE':
      return remove(engine, input);
    case 'UPDATE':
    case 'CONNECT':
      // Multus reads the annotation when the pod's sandbox is created; later changes do not move a MAC.
      return Promise.resolve(simple(ALLOWED_UNCHANGED, 'ignored'));
    default:
      return input.request.operation satisfies never;
  }
}

/** A pod object as macpool reads it, or undefined when it is not one (the reconcile's inventory is not checked). */
export function readPod(object: unknown): Pod | undefined {
  const parsed = PodSchema.safeParse(object);
  return parsed.success ? parsed.data : undefined;
}

/** Why a pod is left alone (M3), or undefined when its networks are the pool's to serve. */
export function skipReason(pod: Pod): string | undefined {
  const metadata = pod.metadata;
  const annotations = metadata?.annotations ?? {};
  if (metadata?.labels?.[VIRT_LAUNCHER_LABEL.key] === VIRT_LAUNCHER_LABEL.value) return 'virt-launcher';
  if (
    (metadata?.ownerReferences ?? []).some(
      (o) => o.kind === 'VirtualMachineInstance' && o.apiVersion.startsWith('kubevirt.io/'),
    )
  )
    return 'virt-launcher';
  if (NETWORK_STATUS_ANNOTATIONS.some((key) => annotations[key] !== undefined)) return 'network-status-present';
  return undefined;
}

async function create(engine: ClaimEngine, { cluster, request }: PodAdmission): Promise<AdmissionOutcome> {
  const parsed = parsePod(request.object, 'request.object');
  if (!parsed.ok) return denied(parsed.error, 0);
  const pod = parsed.pod;
  const skip = skipReason(pod);
  if (skip !== undefined) return simple(ALLOWED_UNCHANGED, skip);
  const networks = readNetworks(pod);
  if (networks === undefined) return simple(ALLOWED_UNCHANGED, 'no-networks');
  if (!networks.ok) return denied(networks.error, 0);
  const owner = ownerOf(cluster, request, pod);
  const invalid = checkObjectIdentity(request.uid, owner.namespace, owner.name);
  if (invalid) return denied(invalid, 0);
  const { attachments } = networks.networks;
  const problem = checkInterfaces(attachments.map((a) => ({ ...a, name: a.interface, needsMac: true })));
  const timestamp = engine.timestamp();
  return engine.withBudget('pod', async (given) => {
    const setup = await engine.setup(cluster, owner.namespace, POD_SCOPE);
    if (setup.kind === 'skip') return simple(ALLOWED_UNCHANGED, 'namespace-not-managed');
    if (setup.kind === 'error') return denied(setup.error, 0);
    if (problem) return denied(problem, 0);
    const interfaces: PlannedInterface[] = attachments.map((a) => ({
      index: a.index,
      name: a.interface,
      ...(a.macText !== undefined ? { mac: canonicalMac(a.macText)! } : {}),
      claim: true,
      allocate: a.macText === undefined,
    }));
    const result = await engine.claimForCreate(
      { owner, requestUid: request.uid, timestamp, interfaces },
      setup.config,
      request.dryRun === true,
      given,
    );
    if (result.kind === 'denied') return denied(result.error, result.attempts);
    const plan = result.plan;
    const patch = networksPatch(networks.networks, new Map(plan.assignments.map((a) => [a.index, a.mac])));
    return claimedOutcome(plan, patch, result, setup.config.rangeWarnings);
  });
}

async function remove(engine: ClaimEngine, { cluster, request }: PodAdmission): Promise<AdmissionOutcome> {
  // D1, M5: a DELETE is always allowed, whatever happens below.
  const parsed = parsePod(request.oldObject ?? {}, 'request.oldObject');
  if (!parsed.ok) return { ...simple(ALLOWED_UNCHANGED, 'delete-unparsed'), detail: errorMessage(parsed.error, 'pod') };
  const old = parsed.pod;
  // Pods the CREATE skipped hold no claims of their own: nothing to read.
  if (skipReason(old) === 'virt-launcher') return simple(ALLOWED_UNCHANGED, 'virt-launcher');
  const networks = readNetworks(old);
  if (networks === undefined) return simple(ALLOWED_UNCHANGED, 'no-networks');
  const owner = ownerOf(cluster, request, old);
  if (owner.name === '') return simple(ALLOWED_UNCHANGED, 'delete-unnamed');
  const invalid = checkObjectIdentity(request.uid, owner.namespace, owner.name);
  if (invalid) return { ...simple(ALLOWED_UNCHANGED, 'delete-invalid'), detail: errorMessage(invalid, 'pod') };
  // A malformed stored annotation carries no MAC the pool can read; the pod's recorded claims are released all the same.
  const storedMacs = new Set(
    networks.ok
      ? networks.networks.attachments.flatMap((a) => {
          const mac = a.macText === undefined ? undefined : canonicalMac(a.macText);
          return mac === undefined ? [] : [mac];
        })
      : [],
  );
  return engine.release({
    owner,
    uid: old.metadata?.uid ?? undefined,
    requestUid: request.uid,
    storedMacs,
    dryRun: request.dryRun === true,
    // The annotation can be edited without the webhook: what it names (or no longer names) proves nothing.
    storedMacsTrusted: false,
  });
}

/**
 * The patch: the one annotation, replaced by the JSON list with the new MACs (RFC 6902 `replace`, which requires
 * the member to exist, as it does). No patch when nothing changes: every attachment already had its MAC.
 */
function networksPatch(networks: Networks, macs: ReadonlyMap<number, string>): JsonPatchOp[] {
  if (macs.size === 0 && networks.form === 'json') return [];
  return [{ op: 'replace', path: NETWORKS_PATCH_PATH, value: renderNetworks(networks, macs) }];
}

function readNetworks(pod: Pod): { ok: true; networks: Networks } | { ok: false; error: DomainError } | undefined {
  const result = parseNetworks(pod.metadata?.annotations?.[NETWORKS_ANNOTATION]);
  if (result === undefined || result.ok) return result;
  return {
    ok: false,
    error: { code: 'invalid-object', path: `metadata.annotations["${NETWORKS_ANNOTATION}"]`, problem: result.problem },
  };
}

function parsePod(object: unknown, where: string): { ok: true; pod: Pod } | { ok: false; error: DomainError } {
  if (object === undefined || object === null) {
    return { ok: false, error: { code: 'invalid-object', path: where, problem: 'is missing' } };
  }
  const parsed = PodSchema.safeParse(object);
  if (parsed.success) return { ok: true, pod: parsed.data };
  return { ok: false, error: { code: 'invalid-object', path: where, problem: describeZodError(parsed.error) } };
}

function ownerOf(cluster: string, request: AdmissionRequest, pod: Pod): Owner {
  return {
    cluster,
    namespace: request.namespace || pod.metadata?.namespace || 'default',
    name: pod.metadata?.name || request.name || '',
    kind: 'pod',
  };
}
