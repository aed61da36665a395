/**
 * The pool: admission of VirtualMachine CREATE, UPDATE and DELETE. Parse, decide (allocator.ts, pure),
 * persist (store.ts), and hand back a verdict; it never sees HTTP.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  type Assignment,
  EMPTY_STATE,
  type Owner,
  type Plan,
  type PlannedInterface,
  planClaims,
  planRelease,
  type ReadState,
} from './allocator.js';
import type { AdmissionRequest, Verdict } from './admission.js';
import { describeZodError } from './admission.js';
import type { ConfigSource, NamespaceSource, PoolConfig } from './config.js';
import { namespaceManaged } from './config.js';
import { type DomainError, errorHttpCode, errorMessage, firstLine } from './errors.js';
import { DeadlineError, withDeadline } from './deadline.js';
import {
  checkIdentity,
  checkInterfaces,
  sameInterfaces,
  type VirtualMachine,
  VirtualMachineSchema,
  type VmInterface,
  type VmView,
  viewVm,
} from './kubevirt.js';
import { canonicalMac, formatMac, type Mac } from './mac.js';
import { type JsonPatchOp, macAddressOp, timestampOps } from './patch.js';
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

export interface PoolDeps {
  readonly store: Store;
  readonly config: ConfigSource;
  readonly namespaces: NamespaceSource;
  readonly now?: () => Date;
  /** Uniform integer in [0, n). */
  readonly randomBelow?: (n: bigint) => bigint;
  readonly budgetMs?: number;
}

export interface VmAdmission {
  readonly cluster: string;
  readonly request: AdmissionRequest;
}

/** What happened, for the one log line of the request (O1). */
export interface AdmissionOutcome {
  readonly verdict: Verdict;
  readonly outcome: string;
  readonly attempts: number;
  /** Requests whose claims went out in the same Firestore commit as this one's (1: alone). */
  readonly sharedCommit?: number;
  readonly claimed: readonly string[];
  readonly released: readonly string[];
  readonly assigned: readonly string[];
  readonly error?: DomainError;
  readonly detail?: string;
}

const ALLOWED_UNCHANGED: Verdict = { allowed: true };

/** Mode of a claim run: commit the plan, or only compute it (dry run, V10). */
export const RUN_MODES = ['commit', 'plan'] as const;
export type RunMode = (typeof RUN_MODES)[number];

export class MacPool {
  private readonly store: Store;
  private readonly now: () => Date;
  private readonly randomBelow: (n: bigint) => bigint;
  private readonly budgetMs: number;
  private readonly denseUntil = new Map<string, number>();
  private readonly freeList: FreeList;
  private readonly group: GroupCommit;

