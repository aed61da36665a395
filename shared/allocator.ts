/**
 * The allocation plan: pure code that decides, from what was read from Firestore, which claims a request
 * creates, keeps and releases, and which MACs go into the patch. It never performs I/O; `pool.ts` reads,
 * calls it, and commits the writes it returns in one transaction.
 *
 * Every write carries a precondition (create: the document must not exist; update/delete: it must be
 * unchanged since it was read). A commit therefore succeeds only if nothing it depends on changed, without
 * holding read locks: requests touching different MACs never wait for each other.
 */
import type { DomainError } from './errors.js';
import { formatMac, type Mac, parseMac } from './mac.js';
import type { MacStanding, UsableSet } from './usable.js';
import {
  CLAIM_OPTIONAL_FIELDS,
  claimPath,
  type ClaimDoc,
  type ClaimOrigin,
  type OwnerKind,
  type ReleaseCause,
  releaseUnconfirmed,
  unsettled,
} from './documents.js';
import { fingerprintFields } from './fingerprint.js';

/** A document version (Firestore `updateTime`), opaque to the plan, used as a write precondition. */
export type Version = { readonly isEqual: (other: never) => boolean };

export interface Snapshot<T> {
  readonly data: T | 'corrupt';
  readonly version: Version;
}

/**
 * What a plan knows: the claims read (null: known absent). A MAC not in the map was not read: the plan
 * assumes it free and creates it, and the create's precondition catches the case where it was not.
 */
export interface ReadState {
  readonly claims: ReadonlyMap<string, Snapshot<ClaimDoc> | null>;
}

export const EMPTY_STATE: ReadState = { claims: new Map() };

export type Write =
  | { kind: 'create'; path: string; data: Record<string, unknown> }
  | {
      kind: 'update';
      path: string;
      data: Record<string, unknown>;
      version: Version;
      /** Optional fields to delete when `data` does not set them. */
      optional: readonly string[];
    }
  | { kind: 'delete'; path: string; version?: Version }
  /** Unconditional replace, for documents that are mirrors of the cluster (namespace labels). */
  | { kind: 'set'; path: string; data: Record<string, unknown>; merge?: boolean };

/** Who a claim is for: an object of one kind, by cluster, namespace and name. A VM and a pod never share claims. */
export interface Owner {
  readonly cluster: string;
  readonly namespace: string;
  /** Empty for a `generateName` CREATE. */
  readonly name: string;
  readonly kind: OwnerKind;
}

export interface PlannedInterface {
  readonly index: number;
  readonly name: string;
  /** Canonical MAC the interface carries (user-set or restored), if any. */
  readonly mac?: string;
  /** The interface's MAC is claimed for the VM. */
  readonly claim: boolean;
  /** The interface has no MAC and gets one from the pool. */
  readonly allocate: boolean;
}

/** What happens to claims the VM holds but no longer uses: CREATE keeps them (its name may exist), UPDATE frees them. */
export const LEFTOVER_POLICIES = ['keep', 'release'] as const;
export type LeftoverPolicy = (typeof LEFTOVER_POLICIES)[number];

/**
 * S5: whether a claim that recorded a uid may be released or rewritten by this request only when the uid matches
 * (an UPDATE: `oldObject.metadata.uid`), or whatever the request says (a CREATE, which has no uid yet).
 */
export const UID_RULES = ['must-match', 'not-checked'] as const;
export type UidRule = (typeof UID_RULES)[number];

export interface ClaimRequest {
  readonly owner: Owner;
  /** The VM's uid when this admission knows it (UPDATE); recorded on the claims (D1). */
  readonly uid?: string;
  readonly uidRule: UidRule;
  readonly requestUid: string;
  readonly timestamp: string;
  readonly now: Date;
  readonly usable: UsableSet;
  readonly cooldownMs: number;
  readonly interfaces: readonly PlannedInterface[];
  /** MACs the stored VM carries (UPDATE, DELETE): claims of a generateName request for them are this VM's (V12). */
  readonly storedMacs: ReadonlySet<string>;
  readonly leftovers: LeftoverPolicy;
}

