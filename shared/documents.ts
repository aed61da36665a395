import { z } from 'zod';

/**
 * Firestore layout (a public contract, documented in the README):
 *
 * - `config/kubeMacPoolConfiguration` — the range (`rangeStart`, `rangeEnd`), like the HyperConverged CR.
 * - `config/settings` — `optMode`, `cooldownSeconds`, `waitTimeSeconds`.
 * - `clusters/{cluster}/namespaces/{namespace}` — `labels` of the namespace that matter (opt-out/opt-in).
 * - `macs/{mac}` — one claim per MAC, id in canonical form. The claims are the only record of who holds
 *   what: a VM's or pod's claims are found by owner (cluster, namespace, name, kind), or by request uid before a
 *   `generateName` object has a name.
 */
export const COLLECTIONS = {
  config: 'config',
  clusters: 'clusters',
  namespaces: 'namespaces',
  macs: 'macs',
} as const;

export const RANGE_DOC_ID = 'kubeMacPoolConfiguration';
export const SETTINGS_DOC_ID = 'settings';

export const CLAIM_STATES = ['pending', 'bound', 'released'] as const;
export type ClaimState = (typeof CLAIM_STATES)[number];

/** How a claim came to be: picked from the pool, asked for by the user, or restored by a reconcile. */
export const CLAIM_ORIGINS = ['allocated', 'requested', 'healed'] as const;
export type ClaimOrigin = (typeof CLAIM_ORIGINS)[number];

/**
 * What a claim belongs to: a VirtualMachine (its interfaces) or a pod on Multus networks (its network attachments,
 * M1-M6). Claims from before pods were served carry no `kind` and are VMs'.
 */
export const OWNER_KINDS = ['vm', 'pod'] as const;
export type OwnerKind = (typeof OWNER_KINDS)[number];

/** Firestore returns Timestamps; macpool works with Dates. */
const Time = z
  .custom<{ toDate(): Date }>(
    (v) => typeof v === 'object' && v !== null && typeof (v as { toDate?: unknown }).toDate === 'function',
    'must be a timestamp',
  )
  .transform((t) => t.toDate());

export const ClaimDocSchema = z.object({
  mac: z.string(),
  state: z.enum(CLAIM_STATES),
  cluster: z.string(),
  namespace: z.string(),
  /** Empty while the VM was created with `generateName` and no later admission or reconcile named it. */
  name: z.string(),
  kind: z.enum(OWNER_KINDS).default('vm'),
  interface: z.string(),
  origin: z.enum(CLAIM_ORIGINS),
  uid: z.string().optional(),
  requestUid: z.string().optional(),
  transactionTimestamp: z.string().optional(),
  createdAt: Time,
  updatedAt: Time,
  releasedAt: Time.optional(),
  /** What released the claim (U6): an admitted UPDATE or DELETE of its VM, a reconcile, or an operator. */
  releasedBy: z.enum(['UPDATE', 'DELETE', 'reconcile', 'operator']).optional(),
  /** When the UPDATE or DELETE that released the claim was admitted, in the transaction-timestamp format (V11). */
  releaseTimestamp: z.string().optional(),
  /**
   * When the cluster was seen without the MAC on its VM (a reconcile, a later admission, or an operator). A release
   * by an UPDATE or DELETE stays unconfirmed until then: that request may never have been stored.
   */
  releaseConfirmedAt: Time.optional(),
  /** releasedAt + cool-down; only for the optional TTL policy that deletes old released claims. */
  expireAt: Time.optional(),
  /** R7 (fingerprint.ts): the claim's cell, its digest, and whether a reconcile must always read it. */
  b1: z.number().optional(),
  b2: z.number().optional(),
  b3: z.number().optional(),
  digest: z.number().optional(),
  unsettled: z.boolean().optional(),
});
export type ClaimDoc = z.infer<typeof ClaimDocSchema>;

export const NamespaceDocSchema = z.object({
  labels: z.record(z.string(), z.string()).default({}),
  /** R7: digest of the namespace's name and labels, so a reconcile compares all namespaces with one aggregation. */
  digest: z.number().optional(),
});

/** Fields of a claim that may be absent; an update deletes the ones a new version does not carry. */
export const CLAIM_OPTIONAL_FIELDS = [
  'uid',
  'requestUid',
  'transactionTimestamp',
  'releasedAt',
  'expireAt',
  'releasedBy',
  'releaseTimestamp',
  'releaseConfirmedAt',
] as const;

/** Who can release a claim; only the two admissions leave the release unconfirmed (U6). */
export type ReleaseCause = NonNullable<ClaimDoc['releasedBy']>;

/**
 * A release not yet shown by the cluster (U6): made by an admitted UPDATE or DELETE that the API server may not
 * have stored, or whose VM may still be shutting down. Releases from before this field existed count as confirmed.
 */
export function releaseUnconfirmed(doc: Pick<ClaimDoc, 'state' | 'releasedBy' | 'releaseConfirmedAt'>): boolean {
  return (
    doc.state === 'released' &&
    (doc.releasedBy === 'UPDATE' || doc.releasedBy === 'DELETE') &&
    doc.releaseConfirmedAt === undefined
  );
}

/** R7: a claim a reconcile must read on every run: pending, or released without confirmation (U6). */
export function unsettled(doc: Pick<ClaimDoc, 'state' | 'releasedBy' | 'releaseConfirmedAt'>): boolean {
  return doc.state === 'pending' || releaseUnconfirmed(doc);
}

export function claimPath(mac: string): string {
  return `${COLLECTIONS.macs}/${mac}`;
}

export function namespacePath(cluster: string, namespace: string): string {
  return `${COLLECTIONS.clusters}/${cluster}/${COLLECTIONS.namespaces}/${namespace}`;
}
