/**
 * The HTTP adapter: route, authenticate, parse, call `shared/`, respond, log one line. No pool logic here.
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import {
  type AdmissionRequest,
  type AdmissionReview,
  AdmissionReviewSchema,
  admissionResponse,
  describeZodError,
} from '../shared/admission.js';
import { DEFAULT_CLUSTER, type Env } from '../shared/env.js';
import { firstLine } from '../shared/errors.js';
import { LOG_EVENTS, type Logger, type Severity } from '../shared/log.js';
import type { AdmissionOutcome, MacPool } from '../shared/pool.js';
import { InventoryError, parseReconcileRequest, reconcile } from '../shared/reconcile.js';
import type { Store } from '../shared/store.js';
import { syncHyperConverged, syncNamespace, type SyncOutcome } from '../shared/sync.js';
import { bearerToken, clusterForToken, splitTokenPath } from './auth.js';

/** S2: admission requests larger than this are refused with 413. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** A reconcile carries a cluster's whole VM list: up to the platform's 32 MiB request limit (send it gzipped). */
export const MAX_RECONCILE_BYTES = 32 * 1024 * 1024;
export const HEALTH_TIMEOUT_MS = 3_000;

export const PATHS = {
  mutateVirtualMachines: '/mutate-virtualmachines',
  validateNamespaces: '/validate-namespaces',
  validateHyperConverged: '/validate-hyperconverged',
  reconcile: '/reconcile',
  healthz: '/healthz',
} as const;

type AdmissionPath =
  typeof PATHS.mutateVirtualMachines | typeof PATHS.validateNamespaces | typeof PATHS.validateHyperConverged;

/** The resource each admission path serves (group/resource); any other resource is allowed unchanged (F2). */
const RESOURCES: Record<AdmissionPath, string> = {
  [PATHS.mutateVirtualMachines]: 'kubevirt.io/virtualmachines',
  [PATHS.validateNamespaces]: '/namespaces',
  [PATHS.validateHyperConverged]: 'hco.kubevirt.io/hyperconvergeds',
};

const isAdmissionPath = (path: string): path is AdmissionPath => path in RESOURCES;

export interface HandlerDeps {
  readonly env: Pick<Env, 'tokens'>;
  readonly pool: MacPool;
  readonly store: Store;
  /** Answers when Firestore does (GET /healthz). */
  readonly ping: () => Promise<void>;
  readonly log: Logger;
  readonly clock?: () => number;
  /** Wall clock for reconcile decisions (claim ages); injectable for tests. */
  readonly now?: () => Date;
}

type Handler = (req: Request, res: Response) => Promise<void>;

