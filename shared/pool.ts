/**
 * The pool: one claim engine (`engine.ts`) and the rules of the two kinds of object it serves, VirtualMachines
 * (`vm.ts`) and pods on Multus networks (`pod.ts`). Both draw from the same usable set, so a pod never takes a VM's
 * MAC and the other way round; their claims record their kind, so neither kind's rules release the other's.
 */
import { ClaimEngine, type EngineDeps } from './engine.js';
import type { AdmissionOutcome } from './outcome.js';
import { admitPod, type PodAdmission } from './pod.js';
import { admitVm, type VmAdmission } from './vm.js';

export type { AdmissionOutcome } from './outcome.js';
export type PoolDeps = EngineDeps;

export class MacPool {
  private readonly engine: ClaimEngine;

  constructor(deps: PoolDeps) {
    this.engine = new ClaimEngine(deps);
  }

  /** Forgets cached configuration, so a change this instance just wrote is served at once. */
  forgetConfig(): void {
    this.engine.forgetConfig();
  }

  forgetNamespace(cluster: string, namespace: string): void {
    this.engine.forgetNamespace(cluster, namespace);
  }

  /** A VirtualMachine CREATE, UPDATE or DELETE. Throws only on bugs; Firestore trouble becomes a verdict. */
  admitVm(input: VmAdmission): Promise<AdmissionOutcome> {
    return admitVm(this.engine, input);
  }

  /** A pod CREATE or DELETE (M1-M5). Throws only on bugs; Firestore trouble becomes a verdict. */
  admitPod(input: PodAdmission): Promise<AdmissionOutcome> {
    return admitPod(this.engine, input);
  }
}