export interface Assignment {
  readonly index: number;
  readonly interface: string;
  readonly mac: string;
}

export interface Plan {
  readonly assignments: readonly Assignment[];
  readonly writes: readonly Write[];
  readonly claimed: readonly string[];
  readonly released: readonly string[];
  readonly timestamp: string;
  readonly warnings: readonly string[];
  /** The same request was already committed: the answer repeats it and nothing is written (V13). */
  readonly replay: boolean;
  /** Candidates that turned out to be taken: a sign the range is dense here. */
  readonly takenCandidates: number;
  /** Claims of this VM left alone because they recorded another uid (S5). */
  readonly refused: readonly string[];
  /** Unconfirmed releases of this VM that `oldObject` shows to be true (U6). */
  readonly confirmed: readonly string[];
}

export type PlanResult =
  | { readonly kind: 'plan'; readonly plan: Plan }
  | { readonly kind: 'denied'; readonly error: DomainError }
  | { readonly kind: 'short'; readonly missing: number; readonly takenCandidates: number };

/** The claim was made for this owner (cluster, namespace, name, kind), whatever its state. */
export function ownedBy(doc: ClaimDoc, owner: Owner): boolean {
  return (
    doc.cluster === owner.cluster &&
    doc.namespace === owner.namespace &&
    doc.name === owner.name &&
    doc.kind === owner.kind
  );
}

/** A claim the owner holds: active, and made for it (or for its generateName request, V12). */
export function heldBy(doc: ClaimDoc, owner: Owner, requestUid: string, storedMacs: ReadonlySet<string>): boolean {
  if (doc.state === 'released') return false;
  if (doc.cluster !== owner.cluster || doc.namespace !== owner.namespace || doc.kind !== owner.kind) return false;
  if (doc.name === '') return owner.name === '' ? doc.requestUid === requestUid : storedMacs.has(doc.mac);
  return doc.name === owner.name;
}

/** A MAC automatic allocation may hand out: never claimed, or released longer ago than the cool-down (U5). */
export function freeForAllocation(
  snapshot: Snapshot<ClaimDoc> | null | undefined,
  now: Date,
  cooldownMs: number,
): boolean {
  if (snapshot === undefined || snapshot === null) return true;
  if (snapshot.data === 'corrupt' || snapshot.data.state !== 'released') return false;
  const releasedAt = snapshot.data.releasedAt ?? snapshot.data.updatedAt;
  return releasedAt.getTime() + cooldownMs <= now.getTime();
}

/** S5: a claim that recorded a uid is released or rewritten only by a request that names the same uid. */
function uidRefuses(doc: ClaimDoc, uid: string | undefined, rule: UidRule): boolean {
  return rule === 'must-match' && doc.uid !== undefined && doc.uid !== uid;
}

/**
 * U6, S5: whether a request's `oldObject` (the stored VM, as the request says) shows that VM no longer carries the
 * claim's MAC. Only for a claim that recorded the VM's uid and a request that names it: otherwise `oldObject` is
 * whatever the sender wrote (a holder of the VM webhook credential, for a VM no reconcile has seen yet).
 */
function shownWithout(doc: ClaimDoc, uid: string | undefined, storedMacs: ReadonlySet<string>): boolean {
  return doc.uid !== undefined && doc.uid === uid && !storedMacs.has(doc.mac);
}

/**
 * U6: the releases of this VM that the request's `oldObject` shows to be true: released by an UPDATE or DELETE, not
 * confirmed yet, and shown without the MAC (shownWithout).
 */