  constructor(private readonly deps: PoolDeps) {
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

  /** Admits a VirtualMachine request. Throws only on bugs; Firestore trouble becomes a verdict. */
  async admitVm(input: VmAdmission): Promise<AdmissionOutcome> {
    const { request } = input;
    switch (request.operation) {
      case 'CREATE':
        return this.create(input);
      case 'UPDATE':
        return this.update(input);
      case 'DELETE':
        return this.delete(input);
      case 'CONNECT':
        return simple(ALLOWED_UNCHANGED, 'ignored');
      default:
        return request.operation satisfies never;
    }
  }

  private async create({ cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
    const parsed = parseVm(request.object, 'request.object');
    if (!parsed.ok) return denied(parsed.error, 0);
    const vm = parsed.vm;
    const owner: Owner = {
      cluster,
      namespace: namespaceOf(request, vm),
      name: vm.metadata?.name || request.name || '',
    };
    const invalid = checkIdentity(request.uid, owner.namespace, owner.name, [vm]);
    if (invalid) return denied(invalid, 0);
    const view = viewVm(vm);
    // V2: nothing to do for a VM without template, interfaces or networks.
    if (!view.hasTemplate || view.interfaces.length === 0 || !view.hasNetworks)
      return simple(ALLOWED_UNCHANGED, 'no-interfaces');
    const problem = checkInterfaces(view.interfaces);
    const timestamp = this.timestamp();
    const managed = view.interfaces.filter((i) => i.needsMac);
    if (managed.length === 0) {
      // Nothing to claim: no Firestore read, so such VMs are admitted even while Firestore is down.
      if (problem) return denied(problem, 0);
      return simple({ allowed: true, patch: timestampOps(hasAnnotations(view), timestamp) }, 'no-mac-needed');
    }
    return this.withBudget(async (given) => {
      const setup = await this.setup(cluster, owner.namespace);
      if (setup.kind === 'skip') return simple(ALLOWED_UNCHANGED, 'namespace-not-managed');
      if (setup.kind === 'error') return denied(setup.error, 0);
      if (problem) return denied(problem, 0);
      const interfaces: PlannedInterface[] = view.interfaces.map((i) => ({
        index: i.index,
        name: i.name,
        ...(i.macText !== undefined ? { mac: canonicalMac(i.macText)! } : {}),
        claim: i.needsMac,
        allocate: i.needsMac && i.macText === undefined,
      }));
      const result = await this.claim(
        {
          owner,
          uidRule: 'not-checked',
          requestUid: request.uid,
          timestamp,
          interfaces,
          storedMacs: new Set(),
          leftovers: 'keep',
        },
        setup.config,
        request.dryRun ? 'plan' : 'commit',
        'optimistic',
        given,
      );
      if (result.kind === 'denied') return denied(result.error, result.attempts);
      const plan = result.plan;
      const patch = [...timestampOps(hasAnnotations(view), plan.timestamp), ...assignmentOps(plan.assignments)];
      return claimedOutcome(plan, patch, result, setup.config.rangeWarnings);
    });
  }

  private async update({ cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
    const parsedNew = parseVm(request.object, 'request.object');
    if (!parsedNew.ok) return denied(parsedNew.error, 0);
    const parsedOld = parseVm(request.oldObject ?? {}, 'request.oldObject');
    if (!parsedOld.ok) return denied(parsedOld.error, 0);
    const [vm, old] = [parsedNew.vm, parsedOld.vm];
    const owner: Owner = {
      cluster,
      namespace: namespaceOf(request, old),
      name: old.metadata?.name || request.name || '',
    };
    const invalid = checkIdentity(request.uid, owner.namespace, owner.name, [vm, old]);
    if (invalid) return denied(invalid, 0);
    const view = viewVm(vm);
    // U4: an update that leaves the interfaces alone makes no patch and no write.
    if (!view.hasTemplate || sameInterfaces(old, vm)) return simple(ALLOWED_UNCHANGED, 'interfaces-unchanged');

    // U1: an interface sent without a MAC gets back the MAC it had (`kubectl apply` of the original YAML).
    const oldView = viewVm(old);
    const oldByName = new Map(oldView.interfaces.map((i) => [i.name, i]));
    const restoreOps: JsonPatchOp[] = [];
    const effective: VmInterface[] = view.interfaces.map((i) => {
      const previous = oldByName.get(i.name)?.macText;
      if (i.macText !== undefined || previous === undefined) return i;
      restoreOps.push(macAddressOp(i.index, previous));
      return { ...i, macText: previous };
    });
    if (restoreOps.length > 0 && sameInterfaces(old, withMacs(vm, effective))) {
      return simple({ allowed: true, patch: restoreOps }, 'macs-restored');
    }
    const problem = checkInterfaces(effective);
    if (problem) return denied(problem, 0);

    const uid = old.metadata?.uid;
    const oldMacs = new Set(
      oldView.interfaces.flatMap((i) => (i.macText ? [canonicalMac(i.macText) ?? i.macText] : [])),
    );
    const interfaces: PlannedInterface[] = effective.map((i) => {
      const isNew = !oldByName.has(i.name);
      return {
        index: i.index,
        name: i.name,
        ...(i.macText !== undefined ? { mac: canonicalMac(i.macText)! } : {}),
        claim: i.needsMac || isNew,
        // U2: a new interface gets a MAC whatever its binding (interface hot-plug), as KMP's update path does.
        allocate: (i.needsMac || isNew) && i.macText === undefined,
      };
    });
    const needsClaims = interfaces.some((i) => i.allocate || (i.claim && i.mac !== undefined && !oldMacs.has(i.mac)));
    const timestamp = this.timestamp();
    const result = await this.withBudget(async (given) => {
      const setup = await this.setup(cluster, owner.namespace);
      if (setup.kind === 'skip')
        return simple({ allowed: true, ...(restoreOps.length ? { patch: restoreOps } : {}) }, 'namespace-not-managed');
      if (setup.kind === 'error') return denied(setup.error, 0);
      const claimed = await this.claim(
        {
          owner,
          ...(uid ? { uid } : {}),
          uidRule: 'must-match',
          requestUid: request.uid,
          timestamp,
          interfaces,
          storedMacs: oldMacs,
          leftovers: 'release',
        },
        setup.config,
        request.dryRun ? 'plan' : 'commit',
        'read-first',
        given,
      );
      if (claimed.kind === 'denied') return denied(claimed.error, claimed.attempts);
      const plan = claimed.plan;
      const patch = [
        ...restoreOps,
        ...assignmentOps(plan.assignments),
        ...timestampOps(hasAnnotations(view), plan.timestamp),
      ];
      return claimedOutcome(plan, patch, claimed, setup.config.rangeWarnings);
    });
    // Fail open only where it is safe: an update that needs no new claim goes through while Firestore is
    // down; what it would have released is released by the next reconcile (R2).
    if (result.error?.code === 'unavailable' && !needsClaims) {
      return {
        ...simple(
          { allowed: true, patch: [...restoreOps, ...timestampOps(hasAnnotations(view), timestamp)] },
          'allowed-without-pool',
        ),
        detail: result.error.reason,
      };
    }
    return result;
  }

  private async delete({ cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
    // D1: a DELETE is always allowed, whatever happens below.
    const parsed = parseVm(request.oldObject ?? {}, 'request.oldObject');
    if (!parsed.ok) return { ...simple(ALLOWED_UNCHANGED, 'delete-unparsed'), detail: errorMessage(parsed.error) };
    const old = parsed.vm;
    const owner: Owner = {
      cluster,
      namespace: namespaceOf(request, old),
      name: old.metadata?.name || request.name || '',
    };
    if (owner.name === '') return simple(ALLOWED_UNCHANGED, 'delete-unnamed');
    const invalid = checkIdentity(request.uid, owner.namespace, owner.name, [old]);
    if (invalid) return { ...simple(ALLOWED_UNCHANGED, 'delete-invalid'), detail: errorMessage(invalid) };
    const storedMacs = new Set(
      viewVm(old).interfaces.flatMap((i) => (i.macText ? [canonicalMac(i.macText) ?? i.macText] : [])),
    );
    try {
      return await withDeadline(
        async () => {
          const config = await this.deps.config.get();
          const cooldownMs = (config.ok ? config.config.settings.cooldownSeconds : 600) * 1000;
          for (let attempt = 1; ; attempt++) {
            const state = await this.readHeld(owner, request.uid, storedMacs);
            const plan = planRelease(
              { owner, uid: old.metadata?.uid, requestUid: request.uid, now: this.now(), cooldownMs, storedMacs },
              state,
            );
            if (request.dryRun) return releasedOutcome(plan.released, plan.refused, attempt, 'dry-run');
            try {
              await this.store.commit(plan.writes);
              return releasedOutcome(
                plan.released,
                plan.refused,
                attempt,
                plan.refused.length > 0 ? 'release-refused-uid-mismatch' : 'released',
              );
            } catch (e) {
              if (classifyCommitError(e) === undefined || attempt >= 5) throw e;
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

  /** Namespace opt mode (V9) and the range; both cached reads. */
  private async setup(
    cluster: string,
    namespace: string,
  ): Promise<{ kind: 'ok'; config: PoolConfig } | { kind: 'skip' } | { kind: 'error'; error: DomainError }> {
    const pendingConfig = this.deps.config.get();
    const pendingLabels = this.deps.namespaces.labels(cluster, namespace);
    const [config, labels] =
      pendingConfig instanceof Promise || pendingLabels instanceof Promise
        ? await Promise.all([pendingConfig, pendingLabels])
        : [pendingConfig, pendingLabels];
    if (!config.ok) return { kind: 'error', error: { code: 'no-valid-config', reason: config.reason } };
    if (!namespaceManaged(labels, config.config.settings.optMode)) return { kind: 'skip' };
    return { kind: 'ok', config: config.config };
  }

  /**
   * Plans and commits claims, re-planning from fresh reads after a conflict. The first attempt of a CREATE
   * is optimistic: it reads nothing and creates candidates derived from the VM's identity (in a large range
   * they are free), so the common case is one commit and no read. A repeated request derives the same
   * candidates, so its commit fails on its own earlier claims and the next attempt finds and replays them.
   * Later attempts, dense ranges and updates read first and, in dense ranges, pick from a scan. The first
   * commit attempts of concurrent requests on this instance share Firestore commits (groupcommit.ts).
   */
  private async claim(
    base: Omit<Parameters<typeof planClaims>[0], 'now' | 'usable' | 'cooldownMs'>,
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
          candidates = scan.candidates;
          exhaustive = scan.exhaustive;
          state = { claims: new Map([...scan.seen, ...state.claims]) };
          if (exhaustive && scan.candidates.length < need) {
            const plan = planClaims({ ...base, now, usable, cooldownMs }, state, candidates);
            // The VM may already hold what it needs (a repeated request); only a real shortage is "full".
            if (plan.kind !== 'short') return settle(plan, attempt + extra);
            return { ...full(scan.coolingDown), attempts: attempt + extra };
          }
        } else if (need > 0) {
          const random = this.randomCandidates(usable, need + 2);
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

  /** The given claims and every claim recorded for the VM, read in parallel. */
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

  /** `count` distinct usable MACs drawn uniformly (fewer when the pool is smaller). No rejection: `at` maps. */
  private randomCandidates(usable: UsableSet, count: number): Mac[] {
    const out = new Set<bigint>();
    const limit = usable.size < BigInt(count) ? Number(usable.size) : count;
    while (out.size < limit) out.add(usable.at(this.randomBelow(usable.size)));
    return [...out] as Mac[];
  }

  private isDense(usable: UsableSet): boolean {
    if (usable.size < FREE_LIST_BELOW) return true;
    return (this.denseUntil.get(usable.key) ?? 0) > Date.now();
  }

  private markDense(usable: UsableSet): void {
    this.denseUntil.set(usable.key, Date.now() + DENSE_HINT_MS);
  }

  private timestamp(): string {
    return rfc3339Nano(this.now(), Number(process.hrtime.bigint() % 1_000_000n));
  }

  /**
   * Runs Firestore work within the budget; a timeout or an unreachable Firestore becomes `unavailable` (F1).
   * `work` gets a signal aborted when the request is answered without it.
   */
  private async withBudget(work: (given: AbortSignal) => Promise<AdmissionOutcome>): Promise<AdmissionOutcome> {
    try {
      return await withDeadline(work, this.budgetMs, 'Firestore');
    } catch (e) {
      return denied({ code: 'unavailable', reason: describe(e) }, 0);
    }
  }
}

type ClaimRun =
  | { kind: 'plan'; plan: Plan; attempts: number; sharedCommit?: number }
  | { kind: 'denied'; error: DomainError; attempts: number };

function settle(plan: Exclude<ReturnType<typeof planClaims>, { kind: 'short' }>, attempts: number): ClaimRun {
  return plan.kind === 'denied'
    ? { kind: 'denied', error: plan.error, attempts }
    : { kind: 'plan', plan: plan.plan, attempts };
}

function parseVm(object: unknown, where: string): { ok: true; vm: VirtualMachine } | { ok: false; error: DomainError } {
  if (object === undefined || object === null) {
    return { ok: false, error: { code: 'invalid-object', path: where, problem: 'is missing' } };
  }
  const parsed = VirtualMachineSchema.safeParse(object);
  if (parsed.success) return { ok: true, vm: parsed.data };
  return { ok: false, error: { code: 'invalid-object', path: where, problem: describeZodError(parsed.error) } };
}

function namespaceOf(request: AdmissionRequest, vm: VirtualMachine): string {
  return request.namespace || vm.metadata?.namespace || 'default';
}

function hasAnnotations(view: VmView): boolean {
  return view.annotations !== undefined;
}

function withMacs(vm: VirtualMachine, interfaces: readonly VmInterface[]): VirtualMachine {
  const copy = structuredClone(vm);
  const list = copy.spec?.template?.spec?.domain?.devices?.interfaces;
  if (list)
    interfaces.forEach((i) => i.macText !== undefined && list[i.index] && (list[i.index]!.macAddress = i.macText));
  return copy;
}

/**
 * The first MAC tried for an interface, derived from the VM's identity (or the request, for generateName):
 * spread uniformly over the usable set (a 96-bit digest modulo at most 2^48: the bias is below 2^-48), and the
 * same every time the same VM asks again while the pool is unchanged.
 */
export function derivedCandidate(usable: UsableSet, owner: Owner, requestUid: string, iface: string): Mac {
  const identity = [owner.cluster, owner.namespace, owner.name === '' ? `~${requestUid}` : owner.name, iface].join('/');
  const digest = BigInt('0x' + createHash('sha256').update(identity).digest('hex').slice(0, 24));
  return usable.at(digest);
}

function assignmentOps(assignments: readonly Assignment[]): JsonPatchOp[] {
  return assignments.map((a) => macAddressOp(a.index, a.mac));
}

function claimedOutcome(
  plan: Plan,
  patch: JsonPatchOp[],
  run: { attempts: number; sharedCommit?: number },
  rangeWarnings: readonly string[],
): AdmissionOutcome {
  const warnings = [...plan.warnings, ...(plan.warnings.length > 0 ? rangeWarnings : [])];
  const notes = [
    ...(plan.refused.length > 0 ? [`left claims that recorded another uid: ${plan.refused.join(', ')}`] : []),
    ...(plan.confirmed.length > 0 ? [`confirmed releases: ${plan.confirmed.join(', ')}`] : []),
  ];
  return {
    verdict: { allowed: true, patch, ...(warnings.length > 0 ? { warnings } : {}) },
    outcome: plan.replay ? 'replayed' : 'allowed',
    ...(notes.length > 0 ? { detail: notes.join('; ') } : {}),
    attempts: run.attempts,
    ...(run.sharedCommit !== undefined ? { sharedCommit: run.sharedCommit } : {}),
    claimed: plan.claimed,
    released: plan.released,
    assigned: plan.assignments.map((a) => a.mac),
  };
}

function releasedOutcome(
  released: readonly string[],
  refused: readonly string[],
  attempts: number,
  outcome: string,
): AdmissionOutcome {
  return {
    ...simple(ALLOWED_UNCHANGED, outcome),
    attempts,
    released,
    ...(refused.length > 0 ? { detail: `left claims of another uid: ${refused.join(', ')}` } : {}),
  };
}

function simple(verdict: Verdict, outcome: string): AdmissionOutcome {
  return { verdict, outcome, attempts: 0, claimed: [], released: [], assigned: [] };
}

function denied(error: DomainError, attempts: number): AdmissionOutcome {
  return {
    verdict: { allowed: false, code: errorHttpCode(error), message: errorMessage(error) },
    outcome: error.code,
    attempts,
    claimed: [],
    released: [],
    assigned: [],
    error,
  };
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
