/**
 * What the `macpool` CLI prints: plain tables and summaries for people, plain objects for `-o json`, and one-line
 * descriptions of failures. Pure functions, so the wording is tested without a terminal or Firestore.
 */
import type { ListedClaim, NamespaceView, PoolStatus } from '../shared/admin.js';
import { type ClaimDoc, releaseUnconfirmed } from '../shared/documents.js';
import type { ReconcileReport } from '../shared/reconcile.js';

/** Columns padded to their widest cell, two spaces apart, like `kubectl get`. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [headers, ...rows].map(line).join('\n') + '\n';
}

/** A timestamp to the second, in UTC: `2026-11-27T12:00:00Z`. */
export function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const OR_DASH = (text: string | undefined) => (text === undefined || text === '' ? '-' : text);

export const CLAIM_HEADERS = [
  'MAC',
  'STATE',
  'CLUSTER',
  'NAMESPACE',
  'KIND',
  'NAME',
  'INTERFACE',
  'ORIGIN',
  'UPDATED',
] as const;

export function claimRow(listed: ListedClaim): string[] {
  if ('problem' in listed) {
    const field = (name: string) => {
      const value = listed.raw[name];
      return typeof value === 'string' ? OR_DASH(value) : '-';
    };
    return [
      listed.mac,
      '(invalid)',
      field('cluster'),
      field('namespace'),
      listed.raw.kind === 'pod' ? 'pod' : 'vm',
      field('name'),
      field('interface'),
      field('origin'),
      '-',
    ];
  }
  const c = listed.claim;
  return [
    listed.mac,
    stateText(c),
    c.cluster,
    c.namespace,
    c.kind,
    OR_DASH(c.name),
    c.interface,
    c.origin,
    timestamp(c.updatedAt),
  ];
}

/** The state column: a release its VM's cluster has not yet shown says so, and by what it was made (U6). */
export function stateText(c: ClaimDoc): string {
  return releaseUnconfirmed(c) ? `released (unconfirmed ${c.releasedBy})` : c.state;
}

/** A claim for `-o json`: the document's fields, timestamps as RFC 3339 strings. */
export function claimJson(listed: ListedClaim): Record<string, unknown> {
  if ('problem' in listed) return { mac: listed.mac, problem: listed.problem };
  const c: ClaimDoc = listed.claim;
  return { ...c, mac: listed.mac };
}

export const NAMESPACE_HEADERS = ['NAMESPACE', 'LABEL', 'SERVED'] as const;

export function namespaceRow(view: NamespaceView): string[] {
  return [view.namespace, view.problem === undefined ? OR_DASH(view.label) : '(invalid)', view.managed ? 'yes' : 'no'];
}

export function namespaceJson(view: NamespaceView): Record<string, unknown> {
  return {
    namespace: view.namespace,
    label: view.label ?? null,
    managed: view.managed,
    ...(view.problem === undefined ? {} : { problem: view.problem }),
  };
}

/**
 * `macpool status` for people: the Firestore it read (`target`), then one figure per line; a range or exclusion per
 * line under its heading.
 */