function confirmations(
  state: ReadState,
  owner: Owner,
  uid: string | undefined,
  storedMacs: ReadonlySet<string>,
  now: Date,
): { writes: Write[]; confirmed: string[] } {
  const writes: Write[] = [];
  const confirmed: string[] = [];
  for (const [mac, snap] of state.claims) {
    if (!snap || snap.data === 'corrupt' || !releaseUnconfirmed(snap.data) || !ownedBy(snap.data, owner)) continue;
    if (!shownWithout(snap.data, uid, storedMacs)) continue;
    confirmed.push(mac);
    writes.push(confirmWrite(snap.data, snap.version, now));
  }
  return { writes, confirmed };
}

/** Plans the claims of a CREATE or UPDATE. `candidates` are MACs to try, in order, for interfaces needing one. */
export function planClaims(req: ClaimRequest, state: ReadState, candidates: readonly Mac[]): PlanResult {
  const { owner, requestUid, storedMacs } = req;
  const held = new Map<string, ClaimDoc & { version: Version }>();
  const refused = new Set<string>();
  for (const [mac, snap] of state.claims) {
    if (snap && snap.data !== 'corrupt' && heldBy(snap.data, owner, requestUid, storedMacs)) {
      if (uidRefuses(snap.data, req.uid, req.uidRule)) refused.add(mac);
      else held.set(mac, { ...snap.data, version: snap.version });
    }
  }
  // A claim this very request wrote earlier: the request is being repeated (V13); answer as before.
  const earlier = [...held.values()].find((h) => h.requestUid === requestUid && h.transactionTimestamp !== undefined);
  const timestamp = earlier?.transactionTimestamp ?? req.timestamp;

  const used = new Set<string>();
  const desired: { iface: PlannedInterface; mac: string; origin: ClaimOrigin }[] = [];
  const warnings: string[] = [];

  // 1. MACs the interfaces already carry (user-set, or restored from the stored VM).
  for (const iface of req.interfaces) {
    // An interface's MAC is claimed when the interface is managed, or when the VM already holds it (e.g. a
    // MAC handed to a hot-plugged interface of any binding, U2).
    if (iface.mac === undefined || !(iface.claim || held.has(iface.mac))) continue;
    // S5: the VM's claim that recorded another uid is neither taken over nor rewritten, nor a reason to deny.
    if (refused.has(iface.mac)) {
      used.add(iface.mac);
      continue;
    }
    const snap = state.claims.get(iface.mac);
    if (snap && !held.has(iface.mac) && (snap.data === 'corrupt' || snap.data.state !== 'released')) {
      return { kind: 'denied', error: inUse(iface, iface.mac, snap.data, owner) };
    }
    // U6: a release its VM may still be carrying the MAC through is refused to others until confirmed or cooled.
    if (
      snap &&
      snap.data !== 'corrupt' &&
      releaseUnconfirmed(snap.data) &&
      !ownedBy(snap.data, owner) &&
      !freeForAllocation(snap, req.now, req.cooldownMs)
    ) {
      const freeAt = new Date((snap.data.releasedAt ?? snap.data.updatedAt).getTime() + req.cooldownMs);
      return {
        kind: 'denied',
        error: {
          code: 'mac-release-unconfirmed',
          interface: iface.name,
          mac: iface.mac,
          freeAt: freeAt.toISOString(),
          holderKind: snap.data.kind,
        },
      };
    }
    const standing = req.usable.standing(parseMac(iface.mac)!);
    if (standing !== 'usable') warnings.push(unusableWarning(iface, iface.mac, standing, req.usable, owner.kind));
    desired.push({ iface, mac: iface.mac, origin: held.get(iface.mac)?.origin ?? 'requested' });
    used.add(iface.mac);
  }

  // 2. Interfaces without a MAC: reuse what the VM already holds for that interface (a retried or repeated
  //    request, V13), otherwise take the next free candidate.
  let next = 0;
  let takenCandidates = 0;
  let missing = 0;
  for (const iface of req.interfaces) {
    if (!iface.allocate) continue;
    const reuse = [...held.values()]
      .filter((c) => c.interface === iface.name && !used.has(c.mac))
      .sort((a, b) => Number(b.requestUid === requestUid) - Number(a.requestUid === requestUid))[0];
    if (reuse !== undefined) {
      desired.push({ iface, mac: reuse.mac, origin: reuse.origin });
      used.add(reuse.mac);
      continue;
    }
    let found: string | undefined;
    while (found === undefined && next < candidates.length) {
      const mac = formatMac(candidates[next++]!);
      if (used.has(mac) || held.has(mac)) continue;
      if (freeForAllocation(state.claims.get(mac), req.now, req.cooldownMs)) found = mac;
      else takenCandidates++;
    }
    if (found === undefined) {
      missing++;
      continue;
    }
    desired.push({ iface, mac: found, origin: 'allocated' });
    used.add(found);
  }
  if (missing > 0) return { kind: 'short', missing, takenCandidates };

  // 3. Writes: every desired claim is (re)written pending with this request's timestamp (V11); the reconcile
  //    binds it once it sees the stored VM carrying the MAC.
  const writes: Write[] = [];
  const claimed: string[] = [];
  for (const d of desired) {
    const prior = held.get(d.mac);
    if (prior === undefined) claimed.push(d.mac);
    const data = claimData({
      mac: d.mac,
      state: 'pending',
      owner,
      iface: d.iface.name,
      origin: d.origin,
      uid: req.uid ?? prior?.uid,
      requestUid,
      timestamp,
      createdAt: prior?.createdAt ?? req.now,
      now: req.now,
    });
    writes.push(writeFor(claimPath(d.mac), data, state.claims.get(d.mac), CLAIM_OPTIONAL_FIELDS));
  }

  // 4. Claims held but no longer used. The stored VM (oldObject) still carries those it lists: their release is
  //    true only once the cluster shows it (U6). Those it does not carry (a stale pending claim) are free for sure.
  const released: string[] = [];
  if (req.leftovers === 'release') {
    for (const h of held.values()) {
      if (used.has(h.mac)) continue;
      released.push(h.mac);
      const cause = {
        by: 'UPDATE',
        timestamp,
        uid: req.uid,
        ...(shownWithout(h, req.uid, storedMacs) ? { confirmedAt: req.now } : {}),
      } as const;
      writes.push(releaseWrite(h, h.version, requestUid, req.now, req.cooldownMs, cause));
    }
  }
  const confirm = req.uidRule === 'must-match' ? confirmations(state, owner, req.uid, storedMacs, req.now) : undefined;
  for (const w of confirm?.writes ?? []) if (!writes.some((x) => x.path === w.path)) writes.push(w);

  const assignments = desired
    .filter((d) => d.iface.allocate)
    .map((d) => ({ index: d.iface.index, interface: d.iface.name, mac: d.mac }));
  // Nothing new to claim or release, and every claim already records this request: a repeat, write nothing.
  const replay =
    earlier !== undefined &&
    claimed.length === 0 &&
    released.length === 0 &&
    desired.every((d) => held.get(d.mac)?.requestUid === requestUid);
  return {
    kind: 'plan',
    plan: {
      assignments,
      writes: replay ? [] : writes,
      claimed,
      released,
      timestamp,
      warnings,
      replay,
      takenCandidates,
      refused: [...refused],
      confirmed: confirm?.confirmed ?? [],
    },
  };
}

