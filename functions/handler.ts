/**
 * The HTTP adapter: route, authenticate, parse, call `shared/`, respond, log one line. No pool logic here. The
 * route table (ROUTES) says for every path which role may call it, where its credential may come from, and what runs.
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import {
  type AdmissionRequest,
  type AdmissionReview,
  AdmissionReviewSchema,
  admissionResponse,
  describeZodError,
  type Operation,
  OPERATIONS,
  type Verdict,
} from '../shared/admission.js';
import type { CredentialSource } from '../shared/credentials.js';
import { firstLine } from '../shared/errors.js';
import { LOG_EVENTS, type Logger, type Severity } from '../shared/log.js';
import type { AdmissionOutcome, MacPool } from '../shared/pool.js';
import { InventoryError, parseReconcileRequest, reconcile } from '../shared/reconcile.js';
import type { Store } from '../shared/store.js';
import { syncHyperConverged, syncNamespace, type SyncOutcome } from '../shared/sync.js';
import { type Credentials, type Presented, presentedCredential, type Requirement, splitTokenPath } from './auth.js';

/** S2: admission requests larger than this are refused with 413. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** A reconcile carries a cluster's whole VM list: up to the platform's 32 MiB request limit (send it gzipped). */
export const MAX_RECONCILE_BYTES = 32 * 1024 * 1024;
export const HEALTH_TIMEOUT_MS = 3_000;

export const PATHS = {
  mutateVirtualMachines: '/mutate-virtualmachines',
  mutatePods: '/mutate-pods',
  validateNamespaces: '/validate-namespaces',
  validateHyperConverged: '/validate-hyperconverged',
  reconcile: '/reconcile',
  healthz: '/healthz',
} as const;

