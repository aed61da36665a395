/**
 * Operator tasks on the pool's Firestore documents, for the `macpool` CLI: read and change the configuration,
 * label namespaces, count claims, list and release them. Every check is the function's own (C1 and C6 `validatePool`,
 * `SettingsSchema`, `NamespaceDocSchema`), so the CLI never writes a document the function would refuse.
 */
import { randomUUID } from 'node:crypto';
import { FieldPath, type Query, type QueryDocumentSnapshot, Timestamp } from '@google-cloud/firestore';
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
  type OwnerKind,
} from './documents.js';
import { CLUSTER_NAME } from './env.js';
import { NAMESPACE_OPT_LABEL, OPT_IN_VALUE, OPT_OUT_VALUE } from './kubevirt.js';
import { namespaceDigest } from './fingerprint.js';
import { formatMac, parseMac } from './mac.js';
import { DEFAULT_RANGE_END, DEFAULT_RANGE_START, type MacRange } from './range.js';
import { classifyCommitError, type Store } from './store.js';
import { type PoolFields, RANGE_LISTS, type RangeList, rangeUsage, validatePool } from './usable.js';
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
  /** The stored pool fields (the defaults when the document is absent); the lists only when stored. */
  readonly fields: PoolFields;
  /** Why the function refuses the stored document (C3), if it does. */
  readonly problem?: string;
  readonly warnings: readonly string[];
  /** How many MACs automatic allocation may hand out (C5, C6), when the document is valid. */
  readonly usableMacs?: bigint;
}

export async function getRangeConfig(store: Store): Promise<RangeConfigView> {
  const doc = await store.get(RANGE_DOC_PATH);
  const fields = doc ? poolFields(doc) : { rangeStart: DEFAULT_RANGE_START, rangeEnd: DEFAULT_RANGE_END };
  const result = validatePool(fields);
  return result.ok
    ? { exists: doc !== undefined, fields, warnings: result.warnings, usableMacs: result.usable.size }
    : { exists: true, fields, problem: `${RANGE_DOC_PATH}: ${result.message}`, warnings: [] };
}