export interface ReleaseRequest {
  readonly owner: Owner;
  /** `oldObject.metadata.uid` of the DELETE. */
  readonly uid: string | undefined;
  readonly requestUid: string;
  /** When the DELETE was admitted, in the transaction-timestamp format (V11), recorded with the release. */
  readonly timestamp?: string | undefined;
  readonly now: Date;
  readonly cooldownMs: number;
  readonly storedMacs: ReadonlySet<string>;
  /**
   * Whether the stored object's MACs are only what the webhook gave it. True for VMs, whose MACs change only through
   * the webhook. False for pods, whose networks annotation can be edited without it: a pod naming a MAC neither makes
   * a generateName claim (no name yet, V12) its own, nor proves, by not naming one, that the pod no longer carries it
   * (its release stays unconfirmed until a reconcile, U6).
   */
  readonly storedMacsTrusted?: boolean;
}

export interface ReleasePlan {
  readonly writes: readonly Write[];
  readonly released: readonly string[];
  /** Claims left alone because they recorded another uid (a stale or forged DELETE, D1). */
  readonly refused: readonly string[];
  /** Earlier unconfirmed releases of this VM that `oldObject` shows to be true (U6). */
  readonly confirmed: readonly string[];
}

/**
 * Plans a DELETE (D1): release the claims this VM holds, except those that recorded another uid. The MACs the
 * stored VM carries stay unconfirmed (U6): the DELETE may fail, and a finalizer keeps the VM and its VMI for a while.
 */
