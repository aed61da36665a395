/**
 * The claim engine: plans and commits the claims of one owner's interfaces, and releases them. It knows claims,
 * owners and interfaces, never VMs or pods: `vm.ts` and `pod.ts` turn an AdmissionRequest into "these interfaces
 * need these MACs" and the plan back into a patch. One commit per request, all or none (V3); repeats replay (V13).
 *
 * Its parts: the plan (`allocator.ts`, pure), the store (`store.ts`), the usable set (`usable.ts`), the free list of
 * small pools (`freelist.ts`), group commit of concurrent first attempts (`groupcommit.ts`), and the request's
 * Firestore budget (F1), tied together here in one loop: read, plan, commit, and after a conflict read and plan again.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { EMPTY_STATE, type Owner, type Plan, planClaims, planRelease, type ReadState } from './allocator.js';
import type { ConfigSource, NamespaceSource, PoolConfig, Settings } from './config.js';
import type { OwnerKind } from './documents.js';
import { type DomainError, firstLine } from './errors.js';
import { DeadlineError, withDeadline } from './deadline.js';
import { formatMac, type Mac } from './mac.js';
import { type AdmissionOutcome, ALLOWED_UNCHANGED, denied, releasedOutcome, simple } from './outcome.js';
import { classifyCommitError, type Store } from './store.js';
import { FreeList, type FreeScan, scanWindow } from './freelist.js';
import { GROUP_STALL_MS, GroupCommit } from './groupcommit.js';
import { rfc3339Nano } from './timestamp.js';
import type { UsableSet } from './usable.js';

/** F1: every request is answered within 8 s; Firestore work gets this much of it. */
export const FIRESTORE_BUDGET_MS = 7_000;
/** Re-plans after a conflict before giving up with a `contention` denial (the budget usually ends first). */
export const MAX_ATTEMPTS = 25;
/** A range this small is served from a shared list of its free MACs, refreshed by full scans. */
export const FREE_LIST_BELOW = 4_096n;
/** After a candidate turned out taken, scan instead of probing at random for this long. */
export const DENSE_HINT_MS = 30_000;
/** Re-plans of a release after a conflict. */
const RELEASE_ATTEMPTS = 5;

export interface EngineDeps {
  readonly store: Store;
  readonly config: ConfigSource;
  readonly namespaces: NamespaceSource;
  readonly now?: () => Date;
  /** Uniform integer in [0, n). */
  readonly randomBelow?: (n: bigint) => bigint;
  readonly budgetMs?: number;
}

/** Mode of a claim run: commit the plan, or only compute it (dry run, V10). */
export const RUN_MODES = ['commit', 'plan'] as const;
export type RunMode = (typeof RUN_MODES)[number];

/** Whether a namespace is served, from its mirrored labels and the settings (V9 for VMs, M4 for pods). */
export type NamespaceScope = (labels: Readonly<Record<string, string>>, settings: Settings) => boolean;

export type Setup = { kind: 'ok'; config: PoolConfig } | { kind: 'skip' } | { kind: 'error'; error: DomainError };

/** What a claim run needs besides the pool: the owner, its interfaces and what the plan may do with its claims. */
export type ClaimBase = Omit<Parameters<typeof planClaims>[0], 'now' | 'usable' | 'cooldownMs'>;

export interface ReleaseInput {
  readonly owner: Owner;
  /** `oldObject.metadata.uid` of the DELETE (D1). */
  readonly uid: string | undefined;
  readonly requestUid: string;
  /** The MACs the stored object carries. */
  readonly storedMacs: ReadonlySet<string>;
  readonly dryRun: boolean;
  /** See ReleaseRequest.storedMacsTrusted (allocator.ts). */
  readonly storedMacsTrusted: boolean;
}

export class ClaimEngine {
  private readonly store: Store;
  private readonly now: () => Date;
  private readonly randomBelow: (n: bigint) => bigint;
  private readonly budgetMs: number;
  private readonly denseUntil = new Map<string, number>();
  private readonly freeList: FreeList;
  private readonly group: GroupCommit;

  constructor(private readonly deps: EngineDeps) {
    this.store = deps.store;
    this.group = new GroupCommit((w) => this.store.commit(w));
    this.now = deps.now ?? (() => new Date());
    this.randomBelow = deps.randomBelow ?? randomBelow;
    this.budgetMs = deps.budgetMs ?? FIRESTORE_BUDGET_MS;
    this.freeList = new FreeList(this.store);
  }

  /** Forgets cached configuration, so a change this instance just wrote is served at once. */
  forgetConfig(): void {
    this.deps.config.invalidate();
  }