/** The pool's fields of the range document, leaving out what else is stored there (source, updatedAt). */
function poolFields(doc: Record<string, unknown>): PoolFields {
  return {
    rangeStart: doc.rangeStart,
    rangeEnd: doc.rangeEnd,
    ...Object.fromEntries(RANGE_LISTS.filter((l) => doc[l] !== undefined).map((l) => [l, doc[l]])),
  };
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

/** A range as stored: both ends spelled as the operator wrote them (any common MAC spelling). */
export interface StoredRange {
  readonly rangeStart: string;
  readonly rangeEnd: string;
}

/** Adds a range to, or removes one from, `additionalRanges` or `excludedRanges` (C6). */
export interface ListEdit {
  readonly list: RangeList;
  readonly op: 'add' | 'remove';
  readonly range: StoredRange;
}

export interface ConfigChange {
  readonly range?: StoredRange;
  readonly lists?: readonly ListEdit[];
  readonly settings?: Partial<Settings>;
}

/** The `source` recorded on a range the CLI writes (the HyperConverged sync records `hyperconverged`). */
export const RANGE_SOURCE = 'macpool-cli';

export type ConfigChangeResult = { ok: true; warnings: string[]; written: string[] } | { ok: false; reason: string };

/**
 * Validates a change with the function's own rules (C1 for every range and C6 for the lists, on the document as it
 * will be; `SettingsSchema` for the settings) and writes it in one transaction: all of it or, when anything is
 * invalid, nothing. Fields not named are kept.
 */
export async function setConfig(store: Store, change: ConfigChange, now: Date): Promise<ConfigChangeResult> {
  const rangeRef = store.db.doc(RANGE_DOC_PATH);
  const touchesPool = change.range !== undefined || (change.lists ?? []).length > 0;
  let settingsData: Record<string, unknown> | undefined;
  if (change.settings !== undefined) {
    // Absent fields take their defaults in the parse; only the fields given are written.
    const parsed = SettingsSchema.safeParse(change.settings);
    if (!parsed.success) return { ok: false, reason: `${SETTINGS_DOC_PATH}: ${describeIssues(parsed.error.issues)}` };
    settingsData = Object.fromEntries(Object.keys(change.settings).map((k) => [k, parsed.data[k as keyof Settings]]));
  }
  return store.db.runTransaction(async (tx): Promise<ConfigChangeResult> => {
    const written: string[] = [];
    const warnings: string[] = [];
    if (touchesPool) {
      const snap = await tx.get(rangeRef);
      const stored = snap.exists
        ? poolFields(snap.data()!)
        : { rangeStart: DEFAULT_RANGE_START, rangeEnd: DEFAULT_RANGE_END };
      const edited = applyEdits({ ...stored, ...(change.range ?? {}) }, change.lists ?? []);
      if (!edited.ok) return edited;
      const result = validatePool(edited.fields);
      if (!result.ok) return { ok: false, reason: result.message };
      warnings.push(...result.warnings);
      // source and updatedAt record where the range came from, as the HyperConverged sync records its own.
      const data: Record<string, unknown> = { source: RANGE_SOURCE, updatedAt: now };
      // The ends are written when given, and always into a new document (the default range, made explicit).
      if (change.range !== undefined || !snap.exists) {
        Object.assign(data, { rangeStart: edited.fields.rangeStart, rangeEnd: edited.fields.rangeEnd });
      }
      for (const list of new Set((change.lists ?? []).map((e) => e.list))) data[list] = edited.fields[list];
      tx.set(rangeRef, data, { merge: true });
      written.push(RANGE_DOC_PATH);
    }
    if (settingsData !== undefined) {
      tx.set(store.db.doc(SETTINGS_DOC_PATH), settingsData, { merge: true });
      written.push(SETTINGS_DOC_PATH);
    }
    return { ok: true, warnings, written };
  });
}

/**
 * Applies list edits to the stored pool fields. Adding a range already listed changes nothing; removing one that is
 * not listed (compared as MACs, whatever the spelling) is an error naming what is listed.
 */
function applyEdits(
  fields: PoolFields,
  edits: readonly ListEdit[],
): { ok: true; fields: PoolFields & Partial<Record<RangeList, StoredRange[]>> } | { ok: false; reason: string } {
  const out: Record<string, unknown> = { ...fields };
  for (const edit of edits) {
    const current = out[edit.list];
    if (current !== undefined && !Array.isArray(current)) {
      return { ok: false, reason: `${RANGE_DOC_PATH}: ${edit.list} is not a list; fix or delete the field first` };
    }
    const list = [...((current as unknown[] | undefined) ?? [])];
    const at = list.findIndex((e) => sameStoredRange(e, edit.range));
    if (edit.op === 'add' && at < 0) list.push({ rangeStart: edit.range.rangeStart, rangeEnd: edit.range.rangeEnd });
    if (edit.op === 'remove') {
      if (at < 0) {
        const listed = list.map((e) => storedRangeText(e)).join(', ') || 'nothing';
        return {
          ok: false,
          reason: `${edit.list} has no range ${storedRangeText(edit.range)}; it lists ${listed}`,
        };
      }
      list.splice(at, 1);
    }
    out[edit.list] = list;
  }
  return { ok: true, fields: out as PoolFields & Partial<Record<RangeList, StoredRange[]>> };
}

function sameStoredRange(entry: unknown, range: StoredRange): boolean {
  const e = entry as Partial<Record<keyof StoredRange, unknown>> | null;
  const mac = (v: unknown) => (typeof v === 'string' ? parseMac(v) : undefined);
  const [a, b] = [mac(e?.rangeStart), mac(e?.rangeEnd)];
  return a !== undefined && a === mac(range.rangeStart) && b !== undefined && b === mac(range.rangeEnd);
}

function storedRangeText(entry: unknown): string {
  const e = entry as Partial<Record<keyof StoredRange, unknown>> | null;
  return e?.rangeStart === e?.rangeEnd ? String(e?.rangeStart) : `${String(e?.rangeStart)}-${String(e?.rangeEnd)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces

/** What `macpool namespace <action>` does to the opt label: set it to `ignore` or `allocate`, or remove it. */
export const NAMESPACE_ACTIONS = ['ignore', 'allocate', 'reset'] as const;
export type NamespaceAction = (typeof NAMESPACE_ACTIONS)[number];

export interface NamespaceView {
  readonly namespace: string;
  /** The value of the opt label (`mutatevirtualmachines.kubemacpool.io`, or the pod label), if set. */
  readonly label: string | undefined;
  /** Whether the pool serves the namespace under the current opt mode (V9). */
  readonly managed: boolean;
  /** Why the document does not parse; the function then treats the namespace as unlabelled. */
  readonly problem?: string;
}

function namespaceView(namespace: string, data: unknown, mode: OptMode, label: string): NamespaceView {
  const parsed = NamespaceDocSchema.safeParse(data ?? {});
  if (!parsed.success) {
    return {
      namespace,
      label: undefined,
      managed: namespaceManaged({}, mode, label),
      problem: describeIssues(parsed.error.issues),
    };
  }
  const labels = parsed.data.labels;
  return { namespace, label: labels[label], managed: namespaceManaged(labels, mode, label) };
}

/**
 * Sets or removes the opt label (the VM label, or with `label` the pod label, M4) on
 * `clusters/{cluster}/namespaces/{ns}` for each namespace, in one transaction.
 * The whole `labels` map is rewritten (other labels kept), in the shape `NamespaceDocSchema` reads; a document
 * that does not parse is replaced by one that does.
 */
export async function setNamespaceLabel(
  store: Store,
  cluster: string,
  namespaces: readonly string[],
  action: NamespaceAction,
  mode: OptMode,
  label: string = NAMESPACE_OPT_LABEL,
): Promise<NamespaceView[]> {
  const refs = [...new Set(namespaces)].map((ns) => store.db.doc(namespacePath(cluster, ns)));
  return store.db.runTransaction(async (tx) => {
    const snaps = await tx.getAll(...refs);
    return snaps.map((snap, i) => {
      const parsed = NamespaceDocSchema.safeParse(snap.data() ?? {});
      const labels: Record<string, string> = parsed.success ? { ...parsed.data.labels } : {};
      if (action === 'reset') delete labels[label];
      else labels[label] = action === 'ignore' ? OPT_OUT_VALUE : OPT_IN_VALUE;
      // mergeFields replaces the labels map as a whole (merge: true would merge it key by key and never remove).
      tx.set(refs[i]!, { labels, digest: namespaceDigest(snap.id, labels) }, { mergeFields: ['labels', 'digest'] });
      return namespaceView(snap.id, { labels }, mode, label);
    });
  });
}

/** The namespace documents of a cluster, in name order. */
export async function listNamespaces(
  store: Store,
  cluster: string,
  mode: OptMode,
  label: string = NAMESPACE_OPT_LABEL,
): Promise<NamespaceView[]> {
  const snap = await store.db.collection(`${COLLECTIONS.clusters}/${cluster}/${COLLECTIONS.namespaces}`).get();
  return snap.docs.map((d) => namespaceView(d.id, d.data(), mode, label));
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

/** One configured range in `macpool status`: its size and what C5 takes out of it. */
export interface RangeStatus {
  readonly start: string;
  readonly end: string;
  readonly size: number;
  readonly multicast: number;
  readonly universal: number;
}

export interface PoolStatus {
  /** `rangeStart`-`rangeEnd` first, then `additionalRanges`. */
  readonly ranges: readonly RangeStatus[];
  readonly excluded: readonly { readonly start: string; readonly end: string; readonly size: number }[];
  /** MACs automatic allocation may hand out: the usable set (C5, C6). */
  readonly usable: number;
  readonly rangeWarnings: readonly string[];
  readonly cooldownSeconds: number;
  /** Claims of usable MACs, by state. */
  readonly inPool: StateCounts & { readonly coolingDown: number; readonly total: number };
  /** pending + bound among the usable MACs. */
  readonly claimed: number;
  /** Usable MACs automatic allocation may hand out now: never claimed, or released longer ago than the cool-down. */
  readonly free: number;
  /** Share of the usable set that is not free, in percent. */
  readonly utilizationPercent: number;
  /** Every claim, by state. */
  readonly claims: StateCounts & { readonly total: number };
  /**
   * Released claims whose release the cluster has not shown yet (U6: their VM or pod may still carry the MAC), as
   * recorded by `unsettled` (claims written before that field existed count once a reconcile's full read set it).
   */
  readonly unconfirmedReleases: number;
  /** Claims of MACs outside the usable set (user-set MACs, excluded MACs, claims from an earlier range). */
  readonly outsidePool: number;
}

export type StatusResult = { ok: true; status: PoolStatus } | { ok: false; reason: string };

/** Usable intervals counted at once: each costs five aggregation queries. */
const STATUS_CONCURRENCY = 16;

/**
 * Pool figures from Firestore `count()` aggregations; no claim document is read, so the cost does not grow with
 * the pool. Claims of usable MACs are counted interval by interval of the usable set (usable.ts): each interval is
 * a document-id range between canonical MACs, and ids are fixed width, so id order is numeric order.
 */
export async function poolStatus(store: Store, now: Date): Promise<StatusResult> {
  const [rangeDoc, settingsDoc] = await Promise.all([store.get(RANGE_DOC_PATH), store.get(SETTINGS_DOC_PATH)]);
  const config = parsePoolConfig(rangeDoc, settingsDoc);
  if (!config.range.ok) return { ok: false, reason: config.range.reason };
  const { usable, rangeWarnings, settings } = config.range.config;
  const cutoff = Timestamp.fromMillis(now.getTime() - settings.cooldownSeconds * 1000);

  const macs = store.db.collection(COLLECTIONS.macs);
  const count = async (q: Query) => (await q.count().get()).data().count;
  const byState = (q: Query) => Promise.all(CLAIM_STATES.map((s) => count(q.where('state', '==', s))));
  // The emulator serves count() over a document-id range with an equality filter on state, as Firestore does
  // from the single-field index on state. Released and still cooling down (releasedAt + cool-down > now, as
  // freeForAllocation decides) adds a second range field, releasedAt: Firestore may answer that it needs a
  // composite index (state, releasedAt), with the link that creates it in its message. A released claim without
  // releasedAt (written by hand) counts here as past its cool-down.
  const countInterval = async (r: MacRange) => {
    const q = macs
      .where(FieldPath.documentId(), '>=', formatMac(r.start))
      .where(FieldPath.documentId(), '<=', formatMac(r.end));
    const [total, states, cooling] = await Promise.all([
      count(q),
      byState(q),
      count(q.where('state', '==', 'released').where('releasedAt', '>', cutoff)),
    ]);
    return [total, ...states, cooling];
  };
  const sums = [0, 0, 0, 0, 0];
  for (let i = 0; i < usable.intervals.length; i += STATUS_CONCURRENCY) {
    const parts = await Promise.all(usable.intervals.slice(i, i + STATUS_CONCURRENCY).map(countInterval));
    for (const part of parts) part.forEach((n, k) => (sums[k]! += n));
  }
  const [total, states, unconfirmedReleases] = await Promise.all([
    count(macs),
    byState(macs),
    count(macs.where('state', '==', 'released').where('unsettled', '==', true)),
  ]);
  const counts = (total: number, [pending, bound, released]: number[]) => ({
    pending: pending!,
    bound: bound!,
    released: released!,
    other: total - pending! - bound! - released!,
    total,
  });
  const claims = counts(total, states);
  const [inTotal, ...inStates] = sums as [number, number, number, number, number];
  const inside = { ...counts(inTotal, inStates.slice(0, 3)), coolingDown: inStates[3]! };
  const size = Number(usable.size);
  // Every usable MAC is free except the claims of it that automatic allocation may not hand out.
  const taken = inside.total - (inside.released - inside.coolingDown);
  const { range, additional, excluded } = usable.ranges;
  return {
    ok: true,
    status: {
      ranges: [range, ...additional].map(rangeStatus),
      excluded: excluded.map((r) => ({ start: formatMac(r.start), end: formatMac(r.end), size: rangeLength(r) })),
      usable: size,
      rangeWarnings,
      cooldownSeconds: settings.cooldownSeconds,
      inPool: inside,
      claimed: inside.pending + inside.bound,
      free: size - taken,
      utilizationPercent: size === 0 ? 100 : Math.round((taken / size) * 10_000) / 100,
      claims,
      unconfirmedReleases,
      outsidePool: claims.total - inside.total,
    },
  };
}

function rangeStatus(range: MacRange): RangeStatus {
  const u = rangeUsage(range);
  return {
    start: formatMac(range.start),
    end: formatMac(range.end),
    size: Number(u.size),
    multicast: Number(u.multicast),
    universal: Number(u.universal),
  };
}

function rangeLength(range: MacRange): number {
  return Number(range.end - range.start + 1n);
}

// ---------------------------------------------------------------------------------------------------------------
// Claims

export interface ClaimFilter {
  readonly cluster?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly state?: ClaimState;
  /** Whose claims: VMs' or pods'. */
  readonly kind?: OwnerKind;
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
  const listed = (docs: readonly QueryDocumentSnapshot[]) =>
    docs.map((d): ListedClaim => {
      const parsed = ClaimDocSchema.safeParse(d.data());
      return parsed.success
        ? { mac: d.id, claim: parsed.data }
        : { mac: d.id, problem: describeIssues(parsed.error.issues), raw: d.data() };
    });
  if (filter.kind === 'pod') query = query.where('kind', '==', 'pod');
  if (filter.kind !== 'vm') {
    const snap = await query.limit(limit + 1).get();
    const claims = listed(snap.docs.slice(0, limit));
    if (snap.size <= limit) return { claims };
    return { claims, matching: (await query.count().get()).data().count };
  }
  // VM claims written before claims recorded their kind have no `kind` field, which no filter can match: page
  // through the others and leave out the pods' (`kind: pod` is always written). The count subtracts theirs.
  const claims: ListedClaim[] = [];
  let more = false;
  for (let page = query.limit(Math.max(limit + 1, 100)); ;) {
    const snap = await page.get();
    for (const claim of listed(snap.docs)) {
      if ('claim' in claim && claim.claim.kind === 'pod') continue;
      if ('problem' in claim && claim.raw.kind === 'pod') continue;
      if (claims.length === limit) more = true;
      else claims.push(claim);
    }
    const last = snap.docs[snap.docs.length - 1];
    if (more || last === undefined || snap.size < Math.max(limit + 1, 100)) break;
    page = page.startAfter(last);
  }
  if (!more) return { claims };
  const [all, pods] = await Promise.all([query.count().get(), query.where('kind', '==', 'pod').count().get()]);
  return { claims, matching: all.data().count - pods.data().count };
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
  // An operator's release is the evidence U6 waits for: it is confirmed at once (`--now` for a VM known to be gone).
  const write = releaseWrite(claim, version, `macpool-cli-${randomUUID()}`, releasedAt, cooldownMs, {
    by: 'operator',
    confirmedAt: options.now,
  });
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