export function planRelease(req: ReleaseRequest, state: ReadState): ReleasePlan {
  const writes: Write[] = [];
  const released: string[] = [];
  const refused: string[] = [];
  const trusted = req.storedMacsTrusted !== false;
  const matching = trusted ? req.storedMacs : new Set<string>();
  for (const [mac, snap] of state.claims) {
    if (!snap || snap.data === 'corrupt' || !heldBy(snap.data, req.owner, req.requestUid, matching)) continue;
    if (uidRefuses(snap.data, req.uid, 'must-match')) {
      refused.push(mac);
      continue;
    }
    released.push(mac);
    const cause = {
      by: 'DELETE',
      uid: req.uid,
      ...(req.timestamp !== undefined ? { timestamp: req.timestamp } : {}),
      ...(trusted && shownWithout(snap.data, req.uid, req.storedMacs) ? { confirmedAt: req.now } : {}),
    } as const;
    writes.push(releaseWrite(snap.data, snap.version, req.requestUid, req.now, req.cooldownMs, cause));
  }
  const confirm = trusted
    ? confirmations(state, req.owner, req.uid, req.storedMacs, req.now)
    : { writes: [], confirmed: [] };
  return { writes: [...writes, ...confirm.writes], released, refused, confirmed: confirm.confirmed };
}

/** V7, C5, C6: a user-set MAC the pool would never hand out is claimed all the same, with this warning. */
function unusableWarning(
  iface: PlannedInterface,
  mac: string,
  standing: Exclude<MacStanding, 'usable'>,
  usable: UsableSet,
  kind: OwnerKind,
): string {
  const where = `MAC address ${mac} of interface ${iface.name}`;
  const tail = `it is reserved for this ${kind === 'pod' ? 'pod' : 'VM'} but the pool will not hand it out`;
  switch (standing) {
    case 'outside':
      return `${where} is outside the pool range ${usable.key}; ${tail}`;
    case 'excluded':
      return `${where} is in an excluded range of the pool (${usable.key}); ${tail}`;
    case 'universal':
      return `${where} is universally administered, inside a pool range kept to the locally administered space; ${tail}`;
    case 'multicast':
      // Multicast MACs are denied before planning (V7); kept for completeness of the switch.
      return `${where} is a multicast address; ${tail}`;
    default:
      return standing satisfies never;
  }
}

function inUse(iface: PlannedInterface, mac: string, holder: ClaimDoc | 'corrupt', owner: Owner): DomainError {
  // S3: name the holder only inside the requester's own cluster and namespace.
  const sameScope = holder !== 'corrupt' && holder.cluster === owner.cluster && holder.namespace === owner.namespace;
  return sameScope && holder.name !== ''
    ? { code: 'mac-in-use', interface: iface.name, mac, holder: holder.name, holderKind: holder.kind }
    : { code: 'mac-in-use', interface: iface.name, mac };
}

interface ClaimFields {
  mac: string;
  state: ClaimDoc['state'];
  owner: Owner;
  iface: string;
  origin: ClaimOrigin;
  uid: string | undefined;
  requestUid: string;
  timestamp: string | undefined;
  createdAt: Date;
  now: Date;
  releasedAt?: Date;
  expireAt?: Date;
  releasedBy?: ReleaseCause;
  releaseTimestamp?: string;
  releaseConfirmedAt?: Date;
}

