/**
 * The VM rules: VirtualMachine CREATE, UPDATE and DELETE (V1-V13, U1-U6, D1). Turns a request into the interfaces
 * that need MACs, hands them to the claim engine, and turns its plan into a patch of the VM. It never sees HTTP.
 */
import type { Assignment, Owner, PlannedInterface } from './allocator.js';
import type { AdmissionRequest } from './admission.js';
import { describeZodError } from './admission.js';
import { namespaceManaged } from './config.js';
import type { DomainError } from './errors.js';
import { errorMessage } from './errors.js';
import { type ClaimEngine, type NamespaceScope } from './engine.js';
import {
  checkIdentity,
  checkInterfaces,
  NAMESPACE_OPT_LABEL,
  sameInterfaces,
  type VirtualMachine,
  VirtualMachineSchema,
  type VmInterface,
  type VmView,
  viewVm,
} from './kubevirt.js';
import { canonicalMac } from './mac.js';
import { type AdmissionOutcome, ALLOWED_UNCHANGED, claimedOutcome, denied as deny, simple } from './outcome.js';
import { type JsonPatchOp, macAddressOp, timestampOps } from './patch.js';

export interface VmAdmission {
  readonly cluster: string;
  readonly request: AdmissionRequest;
}

/** V9: the VM opt label and `optMode`. */
const VM_SCOPE: NamespaceScope = (labels, settings) => namespaceManaged(labels, settings.optMode, NAMESPACE_OPT_LABEL);

const denied = (error: DomainError, attempts: number) => deny(error, attempts, 'vm');

/** Admits a VirtualMachine request. Throws only on bugs; Firestore trouble becomes a verdict. */
export function admitVm(engine: ClaimEngine, input: VmAdmission): Promise<AdmissionOutcome> {
  switch (input.request.operation) {
    case 'CREATE':
      return create(engine, input);
    case 'UPDATE':
      return update(engine, input);
    case 'DELETE':
      return remove(engine, input);
    case 'CONNECT':
      return Promise.resolve(simple(ALLOWED_UNCHANGED, 'ignored'));
    default:
      return input.request.operation satisfies never;
  }
}

async function create(engine: ClaimEngine, { cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
  const parsed = parseVm(request.object, 'request.object');
  if (!parsed.ok) return denied(parsed.error, 0);
  const vm = parsed.vm;
  const owner: Owner = {
    cluster,
    namespace: namespaceOf(request, vm),
    name: vm.metadata?.name || request.name || '',
    kind: 'vm',
  };
  const invalid = checkIdentity(request.uid, owner.namespace, owner.name, [vm]);
  if (invalid) return denied(invalid, 0);
  const view = viewVm(vm);
  // V2: nothing to do for a VM without template, interfaces or networks.
  if (!view.hasTemplate || view.interfaces.length === 0 || !view.hasNetworks)
    return simple(ALLOWED_UNCHANGED, 'no-interfaces');
  const problem = checkInterfaces(view.interfaces);
  const timestamp = engine.timestamp();
  const managed = view.interfaces.filter((i) => i.needsMac);
  if (managed.length === 0) {
    // Nothing to claim: no Firestore read, so such VMs are admitted even while Firestore is down.
    if (problem) return denied(problem, 0);
    return simple({ allowed: true, patch: timestampOps(hasAnnotations(view), timestamp) }, 'no-mac-needed');
  }
  return engine.withBudget('vm', async (given) => {
    const setup = await engine.setup(cluster, owner.namespace, VM_SCOPE);
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
    const result = await engine.claimForCreate(
      { owner, requestUid: request.uid, timestamp, interfaces },
      setup.config,
      request.dryRun === true,
      given,
    );
    if (result.kind === 'denied') return denied(result.error, result.attempts);
    const plan = result.plan;
    const patch = [...timestampOps(hasAnnotations(view), plan.timestamp), ...assignmentOps(plan.assignments)];
    return claimedOutcome(plan, patch, result, setup.config.rangeWarnings);
  });
}

async function update(engine: ClaimEngine, { cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
  const parsedNew = parseVm(request.object, 'request.object');
  if (!parsedNew.ok) return denied(parsedNew.error, 0);
  const parsedOld = parseVm(request.oldObject ?? {}, 'request.oldObject');
  if (!parsedOld.ok) return denied(parsedOld.error, 0);
  const [vm, old] = [parsedNew.vm, parsedOld.vm];
  const owner: Owner = {
    cluster,
    namespace: namespaceOf(request, old),
    name: old.metadata?.name || request.name || '',
    kind: 'vm',
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
  const oldMacs = new Set(oldView.interfaces.flatMap((i) => (i.macText ? [canonicalMac(i.macText) ?? i.macText] : [])));
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
  const timestamp = engine.timestamp();
  const result = await engine.withBudget('vm', async (given) => {
    const setup = await engine.setup(cluster, owner.namespace, VM_SCOPE);
    if (setup.kind === 'skip')
      return simple({ allowed: true, ...(restoreOps.length ? { patch: restoreOps } : {}) }, 'namespace-not-managed');
    if (setup.kind === 'error') return denied(setup.error, 0);
    const claimed = await engine.claim(
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

async function remove(engine: ClaimEngine, { cluster, request }: VmAdmission): Promise<AdmissionOutcome> {
  // D1: a DELETE is always allowed, whatever happens below.
  const parsed = parseVm(request.oldObject ?? {}, 'request.oldObject');
  if (!parsed.ok) return { ...simple(ALLOWED_UNCHANGED, 'delete-unparsed'), detail: errorMessage(parsed.error) };
  const old = parsed.vm;
  const owner: Owner = {
    cluster,
    namespace: namespaceOf(request, old),
    name: old.metadata?.name || request.name || '',
    kind: 'vm',
  };
  if (owner.name === '') return simple(ALLOWED_UNCHANGED, 'delete-unnamed');
  const invalid = checkIdentity(request.uid, owner.namespace, owner.name, [old]);
  if (invalid) return { ...simple(ALLOWED_UNCHANGED, 'delete-invalid'), detail: errorMessage(invalid) };
  const storedMacs = new Set(
    viewVm(old).interfaces.flatMap((i) => (i.macText ? [canonicalMac(i.macText) ?? i.macText] : [])),
  );
  return engine.release({
    owner,
    uid: old.metadata?.uid,
    requestUid: request.uid,
    storedMacs,
    dryRun: request.dryRun === true,
    storedMacsTrusted: true,
  });
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

function assignmentOps(assignments: readonly Assignment[]): JsonPatchOp[] {
  return assignments.map((a) => macAddressOp(a.index, a.mac));
}