export function createHandler(deps: HandlerDeps): Handler {
  const clock = deps.clock ?? (() => performance.now());
  return async (req, res) => {
    const started = clock();
    const { token: pathToken, path } = splitTokenPath(req.path);
    const fields: Record<string, unknown> = { path, method: req.method };
    const finish = (status: number, body: unknown, severity: Severity = 'INFO', message = 'request') => {
      res.status(status).json(body);
      deps.log(severity, message, { ...fields, httpStatus: status, durationMs: round(clock() - started) });
    };
    // The parsed body, once there is one: an internal error still answers the review it was for (F3).
    let value: unknown;
    try {
      if (path === PATHS.healthz && req.method === 'GET') return await health(deps, finish);
      if (!isAdmissionPath(path) && path !== PATHS.reconcile) {
        const known = Object.values(PATHS).join(', ');
        return finish(404, { error: `unknown path ${path}; this function serves ${known}` }, 'WARNING');
      }
      const cluster = authenticate(deps.env.tokens, pathToken ?? bearerToken(req.get('authorization')));
      if (cluster === undefined) return finish(401, { error: 'unauthorized' }, 'WARNING', 'unauthorized request');
      fields.cluster = cluster;
      if (req.method !== 'POST') return finish(405, { error: `method ${req.method} not allowed; use POST` }, 'WARNING');
      const size = bodySize(req);
      const limit = path === PATHS.reconcile ? MAX_RECONCILE_BYTES : MAX_BODY_BYTES;
      if (size > limit) {
        return finish(413, { error: `request body of ${size} bytes is over the limit of ${limit} bytes` }, 'WARNING');
      }
      const body = parseJson(req);
      if (!body.ok) return finish(400, { error: body.error }, 'WARNING', 'bad request');
      value = body.value;
      if (path === PATHS.reconcile) return await reconcileRequest(deps, cluster, value, fields, finish);

      const parsed = parseReview(value);
      if (!parsed.ok) return finish(400, { error: parsed.error }, 'WARNING', 'bad request');
      const review = parsed.review;
      const r = review.request;
      Object.assign(fields, {
        requestUid: r.uid,
        operation: r.operation,
        namespace: r.namespace,
        name: r.name || undefined,
        dryRun: r.dryRun === true,
      });
      if (`${r.resource.group}/${r.resource.resource}` !== RESOURCES[path] || (r.subResource ?? '') !== '') {
        // F2: other kinds are not ours; let them through untouched.
        fields.outcome = 'unsupported-resource';
        return finish(200, admissionResponse(review.apiVersion, r.uid, { allowed: true }));
      }
      if (path === PATHS.mutateVirtualMachines) {
        const outcome = await deps.pool.admitVm({ cluster, request: r });
        Object.assign(fields, outcomeFields(outcome));
        const [severity, message, event] = describeOutcome(outcome);
        if (event !== undefined) fields.event = event;
        return finish(200, admissionResponse(review.apiVersion, r.uid, outcome.verdict), severity, message);
      }
      const synced = await sync(deps, cluster, path, r);
      Object.assign(
        fields,
        { outcome: synced.outcome, allowed: synced.verdict.allowed },
        synced.detail ? { detail: synced.detail } : {},
      );
      const severity: Severity = synced.outcome.endsWith('failed')
        ? 'ERROR'
        : synced.verdict.allowed
          ? 'INFO'
          : 'WARNING';
      return finish(200, admissionResponse(review.apiVersion, r.uid, synced.verdict), severity, 'sync request');
    } catch (e) {
      // F3: a bug must not crash the process or answer 5xx; the API server gets a denial it can show.
      fields.error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      const review = AdmissionReviewSchema.safeParse(value);
      if (!review.success) return finish(400, { error: 'request could not be processed' }, 'ERROR', 'internal error');
      const r = review.data.request;
      const verdict =
        r.operation === 'DELETE'
          ? ({ allowed: true } as const)
          : ({ allowed: false, code: 500, message: 'internal error in the MAC pool; see its logs' } as const);
      return finish(200, admissionResponse(review.data.apiVersion, r.uid, verdict), 'ERROR', 'internal error');
    }
  };
}

function authenticate(tokens: Env['tokens'], presented: string | undefined): string | undefined {
  // Without tokens the function only runs against the emulator (parseEnv refuses otherwise).
  if (tokens.length === 0) return DEFAULT_CLUSTER;
  return clusterForToken(tokens, presented);
}

async function health(deps: HandlerDeps, finish: (status: number, body: unknown, severity?: Severity) => void) {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      deps.ping(),
      new Promise(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error('Firestore did not answer within 3 s')), HEALTH_TIMEOUT_MS)),
      ),
    ]);
    finish(200, { status: 'ok' }, 'DEBUG');
  } catch (e) {
    finish(503, { status: 'unavailable', error: firstLine(e) }, 'ERROR');
  } finally {
    clearTimeout(timer);
  }
}

function bodySize(req: Request): number {
  const declared = Number(req.get('content-length') ?? NaN);
  const raw = (req as Request & { rawBody?: Buffer }).rawBody?.length ?? 0;
  return Number.isFinite(declared) ? Math.max(declared, raw) : raw;
}

/**
 * The request body as JSON. Every body arrives as bytes (guard.ts, `fileBodyAsBytes`) and is parsed here; one
 * that a framework parser did turn into a value (a server without that step in front) is taken as it is.
 */
