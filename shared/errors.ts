import type { OwnerKind } from './documents.js';

/**
 * Domain errors: returned as values, never thrown. `denialStatus` is the one place that turns them into
 * an AdmissionResponse status; the HTTP codes are the ones kubectl maps to the matching reason.
 */
export type DomainError =
  | { code: 'invalid-mac'; interface: string; value: string }
  | { code: 'multicast-mac'; interface: string; value: string }
  | { code: 'duplicate-mac'; mac: string; first: string; second: string }
  | { code: 'duplicate-interface-name'; interface: string }
  | { code: 'mac-in-use'; interface: string; mac: string; holder?: string; holderKind?: OwnerKind }
  | { code: 'mac-release-unconfirmed'; interface: string; mac: string; freeAt: string; holderKind?: OwnerKind }
  | { code: 'range-full'; range: string; coolingDown: number }
  | { code: 'invalid-object'; path: string; problem: string }
  | { code: 'no-valid-config'; reason: string }
  | { code: 'contention'; attempts: number }
  | { code: 'unavailable'; reason: string };

export type DomainErrorCode = DomainError['code'];

/** The kind of object a denial is about, as the user who sent it calls it. */
const SUBJECT: Record<OwnerKind, { object: string; noun: string }> = {
  vm: { object: 'VirtualMachine', noun: 'virtual machine' },
  pod: { object: 'Pod', noun: 'pod' },
};

export const CONFIG_DOCUMENT_PATH = 'config/kubeMacPoolConfiguration';

/**
 * The denial text a user sees after `admission webhook "..." denied the request: `. Tests pin these. `subject` is
 * the kind of object the request was for (the VM texts are KubeMacPool's).
 */
export function errorMessage(error: DomainError, subject: OwnerKind = 'vm'): string {
  switch (error.code) {
    case 'invalid-mac':
      return (
        `invalid MAC address format for interface ${error.interface}: ${error.value} ` +
        '(allowed: 48-bit MACs written aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff)'
      );
    case 'multicast-mac':
      return (
        `invalid MAC address for interface ${error.interface}: ${error.value} is a multicast address ` +
        `(the least significant bit of the first octet is set); ${subject === 'pod' ? "a pod's network attachment" : 'a VM interface'} needs a unicast MAC`
      );
    case 'duplicate-mac':
      return `duplicate MAC address ${error.mac} found on interfaces: ${error.first} and ${error.second}`;
    case 'duplicate-interface-name':
      return subject === 'pod'
        ? `every network attachment of a pod must have its own interface name (${error.interface} appears twice)`
        : `Failed to mutate virtual machine: every interface must have a unique name (${error.interface} appears twice)`;
    case 'mac-in-use':
      return (
        `MAC address ${error.mac} requested for interface ${error.interface} is already in use` +
        (error.holder === undefined ? '' : ` by ${SUBJECT[error.holderKind ?? 'vm'].noun} ${error.holder}`)
      );
    case 'mac-release-unconfirmed':
      return (
        `MAC address ${error.mac} requested for interface ${error.interface} is already in use: the ${holder(error.holderKind)} ` +
        'that held it was updated or deleted, but the cluster has not yet shown it without the MAC (the change may not ' +
        `have been stored, or the ${holder(error.holderKind)} is still shutting down). It frees at ${error.freeAt}, or sooner once a ` +
        `reconcile (macpool reconcile) sees that ${holder(error.holderKind)} without it; for a ${holder(error.holderKind)} known to be gone: ` +
        `macpool claims release ${error.mac} --now`
      );
    case 'range-full':
      return (
        `the range is full: no free MAC left in ${error.range}` +
        (error.coolingDown > 0 ? ` (${error.coolingDown} released MACs are cooling down)` : '') +
        `; widen the range in ${CONFIG_DOCUMENT_PATH} or delete unused ${subject === 'pod' ? 'pods or VMs' : 'VMs'}`
      );
    case 'invalid-object':
      return `invalid ${SUBJECT[subject].object}: ${error.path}: ${error.problem}`;
    case 'no-valid-config':
      return `MAC pool has no valid range: ${error.reason}; fix the Firestore document ${CONFIG_DOCUMENT_PATH}`;
    case 'contention':
      return `MAC pool is busy: could not claim a MAC after ${error.attempts} attempts, retry the request`;
    case 'unavailable':
      return `MAC pool unavailable: ${error.reason}`;
    default:
      return error satisfies never;
  }
}

/**
 * HTTP code of the AdmissionResponse status (the API server returns it to the client).
 *
 * | code | reason | errors |
 * |---|---|---|
 * | 422 | Invalid | malformed, multicast or duplicate MACs, duplicate interface names, malformed VM |
 * | 409 | Conflict | MAC in use (or released but not yet confirmed, U6), too much contention (retry) |
 * | 403 | Forbidden | range full (like an exhausted ResourceQuota) |
 * | 500 | InternalError | no valid range configured |
 * | 503 | ServiceUnavailable | Firestore unreachable or too slow |
 */
export function errorHttpCode(error: DomainError): number {
  switch (error.code) {
    case 'invalid-mac':
    case 'multicast-mac':
    case 'duplicate-mac':
    case 'duplicate-interface-name':
    case 'invalid-object':
      return 422;
    case 'mac-in-use':
    case 'mac-release-unconfirmed':
    case 'contention':
      return 409;
    case 'range-full':
      return 403;
    case 'no-valid-config':
      return 500;
    case 'unavailable':
      return 503;
    default:
      return error satisfies never;
  }
}

function holder(kind: OwnerKind | undefined): string {
  return kind === 'pod' ? 'pod' : 'VM';
}

/** The first line of a thrown value's message: Firestore and gRPC errors carry long multi-line details. */
export function firstLine(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}
