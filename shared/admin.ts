/**
 * Operator tasks on the pool's Firestore documents, for the `macpool` CLI: read and change the configuration,
 * label namespaces, count claims, list and release them. Every check is the function's own (C1 `validateRange`,
 * `SettingsSchema`, `NamespaceDocSchema`), so the CLI never writes a document the function would refuse.
 */
import { randomUUID } from 'node:crypto';
import { FieldPath, type Query, Timestamp } from '@google-cloud/firestore';
import { releaseWrite, type Version } from './allocator.js';
import {
  DEFAULT_SETTINGS,
  namespaceManaged,
  parsePoolConfig,
  RANGE_DOC_PATH,
  SETTINGS_DOC_PATH,
  type Settings,
  SettingsSchema,
} from './config.js';
import {
  CLAIM_STATES,
  claimPath,
  type ClaimDoc,
  ClaimDocSchema,
  type ClaimState,
  COLLECTIONS,
  NamespaceDocSchema,
  namespacePath,
} from './documents.js';
import { CLUSTER_NAME } from './env.js';
import { NAMESPACE_OPT_LABEL, OPT_IN_VALUE, OPT_OUT_VALUE } from './kubevirt.js';
import { formatMac } from './mac.js';
import { DEFAULT_RANGE_END, DEFAULT_RANGE_START, type MacRange, rangeSize, validateRange } from './range.js';
import { classifyCommitError, type Store } from './store.js';
import type { OptMode } from './webhooks.js';

/** Kubernetes namespace names are DNS labels (RFC 1123), like macpool's cluster names. */
export const NAMESPACE_NAME = CLUSTER_NAME;