  forgetNamespace(cluster: string, namespace: string): void {
    this.deps.namespaces.invalidate(cluster, namespace);
  }

  /** Whether the namespace is served, and the pool; both cached reads. */
  async setup(cluster: string, namespace: string, scope: NamespaceScope): Promise<Setup> {
    const pendingConfig = this.deps.config.get();
    const pendingLabels = this.deps.namespaces.labels(cluster, namespace);
    const [config, labels] =
      pendingConfig instanceof Promise || pendingLabels instanceof Promise
        ? await Promise.all([pendingConfig, pendingLabels])
        : [pendingConfig, pendingLabels];
    if (!config.ok) return { kind: 'error', error: { code: 'no-valid-config', reason: config.reason } };
    if (!scope(labels, config.config.settings)) return { kind: 'skip' };
    return { kind: 'ok', config: config.config };
  }

  /**
   * Plans and commits claims, re-planning from fresh reads after a conflict. The first attempt of a CREATE
   * is optimistic: it reads nothing and creates candidates derived from the owner's identity (in a large range
   * they are free), so the common case is one commit and no read. A repeated request derives the same
   * candidates, so its commit fails on its own earlier claims and the next attempt finds and replays them.
   * Later attempts, dense ranges and updates read first and, in dense ranges, pick from a scan. The first
   * commit attempts of concurrent requests on this instance share Firestore commits (groupcommit.ts).
   */
  async claim(
    base: ClaimBase,
    config: PoolConfig,
    mode: RunMode,
    first: 'optimistic' | 'read-first',
    given: AbortSignal,
  ): Promise<ClaimRun> {
    const usable = config.usable;
    const cooldownMs = config.settings.cooldownSeconds * 1000;
    const allocating = base.interfaces.filter((i) => i.allocate);
    const need = allocating.length;
    const full = (coolingDown: number): ClaimRun => ({
      kind: 'denied',
      error: { code: 'range-full', range: usable.key, coolingDown },
      attempts: 0,
    });
    // A pool with no usable MAC at all (everything excluded) derives nothing; its empty scan says "full".
    const derived =
      usable.size === 0n ? [] : allocating.map((i) => derivedCandidate(usable, base.owner, base.requestUid, i.name));
    const known = [...base.interfaces.flatMap((i) => (i.mac !== undefined ? [i.mac] : [])), ...base.storedMacs];
    // Once the request is answered without this run (`given`), nothing more is tried or written for it.
    // Transaction attempts beyond one per loop: a shared commit that failed and was retried alone.
    let extra = 0;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (attempt > 1 && given.aborted) throw new DeadlineError('gave up retrying after the request budget');
      const now = this.now();
      const scanning = this.isDense(usable);
      const optimistic = attempt === 1 && first === 'optimistic' && mode === 'commit' && !scanning;
      let state: ReadState = EMPTY_STATE;
      let candidates: Mac[] = derived;
      let exhaustive = false;
      if (!optimistic) {
        // Derived candidates only matter outside a scan; in a dense range the scan offers the candidates.
        const wanted = scanning ? known : [...known, ...derived.map(formatMac)];
        state = await this.readHeld(base.owner, base.requestUid, wanted);
        if (need > 0 && scanning) {
          const scan = await this.findFree(usable, need, now, cooldownMs);
          // Defence in depth: never plan a MAC this pool does not hold; a scan that offered one was of another
          // pool (a configuration change mid-request), so its "full" says nothing about this one.
          candidates = scan.candidates.filter((mac) => usable.has(mac));
          exhaustive = scan.exhaustive && candidates.length === scan.candidates.length;
          state = { claims: new Map([...scan.seen, ...state.claims]) };
          if (exhaustive && candidates.length < need) {
            const plan = planClaims({ ...base, now, usable, cooldownMs }, state, candidates);
            // The owner may already hold what it needs (a repeated request); only a real shortage is "full".
            if (plan.kind !== 'short') return settle(plan, attempt + extra);
            return { ...full(scan.coolingDown), attempts: attempt + extra };
          }
        } else if (need > 0) {
          const random = randomCandidates(usable, need + 2, this.randomBelow);
          state = await this.readMore(state, random.map(formatMac));
          candidates = [...derived, ...random];
        }
      }
      const plan = planClaims({ ...base, now, usable, cooldownMs }, state, candidates);
      if (plan.kind === 'short' || (plan.kind === 'plan' && plan.plan.takenCandidates > need)) this.markDense(usable);
      if (plan.kind === 'short') {
        if (exhaustive) return { ...full(0), attempts: attempt + extra };
        // Not enough offered just now (taken meanwhile, or held for this instance's commits in flight).
        await sleep(Number(this.randomBelow(BigInt(5 + 10 * attempt))));
        continue;
      }
      if (plan.kind === 'denied' || mode === 'plan') return settle(plan, attempt + extra);
      // A replay: the claims are all in place already.
      if (plan.plan.writes.length === 0) {
        this.freeList.forget(plan.plan.claimed);
        return { kind: 'plan', plan: plan.plan, attempts: attempt + extra };
      }
      if (given.aborted) throw new DeadlineError('answered before the claims were written');
      // First attempts share commits (groupcommit.ts): they rarely conflict, so their groups rarely fail.
      // Retries, which follow a conflict, commit alone. In a range served by the free list, this instance's
      // other requests are not offered these MACs while the commit is out (for at most a second).
      const release = usable.size < FREE_LIST_BELOW ? this.freeList.hold(plan.plan.claimed, GROUP_STALL_MS) : noop;
      const committed = await (
        attempt === 1 ? this.group.submit(plan.plan.writes, given) : this.group.alone(plan.plan.writes)
      ).finally(release);
      extra += committed.commits - 1;
      // Taken now, by this request or (after a failure) by someone else: do not offer them again.
      this.freeList.forget(plan.plan.claimed);
      if (committed.ok) {
        return { kind: 'plan', plan: plan.plan, attempts: attempt + extra, sharedCommit: committed.group };
      }
      if (classifyCommitError(committed.error) === undefined) throw committed.error;
      // Spread the retries of requests that collided so they do not collide again.
      await sleep(Number(this.randomBelow(BigInt(5 + 10 * attempt))));
    }
    return { kind: 'denied', error: { code: 'contention', attempts: MAX_ATTEMPTS }, attempts: MAX_ATTEMPTS };
  }

  /** The given claims and every claim recorded for the owner, read in parallel. */
  private async readHeld(owner: Owner, requestUid: string, macs: Iterable<string>): Promise<ReadState> {
    const [state, recorded] = await Promise.all([this.store.read(macs), this.store.claimsOf(owner, requestUid)]);
    return { claims: new Map([...recorded, ...state.claims]) };
  }

  private async readMore(state: ReadState, macs: readonly string[]): Promise<ReadState> {
    const missing = macs.filter((m) => !state.claims.has(m));
    if (missing.length === 0) return state;
    const more = await this.store.read(missing);
    return { claims: new Map([...state.claims, ...more.claims]) };
  }

  /** Free MACs of a dense pool: the shared free list for small pools, a windowed scan for large ones. */
  private findFree(usable: UsableSet, need: number, now: Date, cooldownMs: number): Promise<FreeScan> {
    const want = Math.max(need * 4, 16);
    return usable.size < FREE_LIST_BELOW
      ? this.freeList.take(usable, need, want, now, cooldownMs, this.randomBelow)
      : scanWindow(this.store, usable, want, now, cooldownMs, this.randomBelow);
  }

  private isDense(usable: UsableSet): boolean {
    if (usable.size < FREE_LIST_BELOW) return true;
    return (this.denseUntil.get(usable.key) ?? 0) > Date.now();
  }

  private markDense(usable: UsableSet): void {
    this.denseUntil.set(usable.key, Date.now() + DENSE_HINT_MS);
  }

  /** A transaction timestamp (V11): RFC 3339 with nanoseconds. */
  timestamp(): string {
    return rfc3339Nano(this.now(), Number(process.hrtime.bigint() % 1_000_000n));
  }

  /**
   * A CREATE's claims (V1-V13, M1-M2): the object has no uid and no stored MACs yet, keeps what its name already
   * holds, and is tried optimistically first; a dry run only plans (V10).
   */
  claimForCreate(
    create: Pick<ClaimBase, 'owner' | 'requestUid' | 'timestamp' | 'interfaces'>,
    config: PoolConfig,
    dryRun: boolean,
    given: AbortSignal,
  ): Promise<ClaimRun> {
    const base: ClaimBase = { ...create, uidRule: 'not-checked', storedMacs: new Set(), leftovers: 'keep' };
    return this.claim(base, config, dryRun ? 'plan' : 'commit', 'optimistic', given);
  }

  /**
   * Releases what an owner holds (D1, M5). Never fails the request: Firestore trouble becomes an allowed outcome
   * that says nothing was released (a reconcile frees it later). Claims that recorded another uid are left alone;
   * MACs the stored object still carries stay unconfirmed (U6) until the cluster shows them gone.
   */
  async release(input: ReleaseInput): Promise<AdmissionOutcome> {
    const { owner, requestUid, storedMacs } = input;
    try {
      return await withDeadline(
        async () => {
          const config = await this.deps.config.get();
          const cooldownMs = (config.ok ? config.config.settings.cooldownSeconds : 600) * 1000;
          for (let attempt = 1; ; attempt++) {
            const state = await this.readHeld(owner, requestUid, storedMacs);
            const now = this.now();
            const plan = planRelease(
              {
                owner,
                uid: input.uid,
                requestUid,
                timestamp: this.timestamp(),
                now,
                cooldownMs,
                storedMacs,
                storedMacsTrusted: input.storedMacsTrusted,
              },
              state,
            );
            if (input.dryRun) return releasedOutcome(plan.released, plan.refused, attempt, 'dry-run');
            try {
              await this.store.commit(plan.writes);
              const outcome = plan.refused.length > 0 ? 'release-refused-uid-mismatch' : 'released';
              return releasedOutcome(plan.released, plan.refused, attempt, outcome);
            } catch (e) {
              if (classifyCommitError(e) === undefined || attempt >= RELEASE_ATTEMPTS) throw e;
            }
          }
        },
        this.budgetMs,
        'Firestore',
      );
    } catch (e) {
      return { ...simple(ALLOWED_UNCHANGED, 'allowed-without-release'), detail: describe(e) };
    }
  }

  /**
   * Runs Firestore work within the budget; a timeout or an unreachable Firestore becomes `unavailable` (F1).
   * `work` gets a signal aborted when the request is answered without it.
   */
  async withBudget(
    subject: OwnerKind,
    work: (given: AbortSignal) => Promise<AdmissionOutcome>,
  ): Promise<AdmissionOutcome> {
    try {
      return await withDeadline(work, this.budgetMs, 'Firestore');
    } catch (e) {
      return denied({ code: 'unavailable', reason: describe(e) }, 0, subject);
    }
  }
}

