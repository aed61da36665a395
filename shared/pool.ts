/**
 * The pool: admission of VirtualMachine CREATE, UPDATE and DELETE. Parse, decide (allocator.ts, pure),
 * persist (store.ts), and hand back a verdict; it never sees HTTP.
 */
import { randomBytes } from 'node:crypto';
import {
  type Assignment,
  EMPTY_STATE,
  freeForAllocation,
  type Owner,
  type Plan,
  type PlannedInterface,
  planClaims,
  planRelease,
  type ReadState,
  type Snapshot,
} from './allocator.js';
import type { AdmissionRequest, Verdict } from './admission.js';
import { describeZodError } from './admission.js';
import type { ConfigSource, NamespaceSource, PoolConfig } from './config.js';
import { namespaceManaged } from './config.js';
import { type ClaimDoc, vmDocId, vmDocPath } from './documents.js';
import { type DomainError, errorHttpCode, errorMessage, PoolUnavailableError } from './errors.js';
import {
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
import { formatRange, type MacRange, macAt, rangeSize } from './range.js';
import { classifyCommitError, type Store } from './store.js';
import { rfc3339Nano } from './timestamp.js';

/** F1: every request is answered within 8 s; Firestore work gets this much of it. */
export const FIRESTORE_BUDGET_MS = 7_000;
/** Re-plans after a conflict before giving up with a `contention` denial (the budget usually ends first). */
export const MAX_ATTEMPTS = 25;
/** A range this small is always scanned: reading all its claims is cheaper than probing at random. */
export const SCAN_ALWAYS_BELOW = 4_096n;
/** After a candidate turned out taken, scan instead of probing at random for this long. */
export const DENSE_HINT_MS = 30_000;
const SCAN_PAGE = 256;
const SCAN_WINDOW = 4_096n;

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

  constructor(private readonly deps: PoolDeps) {
    this.store = deps.store;
    this.now = deps.now ?? (() => new Date());
    this.randomBelow = deps.randomBelow ?? randomBelow;
    this.budgetMs = deps.budgetMs ?? FIRESTORE_BUDGET_MS;
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
    const owner: Owner = {
      cluster,
      namespace: namespaceOf(request, vm),
      name: vm.metadata?.name || request.name || '',
    };
    return this.withBudget(async () => {
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
      const generateName = owner.name === '' ? vm.metadata?.generateName : undefined;
      const result = await this.claim(
        {
          owner,
          ...(generateName !== undefined ? { generateName } : {}),
          requestUid: request.uid,
          timestamp,
          interfaces,
          storedMacs: new Set(),
          leftovers: 'keep',
        },
        setup.config,
        request.dryRun ? 'plan' : 'commit',
        'optimistic',
      );
      if (result.kind === 'denied') return denied(result.error, result.attempts);
      const plan = result.plan;
      const patch = [...timestampOps(hasAnnotations(view), plan.timestamp), ...assignmentOps(plan.assignments)];
      return claimedOutcome(plan, patch, result.attempts, setup.config.rangeWarnings);
    });
  }

  private async update({ cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
    const parsedNew = parseVm(request.object, 'request.object');
    if (!parsedNew.ok) return denied(parsedNew.error, 0);
    const parsedOld = parseVm(request.oldObject ?? {}, 'request.oldObject');
    if (!parsedOld.ok) return denied(parsedOld.error, 0);
    const [vm, old] = [parsedNew.vm, parsedOld.vm];
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

    const owner: Owner = {
      cluster,
      namespace: namespaceOf(request, old),
      name: old.metadata?.name || request.name || '',
    };
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
    const result = await this.withBudget(async () => {
      const setup = await this.setup(cluster, owner.namespace);
      if (setup.kind === 'skip')
        return simple({ allowed: true, ...(restoreOps.length ? { patch: restoreOps } : {}) }, 'namespace-not-managed');
      if (setup.kind === 'error') return denied(setup.error, 0);
      const claimed = await this.claim(
        {
          owner,
          ...(uid ? { uid } : {}),
          requestUid: request.uid,
          timestamp,
          interfaces,
          storedMacs: oldMacs,
          leftovers: 'release',
        },
        setup.config,
        request.dryRun ? 'plan' : 'commit',
        'read-first',
      );
      if (claimed.kind === 'denied') return denied(claimed.error, claimed.attempts);
      const plan = claimed.plan;
      const patch = [
        ...restoreOps,
        ...assignmentOps(plan.assignments),
        ...timestampOps(hasAnnotations(view), plan.timestamp),
      ];
      return claimedOutcome(plan, patch, claimed.attempts, setup.config.rangeWarnings);
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
    const storedMacs = new Set(
      viewVm(old).interfaces.flatMap((i) => (i.macText ? [canonicalMac(i.macText) ?? i.macText] : [])),
    );
    try {
      return await this.withDeadline(async () => {
        const config = await this.deps.config.get();
        const cooldownMs = (config.ok ? config.config.settings.cooldownSeconds : 600) * 1000;
        for (let attempt = 1; ; attempt++) {
          const vmPath = vmDocPath(cluster, owner.namespace, owner.name);
          let state = await this.store.read([...storedMacs], vmPath);
          state = await this.store.readMore(state, vmClaimMacs(state));
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
      });
    } catch (e) {
      return { ...simple(ALLOWED_UNCHANGED, 'allowed-without-release'), detail: describe(e) };
    }
  }

  /** Namespace opt mode (V9) and the range; both cached reads. */
  private async setup(
    cluster: string,
    namespace: string,
  ): Promise<{ kind: 'ok'; config: PoolConfig } | { kind: 'skip' } | { kind: 'error'; error: DomainError }> {
    const [config, labels] = await Promise.all([
      this.deps.config.get(),
      this.deps.namespaces.labels(cluster, namespace),
    ]);
    if (!config.ok) return { kind: 'error', error: { code: 'no-valid-config', reason: config.reason } };
    if (!namespaceManaged(labels, config.config.settings.optMode)) return { kind: 'skip' };
    return { kind: 'ok', config: config.config };
  }

  /**
   * Plans and commits claims, re-planning from fresh reads after a conflict. The first attempt of a CREATE
   * is optimistic: it reads nothing and creates random candidates (in a large range they are free), so the
   * common case is one commit and no read. Later attempts, dense ranges and updates read first and pick
   * candidates from a scan of the claims.
   */
  private async claim(
    base: Omit<Parameters<typeof planClaims>[0], 'now' | 'range' | 'cooldownMs'>,
    config: PoolConfig,
    mode: RunMode,
    first: 'optimistic' | 'read-first',
  ): Promise<ClaimRun> {
    const range = config.range;
    const cooldownMs = config.settings.cooldownSeconds * 1000;
    const vmPath = vmDocPath(base.owner.cluster, base.owner.namespace, vmDocId(base.owner.name, base.requestUid));
    const need = base.interfaces.filter((i) => i.allocate).length;
    const userMacs = base.interfaces.flatMap((i) => (i.mac !== undefined ? [i.mac] : []));
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const now = this.now();
      const scanning = this.isDense(range) || attempt > 1;
      const optimistic = attempt === 1 && first === 'optimistic' && mode === 'commit' && !scanning;
      let state: ReadState = EMPTY_STATE;
      let candidates: Mac[] = [];
      let exhaustive = false;
      if (!optimistic) {
        state = await this.store.read([...userMacs, ...base.storedMacs], vmPath);
        state = await this.store.readMore(state, vmClaimMacs(state));
      }
      if (need > 0) {
        if (scanning) {
          const scan = await this.scanFree(range, need, now, cooldownMs);
          candidates = scan.candidates;
          exhaustive = scan.exhaustive;
          state = { claims: new Map([...scan.seen, ...state.claims]), vm: state.vm };
          if (exhaustive && scan.candidates.length < need) {
            const plan = planClaims({ ...base, now, range, cooldownMs }, state, candidates);
            // The VM may already hold what it needs (a repeated request); only a real shortage is "full".
            if (plan.kind !== 'short') return settle(plan, attempt);
            return {
              kind: 'denied',
              error: { code: 'range-full', range: formatRange(range), coolingDown: scan.coolingDown },
              attempts: attempt,
            };
          }
        } else {
          candidates = this.randomCandidates(range, need + 2);
          if (!optimistic) state = await this.store.readMore(state, candidates.map(formatMac));
        }
      }
      const plan = planClaims({ ...base, now, range, cooldownMs }, state, candidates);
      if (plan.kind === 'short' || (plan.kind === 'plan' && plan.plan.takenCandidates > 0)) this.markDense(range);
      if (plan.kind === 'short') {
        if (exhaustive)
          return {
            kind: 'denied',
            error: { code: 'range-full', range: formatRange(range), coolingDown: 0 },
            attempts: attempt,
          };
        continue;
      }
      if (plan.kind === 'denied' || mode === 'plan') return settle(plan, attempt);
      try {
        await this.store.commit(plan.plan.writes);
        return { kind: 'plan', plan: plan.plan, attempts: attempt };
      } catch (e) {
        const failure = classifyCommitError(e);
        if (failure === undefined) throw e;
        if (optimistic && need > 0 && failure === 'conflict') this.markDenseIfSmall(range);
        // Spread the retries of requests that collided so they do not collide again.
        await sleep(Number(this.randomBelow(BigInt(5 + 10 * attempt))));
      }
    }
    return { kind: 'denied', error: { code: 'contention', attempts: MAX_ATTEMPTS }, attempts: MAX_ATTEMPTS };
  }

  /**
   * Free MACs found by scanning the claims from a random offset, in windows, wrapping around the range, until
   * enough are found or the whole range was seen. Gaps between claim ids are free; released claims past
   * their cool-down are free too. Returns them shuffled so concurrent requests spread over them.
   */
  private async scanFree(
    range: MacRange,
    need: number,
    now: Date,
    cooldownMs: number,
  ): Promise<{ candidates: Mac[]; seen: Map<string, Snapshot<ClaimDoc>>; exhaustive: boolean; coolingDown: number }> {
    const size = rangeSize(range);
    const want = Math.max(need * 4, 16);
    const free: Mac[] = [];
    const seen = new Map<string, Snapshot<ClaimDoc>>();
    let coolingDown = 0;
    let offset = this.randomBelow(size);
    let covered = 0n;
    while (covered < size && free.length < want) {
      const from = macAt(range, offset);
      const remaining = size - covered;
      const windowLength = minBig(minBig(SCAN_WINDOW, remaining), range.end - from + 1n);
      const to = (from + windowLength - 1n) as Mac;
      const docs = await this.store.scan(from, to, SCAN_PAGE);
      const spanEnd = docs.length === SCAN_PAGE ? BigInt('0x' + docs[docs.length - 1]!.mac.replace(/:/g, '')) : to;
      const taken = new Set<bigint>();
      for (const d of docs) {
        const mac = BigInt('0x' + d.mac.replace(/:/g, ''));
        taken.add(mac);
        seen.set(d.mac, d.snapshot);
        if (freeForAllocation(d.snapshot, now, cooldownMs)) free.push(mac as Mac);
        else if (d.snapshot.data !== 'corrupt' && d.snapshot.data.state === 'released') coolingDown++;
      }
      for (let a = from; a <= spanEnd && free.length < want; a++) if (!taken.has(a)) free.push(a as Mac);
      const spanLength = spanEnd - from + 1n;
      covered += spanLength;
      offset += spanLength;
    }
    return { candidates: shuffle(free, this.randomBelow), seen, exhaustive: covered >= size, coolingDown };
  }

  private randomCandidates(range: MacRange, count: number): Mac[] {
    const size = rangeSize(range);
    const out = new Set<bigint>();
    const limit = size < BigInt(count) ? Number(size) : count;
    while (out.size < limit) out.add(macAt(range, this.randomBelow(size)));
    return [...out] as Mac[];
  }

  private isDense(range: MacRange): boolean {
    if (rangeSize(range) < SCAN_ALWAYS_BELOW) return true;
    return (this.denseUntil.get(formatRange(range)) ?? 0) > Date.now();
  }

  private markDense(range: MacRange): void {
    this.denseUntil.set(formatRange(range), Date.now() + DENSE_HINT_MS);
  }

  private markDenseIfSmall(range: MacRange): void {
    // In a huge range a conflict on a random candidate is a fluke, far likelier a repeated request.
    if (rangeSize(range) < 1n << 32n) this.markDense(range);
  }

  private timestamp(): string {
    return rfc3339Nano(this.now(), Number(process.hrtime.bigint() % 1_000_000n));
  }

  /** Runs Firestore work within the budget; a timeout or an unreachable Firestore becomes `unavailable` (F1). */
  private async withBudget(work: () => Promise<AdmissionOutcome>): Promise<AdmissionOutcome> {
    try {
      return await this.withDeadline(work);
    } catch (e) {
      return denied({ code: 'unavailable', reason: describe(e) }, 0);
    }
  }

  private withDeadline<T>(work: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PoolUnavailableError(`Firestore did not answer within ${this.budgetMs / 1000} s`)),
        this.budgetMs,
      );
    });
    return Promise.race([work(), deadline]).finally(() => clearTimeout(timer));
  }
}