export function statusText(s: PoolStatus, target: string): string {
  const r = s.inPool;
  const rangeLine = (x: PoolStatus['ranges'][number]) => {
    const dropped = [
      ...(x.multicast > 0 ? [`${x.multicast} multicast`] : []),
      ...(x.universal > 0 ? [`${x.universal} universally administered`] : []),
    ];
    return `${x.start}-${x.end} (${x.size} MACs${dropped.length > 0 ? `; never handed out: ${dropped.join(', ')}` : ''})`;
  };
  const listed = (heading: string, lines: string[]): [string, string][] =>
    lines.map((line, i) => [i === 0 ? heading : '', line]);
  const rows: [string, string][] = [
    ['project', target],
    ...listed(s.ranges.length > 1 ? 'ranges' : 'range', s.ranges.map(rangeLine)),
    ...listed(
      'excluded',
      s.excluded.map((x) => (x.start === x.end ? x.start : `${x.start}-${x.end} (${x.size} MACs)`)),
    ),
    ['usable', String(s.usable)],
    ['claimed', `${s.claimed} (pending ${r.pending}, bound ${r.bound})`],
    [
      'released',
      `${r.released} (cooling down ${r.coolingDown}, past the ${s.cooldownSeconds} s cool-down ${r.released - r.coolingDown})`,
    ],
    ...(r.other > 0 ? [['unreadable', `${r.other} (claims with an unknown state: taken)`] as [string, string]] : []),
    ['free', String(s.free)],
    ['utilization', `${s.utilizationPercent.toFixed(2)}%`],
    [
      'claims',
      `${s.claims.total} (pending ${s.claims.pending}, bound ${s.claims.bound}, released ${s.claims.released}` +
        (s.claims.other > 0 ? `, unknown state ${s.claims.other})` : ')'),
    ],
    [
      'unconfirmed',
      `${s.unconfirmedReleases}` +
        (s.unconfirmedReleases > 0
          ? ' (released, not yet shown gone by the cluster: refused to explicit requests of others until a reconcile confirms or the cool-down ends)'
          : ''),
    ],
    ['outside pool', String(s.outsidePool)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

/** `macpool reconcile` for people: the counts, then each collision and problem on a line of its own. */
export function reconcileText(r: ReconcileReport, cluster: string): string {
  const rows: [string, number, string?][] = [
    ['bound', r.bound],
    ['released', r.released],
    ['healed', r.healed],
    ['unchanged', r.unchanged],
    ['skipped', r.skippedYoung, 'too young: within the wait time'],
    ['confirmed', r.confirmed, 'releases the cluster now shows'],
    ['rebound', r.rebound, 'released by a change the cluster never stored'],
    ['deleting', r.awaitingDeletion, 'releases waiting for their VM to be gone'],
    ['waiting', r.youngReleases, 'releases within the wait time: the next run decides'],
    [
      'withheld',
      r.withheldConfirmations,
      'releases left unconfirmed: the inventory lists no object of their kind; --force if the cluster has none',
    ],
    ['conflicts', r.conflicts, 'changed meanwhile: the next run looks again'],
    ['namespaces', r.namespaces, 'namespace documents updated'],
    ['collisions', r.collisions.length],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [
    `reconciled ${r.vms} VMs${r.pods !== undefined ? ` and ${r.pods} pods` : ''} of cluster ${cluster} against ${r.claims} claims in ${(r.durationMs / 1000).toFixed(1)} s`,
    ...rows.map(([k, n, note]) => `${k.padEnd(width)}  ${n}${note && n > 0 ? ` (${note})` : ''}`),
    ...r.collisions.map(
      (c) =>
        `MAC ${c.mac}: ${[...c.vms, ...(c.pods ?? []).map((p) => `pod ${p}`)].join(', ')}` +
        (c.otherCluster ? ' (also claimed in another cluster)' : ''),
    ),
    ...r.problems.map((p) => `problem: ${p}`),
    ...(r.refused !== undefined
      ? [`refused, nothing written: ${r.refused}; run again with --force if the inventory is complete`]
      : r.wrote
        ? []
        : ['dry run: nothing written']),
  ];
  return lines.join('\n') + '\n';
}

// gRPC status names, by code (google.rpc.Code).
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

const CREDENTIALS_HINT =
  'check Application Default Credentials (gcloud auth application-default login) and GOOGLE_CLOUD_PROJECT';

/**
 * One line for any failure: Firestore's gRPC errors as `Firestore <STATUS>: <first line of the details>` with a
 * hint where one helps; anything else as the first line of its message. Never a stack trace.
 */
export function describeError(error: unknown): string {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    details?: unknown;
    message?: unknown;
  };
  const message = typeof e.message === 'string' ? e.message : String(error);
  if (typeof e.code === 'number' && e.code > 0 && e.code < GRPC_CODES.length) {
    const status = GRPC_CODES[e.code]!;
    const details = typeof e.details === 'string' && e.details !== '' ? e.details : message;
    const text = firstLine(details.replace(/^\d+ [A-Z_]+: /, ''));
    const hint =
      status === 'PERMISSION_DENIED' || status === 'UNAUTHENTICATED'
        ? `; ${CREDENTIALS_HINT}`
        : status === 'UNAVAILABLE'
          ? '; is Firestore (or FIRESTORE_EMULATOR_HOST) reachable?'
          : '';
    return `Firestore ${status}: ${text}${hint}`;
  }
  if (/could not load the default credentials/i.test(message)) return `${firstLine(message)}; ${CREDENTIALS_HINT}`;
  return firstLine(message);
}

function firstLine(text: string): string {
  const line = (text.split('\n')[0] ?? '').replace(/\s*Resolution note:\s*$/, '');
  return line.trim().replace(/[.\s]+$/, '') || 'unknown error';
}
