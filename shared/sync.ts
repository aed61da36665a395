/**
 * The cluster-to-Firestore sync webhooks: namespace opt labels (so `oc label namespace ... =ignore` works
 * unchanged) and the HyperConverged CR's `spec.kubeMacPoolConfiguration` (so `oc edit hyperconverged` changes
 * the range, and cannot store a broken one, C4).
 */
import { z } from 'zod';
import type { AdmissionRequest, Verdict } from './admission.js';
import { RANGE_DOC_PATH } from './config.js';
import { namespacePath } from './documents.js';
import { NAMESPACE_NAME, OPT_LABELS } from './kubevirt.js';
import { namespaceDigest } from './fingerprint.js';
import { validateRange } from './range.js';
import type { Store } from './store.js';
import { usageWarnings } from './usable.js';
import { withDeadline } from './deadline.js';
import { firstLine } from './errors.js';

/** Sync webhooks answer within this, like admissions (F1). */
export const SYNC_BUDGET_MS = 7_000;

export interface SyncOutcome {
  readonly verdict: Verdict;
  readonly outcome: string;
  readonly detail?: string;
}

const NamespaceSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string().min(1),
    labels: z.record(z.string(), z.string()).nullish(),
  }),
});

/** The labels of a namespace that matter to the pool: the VM and pod opt labels. */
export function relevantLabels(labels: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of OPT_LABELS) {
    const value = labels?.[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Mirrors a namespace's opt label into `clusters/{cluster}/namespaces/{namespace}` (CREATE, UPDATE) or
 * removes the document (DELETE). Always allowed: a namespace change must never wait on the pool; when the
 * write fails the outcome says so, and the next reconcile (which lists namespaces) repairs the document.
 */
export async function syncNamespace(
  store: Store,
  cluster: string,
  request: AdmissionRequest,
  budgetMs = SYNC_BUDGET_MS,
): Promise<SyncOutcome> {
  const allowed: Verdict = { allowed: true };
  const object = NamespaceSchema.safeParse(request.operation === 'DELETE' ? request.oldObject : request.object);
  const name = object.success ? object.data.metadata.name : request.name;
  if (!name) return { verdict: allowed, outcome: 'namespace-unparsed' };
  if (!NAMESPACE_NAME.test(name)) return { verdict: allowed, outcome: 'namespace-invalid-name' };
  if (request.dryRun) return { verdict: allowed, outcome: 'dry-run' };
  try {
    if (request.operation === 'DELETE') {
      await withDeadline(
        () => store.commit([{ kind: 'delete', path: namespacePath(cluster, name) }]),
        budgetMs,
        'Firestore',
      );
      return { verdict: allowed, outcome: 'namespace-removed' };
    }
    const labels = relevantLabels(object.success ? object.data.metadata.labels : undefined);
    const old = NamespaceSchema.safeParse(request.oldObject);
    const before = old.success ? relevantLabels(old.data.metadata.labels) : undefined;
    if (request.operation === 'UPDATE' && before !== undefined && sameLabels(before, labels)) {
      return { verdict: allowed, outcome: 'namespace-unchanged' };
    }
    await withDeadline(
      () =>
        store.commit([
          { kind: 'set', path: namespacePath(cluster, name), data: { labels, digest: namespaceDigest(name, labels) } },
        ]),
      budgetMs,
      'Firestore',
    );
    return { verdict: allowed, outcome: 'namespace-synced' };
  } catch (e) {
    // Fail open by design: the namespace change goes through; reconcile repairs the mirror.
    return {
      verdict: allowed,
      outcome: 'namespace-sync-failed',
      detail: firstLine(e),
    };
  }
}

const HyperConvergedSchema = z.looseObject({
  spec: z
    .looseObject({
      kubeMacPoolConfiguration: z
        .looseObject({ rangeStart: z.unknown().optional(), rangeEnd: z.unknown().optional() })
        .nullish(),
    })
    .nullish(),
});

/**
 * Validates a HyperConverged CR's `spec.kubeMacPoolConfiguration` (C1, C4) and stores a valid, changed range in
 * `config/kubeMacPoolConfiguration`. A range that cannot be stored is refused, so the CR never claims a range the
 * pool does not use.
 */
export async function syncHyperConverged(
  store: Store,
  request: AdmissionRequest,
  budgetMs = SYNC_BUDGET_MS,
): Promise<SyncOutcome> {
  const hco = HyperConvergedSchema.safeParse(request.object);
  if (!hco.success) return { verdict: { allowed: true }, outcome: 'hyperconverged-unparsed' };
  const config = hco.data.spec?.kubeMacPoolConfiguration;
  if (config === undefined || config === null) return { verdict: { allowed: true }, outcome: 'no-range' };
  const result = validateRange(config.rangeStart, config.rangeEnd);
  if (!result.ok) {
    return {
      verdict: { allowed: false, code: 422, message: `invalid spec.kubeMacPoolConfiguration: ${result.message}` },
      outcome: 'invalid-range',
    };
  }
  // Say what C5 takes out of the range (multicast octets, vendor space), as the config log line does.
  const warnings = [...result.warnings, ...usageWarnings(result.range)];
  const old = HyperConvergedSchema.safeParse(request.oldObject).data?.spec?.kubeMacPoolConfiguration;
  if (old && old.rangeStart === config.rangeStart && old.rangeEnd === config.rangeEnd) {
    return { verdict: { allowed: true, warnings }, outcome: 'range-unchanged' };
  }
  if (request.dryRun) return { verdict: { allowed: true, warnings }, outcome: 'dry-run' };
  try {
    const write = {
      kind: 'set',
      path: RANGE_DOC_PATH,
      data: {
        rangeStart: config.rangeStart,
        rangeEnd: config.rangeEnd,
        source: 'hyperconverged',
        updatedAt: new Date(),
      },
      merge: true, // keep any other fields operators added
    } as const;
    await withDeadline(() => store.commit([write]), budgetMs, 'Firestore');
    return { verdict: { allowed: true, warnings }, outcome: 'range-synced' };
  } catch (e) {
    return {
      verdict: {
        allowed: false,
        code: 503,
        message: `MAC pool unavailable: the new range could not be stored in ${RANGE_DOC_PATH}; retry the change`,
      },
      outcome: 'range-sync-failed',
      detail: firstLine(e),
    };
  }
}

/** Whether two sets of mirrored labels agree on every label the pool reads. */
export function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  return OPT_LABELS.every((key) => a[key] === b[key]);
}