export type ClaimRun =
  | { kind: 'plan'; plan: Plan; attempts: number; sharedCommit?: number }
  | { kind: 'denied'; error: DomainError; attempts: number };

function settle(plan: Exclude<ReturnType<typeof planClaims>, { kind: 'short' }>, attempts: number): ClaimRun {
  return plan.kind === 'denied'
    ? { kind: 'denied', error: plan.error, attempts }
    : { kind: 'plan', plan: plan.plan, attempts };
}

/**
 * The first MAC tried for an interface, derived from the owner's identity (or the request, for generateName):
 * spread uniformly over the usable set (a 96-bit digest modulo at most 2^48: the bias is below 2^-48), and the
 * same every time the same owner asks again while the pool is unchanged.
 */
export function derivedCandidate(usable: UsableSet, owner: Owner, requestUid: string, iface: string): Mac {
  // A VM keeps the identity earlier versions derived its MACs from; a pod's is marked as a pod's.
  const name = owner.name === '' ? `~${requestUid}` : owner.name;
  const parts = [owner.cluster, ...(owner.kind === 'vm' ? [] : [owner.kind]), owner.namespace, name, iface];
  const identity = parts.join('/');
  const digest = BigInt('0x' + createHash('sha256').update(identity).digest('hex').slice(0, 24));
  return usable.at(digest);
}