function parseJson(req: Request): { ok: true; value: unknown } | { ok: false; error: string } {
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body) && typeof body !== 'string') return { ok: true, value: body };
  // A byte-order mark (an inventory saved by some editors) is not part of the JSON; the framework's parser skipped it.
  const text = body.toString().replace(/^\uFEFF/, '');
  if (text.trim() === '') return { ok: false, error: 'request body is empty; expected a JSON object' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: `request body is not JSON (${jsonProblem(e)}); expected a JSON object` };
  }
}

/** What JSON.parse disliked, at most one short line (it may quote a piece of the body). */
function jsonProblem(e: unknown): string {
  const message = firstLine(e);
  return message.length > 120 ? `${message.slice(0, 117)}...` : message;
}

function parseReview(body: unknown): { ok: true; review: AdmissionReview } | { ok: false; error: string } {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, error: 'request body is not a JSON object; expected an AdmissionReview' };
  }
  const parsed = AdmissionReviewSchema.safeParse(body);
  if (!parsed.success) return { ok: false, error: `not an AdmissionReview: ${describeZodError(parsed.error)}` };
  return { ok: true, review: parsed.data };
}

async function sync(
  deps: HandlerDeps,
  cluster: string,
  path: AdmissionPath,
  request: AdmissionRequest,
): Promise<SyncOutcome> {
  if (path === PATHS.validateHyperConverged) {
    const outcome = await syncHyperConverged(deps.store, request);
    if (outcome.outcome === 'range-synced') deps.pool.forgetConfig();
    return outcome;
  }
  const outcome = await syncNamespace(deps.store, cluster, request);
  if (request.name) deps.pool.forgetNamespace(cluster, request.name);
  return outcome;
}

async function reconcileRequest(
  deps: HandlerDeps,
  cluster: string,
  body: unknown,
  fields: Record<string, unknown>,
  finish: (status: number, body: unknown, severity?: Severity, message?: string) => void,
) {
  let run;
  try {
    run = parseReconcileRequest(body);
  } catch (e) {
    if (e instanceof InventoryError) return finish(400, { error: e.message }, 'WARNING', 'bad request');
    throw e;
  }
  try {
    const report = await reconcile(deps.store, run.inventory, {
      cluster,
      mode: run.mode,
      force: run.force,
      log: deps.log,
      ...(deps.now ? { now: deps.now() } : {}),
    });
    Object.assign(fields, {
      operation: 'RECONCILE',
      outcome: report.refused !== undefined ? 'refused' : report.wrote ? 'reconciled' : 'dry-run',
      ...report,
      collisions: report.collisions.length,
    });
    // R8: a refused run answers 409 with the whole report, so the CronJob's job fails and its log says why.
    if (report.refused !== undefined) return finish(409, report, 'ERROR', 'reconcile refused');
    return finish(200, report, 'INFO', 'reconcile');
  } catch (e) {
    fields.detail = firstLine(e);
    return finish(503, { error: `reconcile failed: ${String(fields.detail)}` }, 'ERROR', 'reconcile failed');
  }
}

function outcomeFields(o: AdmissionOutcome): Record<string, unknown> {
  return {
    outcome: o.outcome,
    attempts: o.attempts,
    ...(o.sharedCommit !== undefined ? { sharedCommit: o.sharedCommit } : {}),
    macs: o.assigned,
    claimed: o.claimed,
    released: o.released,
    ...(o.verdict.allowed ? { allowed: true } : { allowed: false, denial: o.verdict.message }),
    ...(o.detail !== undefined ? { detail: o.detail } : {}),
  };
}

function describeOutcome(o: AdmissionOutcome): [Severity, string, string?] {
  if (o.error?.code === 'range-full') return ['WARNING', LOG_EVENTS.rangeFull.message, LOG_EVENTS.rangeFull.event];
  if (o.error?.code === 'unavailable' || o.error?.code === 'no-valid-config') return ['ERROR', 'admission denied'];
  if (!o.verdict.allowed) return ['WARNING', 'admission denied'];
  if (o.claimed.length > 0) return ['INFO', LOG_EVENTS.allocated.message, LOG_EVENTS.allocated.event];
  if (o.outcome === 'allowed-without-pool' || o.outcome === 'allowed-without-release')
    return ['WARNING', 'admission allowed without the pool'];
  return ['INFO', 'admission allowed'];
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