/** A whole claim document, with no undefined values (Firestore refuses them). */
export function claimData(f: ClaimFields): Record<string, unknown> {
  const data: Record<string, unknown> = {
    mac: f.mac,
    state: f.state,
    cluster: f.owner.cluster,
    namespace: f.owner.namespace,
    name: f.owner.name,
    kind: f.owner.kind,
    interface: f.iface,
    origin: f.origin,
    requestUid: f.requestUid,
    createdAt: f.createdAt,
    updatedAt: f.now,
  };
  if (f.uid !== undefined) data.uid = f.uid;
  if (f.timestamp !== undefined) data.transactionTimestamp = f.timestamp;
  if (f.releasedAt !== undefined) data.releasedAt = f.releasedAt;
  if (f.expireAt !== undefined) data.expireAt = f.expireAt;
  if (f.releasedBy !== undefined) data.releasedBy = f.releasedBy;
  if (f.releaseTimestamp !== undefined) data.releaseTimestamp = f.releaseTimestamp;
  if (f.releaseConfirmedAt !== undefined) data.releaseConfirmedAt = f.releaseConfirmedAt;
  // R7: the fingerprint goes with the claim, in the same write.
  const open = unsettled({ state: f.state, releasedBy: f.releasedBy, releaseConfirmedAt: f.releaseConfirmedAt });
  Object.assign(data, fingerprintFields({ ...f.owner, mac: f.mac, uid: f.uid, interface: f.iface }, open));
  return data;
}

/** What released a claim (U6), recorded on it. */
export interface ReleaseRecord {
  readonly by: ReleaseCause;
  /** The releasing request's transaction timestamp (V11), when it carried one. */
  readonly timestamp?: string;
  /**
   * `oldObject.metadata.uid` of the releasing request: recorded on a claim that had none, so only that VM's later
   * admissions can confirm the release (S5, U6). A recorded uid is never replaced.
   */
  readonly uid?: string | undefined;
  /** Set when the release is known to be true already (the VM does not carry the MAC). */
  readonly confirmedAt?: Date;
}

/** A claim put in cool-down (U5): the owner stays on record; automatic allocation skips it until it ends. */
export function releaseWrite(
  doc: ClaimDoc,
  version: Version,
  requestUid: string,
  now: Date,
  cooldownMs: number,
  cause: ReleaseRecord,
): Write {
  const data = claimData({
    mac: doc.mac,
    state: 'released',
    owner: doc,
    iface: doc.interface,
    origin: doc.origin,
    uid: doc.uid ?? cause.uid,
    requestUid,
    timestamp: doc.transactionTimestamp,
    createdAt: doc.createdAt,
    now,
    releasedAt: now,
    expireAt: new Date(now.getTime() + cooldownMs),
    releasedBy: cause.by,
    ...(cause.timestamp !== undefined ? { releaseTimestamp: cause.timestamp } : {}),
    ...(cause.confirmedAt !== undefined ? { releaseConfirmedAt: cause.confirmedAt } : {}),
  });
  return { kind: 'update', path: claimPath(doc.mac), data, version, optional: CLAIM_OPTIONAL_FIELDS };
}

/** U6: the release of a claim is shown true; every other field stays as it is. */
export function confirmWrite(doc: ClaimDoc, version: Version, now: Date): Write {
  const data = { releaseConfirmedAt: now, unsettled: false };
  return { kind: 'update', path: claimPath(doc.mac), data, version, optional: [] };
}

function writeFor(
  path: string,
  data: Record<string, unknown>,
  snap: Snapshot<unknown> | null | undefined,
  optional: readonly string[],
): Write {
  return snap ? { kind: 'update', path, data, version: snap.version, optional } : { kind: 'create', path, data };
}