/** `count` distinct usable MACs drawn uniformly (fewer when the pool is smaller). No rejection: `at` maps. */
export function randomCandidates(usable: UsableSet, count: number, random: (n: bigint) => bigint): Mac[] {
  const out = new Set<bigint>();
  const limit = usable.size < BigInt(count) ? Number(usable.size) : count;
  while (out.size < limit) out.add(usable.at(random(usable.size)));
  return [...out] as Mac[];
}

function describe(e: unknown): string {
  if (e instanceof DeadlineError) return e.message;
  const code = (e as { code?: unknown } | null)?.code;
  const message = firstLine(e);
  return code === undefined ? message : `Firestore error ${String(code)}: ${message}`;
}

function noop(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** crypto.randomInt's bound: max - min must be below 2^48. */
const RANDOM_INT_LIMIT = 1n << 48n;

/** Uniform random integer in [0, n) from the OS's CSPRNG (rejection sampling, no modulo bias). */
export function randomBelow(n: bigint): bigint {
  if (n <= 0n) throw new RangeError('randomBelow needs n > 0');
  // crypto.randomInt draws from a buffer of random bytes it refills in bulk: far cheaper per call than
  // randomBytes, which the free list's sampling and the random probes call often. It takes ranges below 2^48.
  if (n < RANDOM_INT_LIMIT) return BigInt(randomInt(Number(n)));
  const bits = n.toString(2).length;
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const value = BigInt('0x' + randomBytes(bytes).toString('hex')) & mask;
    if (value < n) return value;
  }
}