export interface HandlerDeps {
  readonly credentials: Credentials;
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
type Finish = (status: number, body: unknown, severity?: Severity, message?: string) => void;

/** What an admission route decided: the verdict, and what its log line says. */
interface Answer {
  readonly verdict: Verdict;
  readonly severity: Severity;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

type AdmissionHandler = (deps: HandlerDeps, cluster: string, request: AdmissionRequest) => Promise<Answer>;

/** An AdmissionReview path: the operations one role may send it, and the resource it serves. */
interface AdmissionRoute extends Requirement {
  readonly kind: 'admission';
  readonly path: string;
  /** group/resource; a review of any other resource is allowed unchanged (F2). */
  readonly resource: string;
  readonly operations: readonly Operation[];
  readonly handle: AdmissionHandler;
}

/** The inventory sync: a kubectl List, from an operator or the CronJob. */
interface InventoryRoute extends Requirement {
  readonly kind: 'inventory';
  readonly path: string;
}

/** GET, no credential. */
interface HealthRoute {
  readonly kind: 'health';
  readonly path: string;
}

type Route = AdmissionRoute | InventoryRoute | HealthRoute;

/** Webhook credentials ride in the URL path (API servers cannot add headers); a header works as well. */
const WEBHOOK: readonly CredentialSource[] = ['path', 'bearer'];
/** Operator paths never take a credential in the URL, which logs and error messages print (S4). */
const HEADER_ONLY: readonly CredentialSource[] = ['bearer'];
const VMS = 'kubevirt.io/virtualmachines';
const PODS = '/pods';

/**
 * Every path, who may call it and what runs (S4). A path may have several rows, one per role; for a review the
 * first row whose role the credential holds and whose operations list the review's operation runs, and a
 * credential that no row of the path accepts gets 401. A cluster's secret (Bearer only) holds every role.
 */
export const ROUTES: readonly Route[] = [
  { kind: 'health', path: PATHS.healthz },
  {
    kind: 'admission',
    path: PATHS.mutateVirtualMachines,
    role: 'vm',
    from: WEBHOOK,
    resource: VMS,
    operations: ['CREATE', 'UPDATE', 'CONNECT'],
    handle: admitVm,
  },
  {
    kind: 'admission',
    path: PATHS.mutateVirtualMachines,
    role: 'release',
    from: WEBHOOK,
    resource: VMS,
    operations: ['DELETE'],
    handle: admitVm,
  },
  {
    // D1: a DELETE is never refused; but the VM CREATE/UPDATE URL is not secret, so with its credential a DELETE
    // releases nothing (the release webhook, or a reconcile, frees the VM's claims).
    kind: 'admission',
    path: PATHS.mutateVirtualMachines,
    role: 'vm',
    from: WEBHOOK,
    resource: VMS,
    operations: ['DELETE'],
    handle: allowWithoutRelease,
  },
  {
    kind: 'admission',
    path: PATHS.mutatePods,
    role: 'pod',
    from: WEBHOOK,
    resource: PODS,
    operations: ['CREATE', 'UPDATE', 'CONNECT'],
    handle: admitPod,
  },
  {
    kind: 'admission',
    path: PATHS.mutatePods,
    role: 'release',
    from: WEBHOOK,
    resource: PODS,
    operations: ['DELETE'],
    handle: admitPod,
  },
  {
    // As for VMs: the pod webhook's URL is not secret, so a DELETE sent with its credential releases nothing.
    kind: 'admission',
    path: PATHS.mutatePods,
    role: 'pod',
    from: WEBHOOK,
    resource: PODS,
    operations: ['DELETE'],
    handle: allowWithoutRelease,
  },
  {
    kind: 'admission',
    path: PATHS.validateNamespaces,
    role: 'namespace-sync',
    from: WEBHOOK,
    resource: '/namespaces',
    operations: OPERATIONS,
    handle: syncNamespaceRequest,
  },
  {
    kind: 'admission',
    path: PATHS.validateHyperConverged,
    role: 'hyperconverged-sync',
    from: WEBHOOK,
    resource: 'hco.kubevirt.io/hyperconvergeds',
    operations: OPERATIONS,
    handle: syncHyperConvergedRequest,
  },
  { kind: 'inventory', path: PATHS.reconcile, role: 'reconcile', from: HEADER_ONLY },
];

/** The rows of a path (empty for a path the function does not serve). */
export function routesFor(path: string): readonly Route[] {
  return ROUTES.filter((r) => r.path === path);
}

/** The body limit of a path: 3 MiB for reviews (S2), 32 MiB for an inventory. */
export function bodyLimit(path: string): number {
  return routesFor(path).some((r) => r.kind === 'inventory') ? MAX_RECONCILE_BYTES : MAX_BODY_BYTES;
}

/**
 * The cluster a credential acts for on a path, if any row of the path accepts it: the check the request guard
 * makes from the headers, before the body. Undefined for a public path or one without rows.
 */
export function authorizedForPath(
  credentials: Credentials,
  path: string,
  presented: Presented | undefined,
): { cluster: string; rows: readonly (AdmissionRoute | InventoryRoute)[] } | undefined {
  const identity = credentials.identify(presented?.value);
  let cluster: string | undefined;
  const rows: (AdmissionRoute | InventoryRoute)[] = [];
  for (const r of routesFor(path)) {
    if (r.kind === 'health') continue;
    const c = credentials.authorize(identity, presented?.source, r);
    if (c === undefined) continue;
    cluster = c;
    rows.push(r);
  }
  return cluster === undefined ? undefined : { cluster, rows };
}

const SERVED = [...new Set(ROUTES.map((r) => r.path))].join(', ');

/** Path segments a log line may show as sent: the words of the paths the function serves, and the `t` prefix. */
const PATH_WORDS: ReadonlySet<string> = new Set([
  't',
  ...Object.values(PATHS).flatMap((p) => p.split('/').filter((w) => w !== '')),
]);

/**
 * A path as a log line or an error may show it (S1): a path the function serves as it is, and any other path with
 * every segment that is not one of the served paths' words replaced by `*`. A credential can then never reach a
 * log, wherever a client put it (`/prefix/t/<credential>/...`, `/T/<credential>/...`, a second `/t/` segment).
 */
export function loggablePath(path: string): string {
  if (routesFor(path).length > 0) return path;
  return path
    .split('/')
    .map((w) => (w === '' || PATH_WORDS.has(w) ? w : '*'))
    .join('/');
}

export function createHandler(deps: HandlerDeps): Handler {
  const clock = deps.clock ?? (() => performance.now());
  return async (req, res) => {
    const started = clock();
    const { token: pathToken, path } = splitTokenPath(req.path);
    const fields: Record<string, unknown> = { path: loggablePath(path), method: req.method };
    const finish: Finish = (status, body, severity = 'INFO', message = 'request') => {
      res.status(status).json(body);
      deps.log(severity, message, { ...fields, httpStatus: status, durationMs: round(clock() - started) });
    };
    const unauthorized = () => finish(401, { error: 'unauthorized' }, 'WARNING', 'unauthorized request');
    // The parsed body, once there is one: an internal error still answers the review it was for (F3).
    let value: unknown;
    try {
      const routes = routesFor(path);
      if (routes.length === 0) {
        return finish(404, { error: `unknown path ${loggablePath(path)}; this function serves ${SERVED}` }, 'WARNING');
      }
      if (routes.some((r) => r.kind === 'health')) {
        if (req.method !== 'GET') return finish(405, { error: `method ${req.method} not allowed; use GET` }, 'WARNING');
        return await health(deps, finish);
      }
      const presented = presentedCredential(pathToken, req.get('authorization'));
      // Where the credential came from, never what it was (S1).
      if (presented !== undefined) fields.credentialSource = presented.source;
      const authorized = authorizedForPath(deps.credentials, path, presented);
      if (authorized === undefined) return unauthorized();
      const { cluster, rows } = authorized;
      fields.cluster = cluster;
      if (req.method !== 'POST') return finish(405, { error: `method ${req.method} not allowed; use POST` }, 'WARNING');
      const size = bodySize(req);
      const limit = bodyLimit(path);
      if (size > limit) {
        return finish(413, { error: `request body of ${size} bytes is over the limit of ${limit} bytes` }, 'WARNING');
      }
      const body = parseJson(req);
      if (!body.ok) return finish(400, { error: body.error }, 'WARNING', 'bad request');
      value = body.value;
      const inventory = rows.find((r) => r.kind === 'inventory');
      if (inventory !== undefined) {
        fields.role = inventory.role;
        return await reconcileRequest(deps, cluster, value, fields, finish);
      }

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
      const route = rows.find((x): x is AdmissionRoute => x.kind === 'admission' && x.operations.includes(r.operation));
      // A credential of this path's, but not for this operation (a CREATE on the release credential): as bare a
      // 401 as a wrong one, and nothing changes.
      if (route === undefined) return unauthorized();
      fields.role = route.role;
      if (`${r.resource.group}/${r.resource.resource}` !== route.resource || (r.subResource ?? '') !== '') {
        // F2: other kinds are not ours; let them through untouched.
        fields.outcome = 'unsupported-resource';
        return finish(200, admissionResponse(review.apiVersion, r.uid, { allowed: true }));
      }
      const answer = await route.handle(deps, cluster, r);
      Object.assign(fields, answer.fields);
      return finish(200, admissionResponse(review.apiVersion, r.uid, answer.verdict), answer.severity, answer.message);
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

async function admitVm(deps: HandlerDeps, cluster: string, request: AdmissionRequest): Promise<Answer> {
  const outcome = await deps.pool.admitVm({ cluster, request });
  const [severity, message, event] = describeOutcome(outcome);
  return {
    verdict: outcome.verdict,
    severity,
    message,
    fields: { ...outcomeFields(outcome), ...(event !== undefined ? { event } : {}) },
  };
}

async function admitPod(deps: HandlerDeps, cluster: string, request: AdmissionRequest): Promise<Answer> {
  const outcome = await deps.pool.admitPod({ cluster, request });
  const [severity, message, event] = describeOutcome(outcome);
  return {
    verdict: outcome.verdict,
    severity,
    message,
    fields: { kind: 'pod', ...outcomeFields(outcome), ...(event !== undefined ? { event } : {}) },
  };
}

async function allowWithoutRelease(): Promise<Answer> {
  return {
    verdict: { allowed: true },
    severity: 'WARNING',
    message: 'delete allowed without release: the credential is not the release credential',
    fields: { outcome: 'allowed-without-release-role', allowed: true, released: [] },
  };
}

async function syncNamespaceRequest(deps: HandlerDeps, cluster: string, request: AdmissionRequest): Promise<Answer> {
  const outcome = await syncNamespace(deps.store, cluster, request);
  if (request.name) deps.pool.forgetNamespace(cluster, request.name);
  return syncAnswer(outcome);
}

async function syncHyperConvergedRequest(
  deps: HandlerDeps,
  _cluster: string,
  request: AdmissionRequest,
): Promise<Answer> {
  const outcome = await syncHyperConverged(deps.store, request);
  if (outcome.outcome === 'range-synced') deps.pool.forgetConfig();
  return syncAnswer(outcome);
}

function syncAnswer(synced: SyncOutcome): Answer {
  const severity: Severity = synced.outcome.endsWith('failed') ? 'ERROR' : synced.verdict.allowed ? 'INFO' : 'WARNING';
  return {
    verdict: synced.verdict,
    severity,
    message: 'sync request',
    fields: {
      outcome: synced.outcome,
      allowed: synced.verdict.allowed,
      ...(synced.detail ? { detail: synced.detail } : {}),
    },
  };
}

async function health(deps: HandlerDeps, finish: Finish) {
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

async function reconcileRequest(
  deps: HandlerDeps,
  cluster: string,
  body: unknown,
  fields: Record<string, unknown>,
  finish: Finish,
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
      full: run.full,
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