type ClaimRun =
  { kind: 'plan'; plan: Plan; attempts: number } | { kind: 'denied'; error: DomainError; attempts: number };

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

function vmClaimMacs(state: ReadState): string[] {
  const vm = state.vm?.data;
  return vm && vm !== 'corrupt' ? vm.claims.map((c) => c.mac) : [];
}

function assignmentOps(assignments: readonly Assignment[]): JsonPatchOp[] {
  return assignments.map((a) => macAddressOp(a.index, a.mac));
}

function claimedOutcome(
  plan: Plan,
  patch: JsonPatchOp[],
  attempts: number,
  rangeWarnings: readonly string[],
): AdmissionOutcome {
  const warnings = [...plan.warnings, ...(plan.warnings.length > 0 ? rangeWarnings : [])];
  return {
    verdict: { allowed: true, patch, ...(warnings.length > 0 ? { warnings } : {}) },
    outcome: plan.replay ? 'replayed' : 'allowed',
    attempts,
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
  if (e instanceof PoolUnavailableError) return e.message;
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  return code === undefined ? message : `Firestore error ${String(code)}: ${message}`;
}

function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function shuffle<T>(items: T[], random: (n: bigint) => bigint): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Number(random(BigInt(i + 1)));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Uniform random integer in [0, n) from the OS's CSPRNG (rejection sampling, no modulo bias). */
export function randomBelow(n: bigint): bigint {
  if (n <= 0n) throw new RangeError('randomBelow needs n > 0');
  const bits = n.toString(2).length;
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const value = BigInt('0x' + randomBytes(bytes).toString('hex')) & mask;
    if (value < n) return value;
  }
}