/** Zod issues in one line: the first few, each as `field: problem`. */
function describeIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  const shown = issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || 'document'}: ${i.message}`);
  return shown.join('; ') + (issues.length > 3 ? `; and ${issues.length - 3} more` : '');
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration

/** `config/kubeMacPoolConfiguration` as stored, and whether the function would accept it. */
export interface RangeConfigView {
  /** False when the document does not exist: the function then serves KMP's default range. */
  readonly exists: boolean;
  /** The stored fields (the defaults when the document is absent), as `oc get hco ... kubeMacPoolConfiguration`. */
  readonly fields: { readonly rangeStart?: unknown; readonly rangeEnd?: unknown };
  /** Why the function refuses the stored range (C3), if it does. */
  readonly problem?: string;
  readonly warnings: readonly string[];
}

export async function getRangeConfig(store: Store): Promise<RangeConfigView> {
  const doc = await store.get(RANGE_DOC_PATH);
  const fields = doc
    ? { rangeStart: doc.rangeStart, rangeEnd: doc.rangeEnd }
    : { rangeStart: DEFAULT_RANGE_START, rangeEnd: DEFAULT_RANGE_END };
  const result = validateRange(fields.rangeStart, fields.rangeEnd);
  return result.ok
    ? { exists: doc !== undefined, fields, warnings: result.warnings }
    : { exists: true, fields, problem: `${RANGE_DOC_PATH}: ${result.message}`, warnings: [] };
}

/** `config/settings` as the function reads it: the effective values, with defaults for absent fields. */
export type SettingsView =
  | { readonly exists: boolean; readonly settings: Settings }
  /** The function ignores the stored document (it keeps the previous or the default settings). */
  | { readonly exists: true; readonly stored: Record<string, unknown>; readonly problem: string };

export async function getSettings(store: Store): Promise<SettingsView> {
  const doc = await store.get(SETTINGS_DOC_PATH);
  const parsed = parsePoolConfig(undefined, doc).settings;
  if (parsed.ok) return { exists: doc !== undefined, settings: parsed.settings };
  return { exists: true, stored: doc ?? {}, problem: parsed.reason };
}

/** The settings a command acts on: the stored ones, or the defaults when they do not parse (as the function). */
export function effectiveSettings(view: SettingsView): Settings {
  return 'settings' in view ? view.settings : DEFAULT_SETTINGS;
}

export interface ConfigChange {
  /** Both ends, spelled as the operator wrote them (any common MAC spelling), stored as given. */
  readonly range?: { readonly rangeStart: string; readonly rangeEnd: string };
  readonly settings?: Partial<Settings>;
}

/** The `source` recorded on a range the CLI writes (the HyperConverged sync records `hyperconverged`). */
export const RANGE_SOURCE = 'macpool-cli';

export type ConfigChangeResult = { ok: true; warnings: string[]; written: string[] } | { ok: false; reason: string };

/**
 * Validates a change with the function's own rules (C1 for the range, `SettingsSchema` for the settings) and
 * writes it in one batch: all of it or, when anything is invalid, nothing. Fields not named are kept.
 */
export async function setConfig(store: Store, change: ConfigChange, now: Date): Promise<ConfigChangeResult> {
  const batch = store.db.batch();
  const warnings: string[] = [];
  const written: string[] = [];
  if (change.range !== undefined) {
    const result = validateRange(change.range.rangeStart, change.range.rangeEnd);
    if (!result.ok) return { ok: false, reason: result.message };
    warnings.push(...result.warnings);
    // source and updatedAt record where the range came from, as the HyperConverged sync records its own.
    const { rangeStart, rangeEnd } = change.range;
    batch.set(
      store.db.doc(RANGE_DOC_PATH),
      { rangeStart, rangeEnd, source: RANGE_SOURCE, updatedAt: now },
      { merge: true },
    );
    written.push(RANGE_DOC_PATH);
  }
  if (change.settings !== undefined) {
    // Absent fields take their defaults in the parse; only the fields given are written.
    const parsed = SettingsSchema.safeParse(change.settings);
    if (!parsed.success) return { ok: false, reason: `${SETTINGS_DOC_PATH}: ${describeIssues(parsed.error.issues)}` };
    const data = Object.fromEntries(Object.keys(change.settings).map((k) => [k, parsed.data[k as keyof Settings]]));
    batch.set(store.db.doc(SETTINGS_DOC_PATH), data, { merge: true });
    written.push(SETTINGS_DOC_PATH);
  }
  if (written.length > 0) await batch.commit();
  return { ok: true, warnings, written };
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces

/** What `macpool namespace <action>` does to the opt label: set it to `ignore` or `allocate`, or remove it. */
export const NAMESPACE_ACTIONS = ['ignore', 'allocate', 'reset'] as const;
export type NamespaceAction = (typeof NAMESPACE_ACTIONS)[number];

export interface NamespaceView {
  readonly namespace: string;
  /** The value of `mutatevirtualmachines.kubemacpool.io`, if set. */
  readonly label: string | undefined;
  /** Whether the pool serves the namespace under the current opt mode (V9). */
  readonly managed: boolean;
  /** Why the document does not parse; the function then treats the namespace as unlabelled. */
  readonly problem?: string;
}

function namespaceView(namespace: string, data: unknown, mode: OptMode): NamespaceView {
  const parsed = NamespaceDocSchema.safeParse(data ?? {});
  if (!parsed.success) {
    return {
      namespace,
      label: undefined,
      managed: namespaceManaged({}, mode),
      problem: describeIssues(parsed.error.issues),
    };
  }
  const labels = parsed.data.labels;
  return { namespace, label: labels[NAMESPACE_OPT_LABEL], managed: namespaceManaged(labels, mode) };
}

/**
 * Sets or removes the opt label on `clusters/{cluster}/namespaces/{ns}` for each namespace, in one transaction.
 * The whole `labels` map is rewritten (other labels kept), in the shape `NamespaceDocSchema` reads; a document
 * that does not parse is replaced by one that does.
 */
export async function setNamespaceLabel(
  store: Store,
  cluster: string,
  namespaces: readonly string[],
  action: NamespaceAction,
  mode: OptMode,
): Promise<NamespaceView[]> {
  const refs = [...new Set(namespaces)].map((ns) => store.db.doc(namespacePath(cluster, ns)));
  return store.db.runTransaction(async (tx) => {
    const snaps = await tx.getAll(...refs);
    return snaps.map((snap, i) => {
      const parsed = NamespaceDocSchema.safeParse(snap.data() ?? {});
      const labels: Record<string, string> = parsed.success ? { ...parsed.data.labels } : {};
      if (action === 'reset') delete labels[NAMESPACE_OPT_LABEL];
      else labels[NAMESPACE_OPT_LABEL] = action === 'ignore' ? OPT_OUT_VALUE : OPT_IN_VALUE;
      // mergeFields replaces the labels map as a whole (merge: true would merge it key by key and never remove).
      tx.set(refs[i]!, { labels }, { mergeFields: ['labels'] });
      return namespaceView(snap.id, { labels }, mode);
    });
  });
}

/** The namespace documents of a cluster, in name order. */
export async function listNamespaces(store: Store, cluster: string, mode: OptMode): Promise<NamespaceView[]> {
  const snap = await store.db.collection(`${COLLECTIONS.clusters}/${cluster}/${COLLECTIONS.namespaces}`).get();
  return snap.docs.map((d) => namespaceView(d.id, d.data(), mode));
}

// ---------------------------------------------------------------------------------------------------------------
// Status

export interface StateCounts {
  readonly pending: number;
  readonly bound: number;
  readonly released: number;
  /** Claims whose state is none of the three (edited by hand): taken, like any claim that does not parse. */
  readonly other: number;
}

export interface PoolStatus {
  readonly range: { readonly start: string; readonly end: string; readonly size: number };
  readonly rangeWarnings: readonly string[];
  readonly cooldownSeconds: number;
  /** Claims inside the range, by state. */
  readonly inRange: StateCounts & { readonly coolingDown: number; readonly total: number };
  /** pending + bound inside the range. */
  readonly claimed: number;
  /** MACs automatic allocation may hand out: never claimed, or released longer ago than the cool-down. */
  readonly free: number;
  /** Share of the range that is not free, in percent. */
  readonly utilizationPercent: number;
  /** Every claim, by state. */
  readonly claims: StateCounts & { readonly total: number };
  /** Claims whose MAC lies outside the range (user-set MACs, or claims from an earlier range). */
  readonly outsideRange: number;
}

export type StatusResult = { ok: true; status: PoolStatus } | { ok: false; reason: string };

/**
 * Pool figures from Firestore `count()` aggregations; no claim document is read, so the cost does not grow with
 * the pool. Claims inside the range are those whose id (the canonical MAC, fixed width) lies between the
 * canonical ends, so id order is numeric order.
 */
export async function poolStatus(store: Store, now: Date): Promise<StatusResult> {
  const [rangeDoc, settingsDoc] = await Promise.all([store.get(RANGE_DOC_PATH), store.get(SETTINGS_DOC_PATH)]);
  const config = parsePoolConfig(rangeDoc, settingsDoc);
  if (!config.range.ok) return { ok: false, reason: config.range.reason };
  const { range, rangeWarnings, settings } = config.range.config;
  const cutoff = Timestamp.fromMillis(now.getTime() - settings.cooldownSeconds * 1000);

  const macs = store.db.collection(COLLECTIONS.macs);
  const inRange = macs
    .where(FieldPath.documentId(), '>=', formatMac(range.start))
    .where(FieldPath.documentId(), '<=', formatMac(range.end));
  const count = async (q: Query) => (await q.count().get()).data().count;
  const byState = (q: Query) => Promise.all(CLAIM_STATES.map((s) => count(q.where('state', '==', s))));
  // The emulator serves count() over a document-id range with an equality filter on state, as Firestore does
  // from the single-field index on state. Released and still cooling down (releasedAt + cool-down > now, as
  // freeForAllocation decides) adds a second range field, releasedAt: Firestore may answer that it needs a
  // composite index (state, releasedAt), with the link that creates it in its message. A released claim without
  // releasedAt (written by hand) counts here as past its cool-down.
  const [total, states, inTotal, inStates, coolingDown] = await Promise.all([
    count(macs),
    byState(macs),
    count(inRange),
    byState(inRange),
    count(inRange.where('state', '==', 'released').where('releasedAt', '>', cutoff)),
  ]);
  const counts = (total: number, [pending, bound, released]: number[]) => ({
    pending: pending!,
    bound: bound!,
    released: released!,
    other: total - pending! - bound! - released!,
    total,
  });
  const claims = counts(total, states);
  const inside = { ...counts(inTotal, inStates), coolingDown };
  const size = Number(rangeSize(range));
  // Everything inside the range is taken except released claims past their cool-down.
  const taken = inside.total - (inside.released - inside.coolingDown);
  return {
    ok: true,
    status: {
      range: rangeView(range, size),
      rangeWarnings,
      cooldownSeconds: settings.cooldownSeconds,
      inRange: inside,
      claimed: inside.pending + inside.bound,
      free: size - taken,
      utilizationPercent: Math.round((taken / size) * 10_000) / 100,
      claims,
      outsideRange: claims.total - inside.total,
    },
  };
}

function rangeView(range: MacRange, size: number): PoolStatus['range'] {
  return { start: formatMac(range.start), end: formatMac(range.end), size };
}

// ---------------------------------------------------------------------------------------------------------------
// Claims

export interface ClaimFilter {
  readonly cluster?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly state?: ClaimState;
}

/** A claim document as listed: parsed, or the raw fields and why it does not parse. */
export type ListedClaim =
  | { readonly mac: string; readonly claim: ClaimDoc }
  | { readonly mac: string; readonly problem: string; readonly raw: Record<string, unknown> };

export interface ClaimList {
  readonly claims: ListedClaim[];
  /** How many claims match in all, when that is more than were listed. */
  readonly matching?: number;
}

/**
 * Claims matching every filter given, in MAC order, at most `limit`. Equality filters only, which Firestore
 * serves without a composite index (as `Store.claimsOf` does).
 */
export async function listClaims(store: Store, filter: ClaimFilter, limit: number): Promise<ClaimList> {
  let query: Query = store.db.collection(COLLECTIONS.macs);
  if (filter.cluster !== undefined) query = query.where('cluster', '==', filter.cluster);
  if (filter.namespace !== undefined) query = query.where('namespace', '==', filter.namespace);
  if (filter.name !== undefined) query = query.where('name', '==', filter.name);
  if (filter.state !== undefined) query = query.where('state', '==', filter.state);
  const snap = await query.limit(limit + 1).get();
  const claims = snap.docs.slice(0, limit).map((d): ListedClaim => {
    const parsed = ClaimDocSchema.safeParse(d.data());
    return parsed.success
      ? { mac: d.id, claim: parsed.data }
      : { mac: d.id, problem: describeIssues(parsed.error.issues), raw: d.data() };
  });
  if (snap.size <= limit) return { claims };
  return { claims, matching: (await query.count().get()).data().count };
}

export interface ReleaseOptions {
  readonly now: Date;
  /** End the cool-down at once: automatic allocation may hand the MAC out right away. */
  readonly immediate: boolean;
}

export type ReleaseOutcome =
  | {
      kind: 'released';
      mac: string;
      /** The claim as it was before the release. */
      previous: ClaimDoc;
      releasedAt: Date;
      /** When automatic allocation may hand the MAC out again. */
      freeAt: Date;
    }
  | { kind: 'already-released'; mac: string; claim: ClaimDoc; freeAt: Date }
  | { kind: 'not-found'; mac: string }
  | { kind: 'corrupt'; mac: string; problem: string }
  | { kind: 'conflict'; mac: string };

/** Releases one claim, as a DELETE of its VM would (U5), with the cool-down of `config/settings`. */
export async function releaseClaim(store: Store, mac: string, options: ReleaseOptions): Promise<ReleaseOutcome> {
  const [snap, settings] = await Promise.all([store.db.doc(claimPath(mac)).get(), getSettings(store)]);
  if (!snap.exists) return { kind: 'not-found', mac };
  const parsed = ClaimDocSchema.safeParse(snap.data());
  if (!parsed.success) return { kind: 'corrupt', mac, problem: describeIssues(parsed.error.issues) };
  if (parsed.data.mac !== mac)
    return { kind: 'corrupt', mac, problem: `its mac field ${parsed.data.mac} is not its id` };
  const version = snap.updateTime as unknown as Version;
  return commitClaimRelease(store, parsed.data, version, effectiveSettings(settings).cooldownSeconds, options);
}

/**
 * Commits the release of a claim read earlier at `version`. The write is guarded by that version, so a claim
 * changed in between (an admission, a reconcile, another operator) is left alone and the outcome is `conflict`.
 */
export async function commitClaimRelease(
  store: Store,
  claim: ClaimDoc,
  version: Version,
  cooldownSeconds: number,
  options: ReleaseOptions,
): Promise<ReleaseOutcome> {
  const mac = claim.mac;
  const cooldownMs = cooldownSeconds * 1000;
  if (claim.state === 'released' && !options.immediate) {
    const releasedAt = claim.releasedAt ?? claim.updatedAt;
    return { kind: 'already-released', mac, claim, freeAt: new Date(releasedAt.getTime() + cooldownMs) };
  }
  // `immediate`: released one cool-down ago, so the cool-down (releasedAt + cooldownSeconds) ends now.
  const releasedAt = options.immediate ? new Date(options.now.getTime() - cooldownMs) : options.now;
  const write = releaseWrite(claim, version, `macpool-cli-${randomUUID()}`, releasedAt, cooldownMs);
  if (write.kind !== 'update') throw new Error(`releaseWrite returned a ${write.kind} write`);
  try {
    // releaseWrite stamps updatedAt with the release time, which `immediate` moved into the past.
    await store.commit([{ ...write, data: { ...write.data, updatedAt: options.now } }]);
  } catch (error) {
    if (classifyCommitError(error) === 'conflict') return { kind: 'conflict', mac };
    throw error;
  }
  return { kind: 'released', mac, previous: claim, releasedAt, freeAt: new Date(releasedAt.getTime() + cooldownMs) };
}

/** The message for a release that did not happen; tests pin these. */
export function releaseFailureMessage(
  outcome: Extract<ReleaseOutcome, { kind: 'not-found' | 'corrupt' | 'conflict' }>,
): string {
  switch (outcome.kind) {
    case 'not-found':
      return `no claim for MAC ${outcome.mac}: nothing to release (macpool claims list shows the claims)`;
    case 'corrupt':
      return `the claim document ${claimPath(outcome.mac)} does not parse (${outcome.problem}); fix or delete it in Firestore`;
    case 'conflict':
      return `the claim for MAC ${outcome.mac} changed while it was being released; nothing was written, run the command again`;
    default:
      return outcome satisfies never;
  }
}
