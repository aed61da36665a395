/**
 * What an admission came to: the verdict for the API server, and what its one log line says (O1). Shared by the
 * VM and pod rules; the claim engine fills it from its plans.
 */
import type { Plan } from './allocator.js';
import type { Verdict } from './admission.js';
import type { OwnerKind } from './documents.js';
import { type DomainError, errorHttpCode, errorMessage } from './errors.js';
import type { JsonPatchOp } from './patch.js';

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

export const ALLOWED_UNCHANGED: Verdict = { allowed: true };

export function simple(verdict: Verdict, outcome: string): AdmissionOutcome {
  return { verdict, outcome, attempts: 0, claimed: [], released: [], assigned: [] };
}

/** A denial, its text worded for the kind of object the request was for. */
export function denied(error: DomainError, attempts: number, subject: OwnerKind): AdmissionOutcome {
  return {
    verdict: { allowed: false, code: errorHttpCode(error), message: errorMessage(error, subject) },
    outcome: error.code,
    attempts,
    claimed: [],
    released: [],
    assigned: [],
    error,
  };
}

/** An allowed request whose claims were planned (and, unless a dry run, committed). */
export function claimedOutcome(
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

export function releasedOutcome(
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
