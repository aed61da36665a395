/**
 * The request guard: refuses oversized, compressed, unauthenticated and slow requests before the
 * functions-framework reads their bodies (S1, S2).
 *
 * Why it exists: the framework parses every body (body-parser, limit 1024mb, gzip and deflate inflated) before it
 * calls the function, so the handler's own checks come after a body was read whole. A client could make an
 * instance buffer a gigabyte, or inflate one from a few hundred kilobytes of gzip, without a token; and the
 * framework disables the socket timeout, so a client that sends slowly holds a connection as long as it likes.
 *
 * How it hooks in: the framework offers no hook before its parsers, and creates its HTTP server after it has
 * loaded this module. So the guard uses two of Node's diagnostics channels, which publish synchronously and
 * hand over the server: `net.server.listen` (start of `listen()`, before the server accepts anything; newer
 * Node 20 releases) and `http.server.request.start` (before each request is dispatched; every Node 20
 * release), whichever comes first. On first sight of a server it sets the server's header and request time
 * limits, and puts itself in front of the server's `request` listener (the framework's express app) and on
 * `checkContinue`. A request it refuses never reaches express, so no body parser ever starts on it.
 *
 * What it checks, from the request line and headers only:
 * - a path that is not valid percent-encoding: 400 (express would log the raw path, token included);
 * - on the webhook and reconcile paths, a credential that none of the path's roles accepts (missing, wrong, another
 *   role's, or the cluster secret in the URL path): 401, as the handler would answer;
 * - a `Content-Encoding` other than identity, except on `/reconcile` (the reconcile job sends gzip; the API
 *   server never compresses webhook requests), where gzip and deflate are accepted: 415;
 * - a declared `Content-Length` over the path's limit (3 MiB, `/reconcile` 32 MiB): 413, before any body byte is
 *   read; with `Expect: 100-continue` the client is told before it sends the body at all.
 * And while the body arrives:
 * - a chunked body (no length declared) that grows past the limit: 413, and the connection is closed;
 * - a body not complete within 10 s (`/reconcile`: 120 s) of its headers: 408, and the connection is closed.
 *
 * A request it lets through has its body filed as raw bytes, so the handler, not the framework's JSON parser,
 * parses it and answers a malformed one with its own JSON error (F2).
 *
 * The handler keeps its own checks (they also cover the in-process test server, which has no guard).
 */
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { type Credentials, presentedCredential, splitTokenPath } from './auth.js';
import { authorizedForPath, bodyLimit, loggablePath, PATHS, routesFor } from './handler.js';

/** A client has this long to send its request headers (Node's default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * A webhook request body must be complete this long after its headers: the API server sends at most 3 MiB and
 * waits at most `timeoutSeconds` (10 s) for the whole call.
 */
export const BODY_TIMEOUT_MS = 10_000;
/** The reconcile job uploads up to 32 MiB (gzip), possibly over a slow link. */
export const RECONCILE_BODY_TIMEOUT_MS = 120_000;
/** How often Node checks its header and request time limits (default 30 s); only settable before `listen()`. */
export const CONNECTION_CHECK_INTERVAL_MS = 1_000;
/** How often a chunked body's size is checked while it arrives. */
const CHUNKED_POLL_MS = 10;
/** How often, and for how long at most, a refused request's connection waits for its client to stop sending. */
const LINGER_POLL_MS = 50;
const LINGER_MAX_MS = 2_000;

export interface GuardOptions {
  /** The configured credentials; none means unauthenticated development against the emulator (no 401s). */
  readonly credentials: Credentials;
  readonly log: Logger;
}

/** What the reconcile job may send (the framework's parser would also take others, and answer them with HTML). */
const RECONCILE_ENCODINGS: ReadonlySet<string> = new Set(['identity', 'gzip', 'deflate']);

interface Refusal {
  readonly status: number;
  readonly error: string;
  readonly message?: string;
}

/** Guards every HTTP server this process starts from now on (the framework's, in practice). */
export function installRequestGuard(options: GuardOptions): void {
  const onServer = (message: unknown) => {
    try {
      const server = (message as { server?: unknown }).server;
      if (isHttpServer(server)) guardServer(server, options);
    } catch {
      // A subscriber must never throw (Node would report it as an uncaught exception); unguarded is the fallback.
    }
  };
  subscribe('tracing:net.server.listen:asyncStart', onServer);
  subscribe('http.server.request.start', onServer);
}

const guarded = new WeakSet<Server>();

/** Sets the server's time limits and puts the guard in front of its request listeners; idempotent. */
export function guardServer(server: Server, options: GuardOptions): void {
  if (guarded.has(server)) return;
  guarded.add(server);
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  // A backstop for every path; the per-path body limits below are tighter.
  server.requestTimeout = HEADERS_TIMEOUT_MS + RECONCILE_BODY_TIMEOUT_MS;
  // A `createServer` option that Node keeps on the server and reads when it starts listening: effective when the
  // guard sees the server at listen(); otherwise (or if a Node release stops reading it) the 30 s default stays.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
    CONNECTION_CHECK_INTERVAL_MS;

  standInFront(server, (req, res) => {
    if (!admit(req, res, options)) return false;
    fileBodyAsBytes(req);
    return true;
  });
}

/**
 * Puts `admit` in front of the server's `request` listeners (the framework's express app) and on `checkContinue`:
 * a request goes on to them only when `admit` returns true (having answered it otherwise).
 */
export function standInFront(server: Server, admit: (req: IncomingMessage, res: ServerResponse) => boolean): void {
  const listeners = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    for (const listener of listeners) listener.call(server, req, res);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (admit(req, res)) dispatch(req, res);
  });
  // With a listener here Node does not answer `100 Continue` by itself: the client learns of a refusal before it
  // sends the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!admit(req, res)) return;
    res.writeContinue();
    dispatch(req, res);
  });
}

/**
 * Files the body under a type only the framework's catch-all raw parser claims, so it is read as bytes (size,
 * gzip on `/reconcile` and `rawBody` as before) and the handler parses the JSON itself, whatever type the client
 * declared. A malformed body then gets the handler's 400 with a JSON error saying what is wrong (F2), not the
 * framework's HTML error page (which, outside NODE_ENV=production, also carries a stack trace).
 */
export function fileBodyAsBytes(req: IncomingMessage): void {
  req.headers['content-type'] = 'application/octet-stream';
}

/** Checks a request's headers and watches its body; false when it was refused (and answered). */
function admit(req: IncomingMessage, res: ServerResponse, options: GuardOptions): boolean {
  const started = performance.now();
  try {
    const pathname = (req.url ?? '/').split('?')[0]!;
    const refuse = (r: Refusal) => {
      respond(req, res, r);
      options.log('WARNING', r.message ?? 'request refused', {
        path: safePath(pathname),
        method: req.method,
        httpStatus: r.status,
        error: r.error,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    };
    const decision = check(req, pathname, options.credentials);
    if (decision.refusal) {
      refuse(decision.refusal);
      return false;
    }
    watchBody(req, res, decision.limit, decision.timeoutMs, refuse);
    return true;
  } catch {
    // The guard is a first line only; a request it cannot judge goes on to the handler's own checks.
    return true;
  }
}

function check(
  req: IncomingMessage,
  pathname: string,
  credentials: Credentials,
): { refusal?: Refusal; limit: number; timeoutMs: number } {
  let split: { token: string | undefined; path: string };
  try {
    decodeURIComponent(pathname);
    split = splitTokenPath(pathname);
  } catch {
    return {
      refusal: { status: 400, error: 'the request path is not valid percent-encoding' },
      limit: 0,
      timeoutMs: 0,
    };
  }
  const { token, path } = split;
  const reconcile = path === PATHS.reconcile;
  const limit = bodyLimit(path);
  const timeoutMs = reconcile ? RECONCILE_BODY_TIMEOUT_MS : BODY_TIMEOUT_MS;
  const result = (refusal: Refusal) => ({ refusal, limit, timeoutMs });

  // The handler's own first check, from the headers: a credential that no row of the path's routes accepts.
  const authenticated = routesFor(path).some((r) => r.kind !== 'health');
  if (
    authenticated &&
    authorizedForPath(credentials, path, presentedCredential(token, req.headers.authorization)) === undefined
  ) {
    return result({ status: 401, error: 'unauthorized', message: 'unauthorized request' });
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && !reconcile) {
    return result({
      status: 415,
      error: `Content-Encoding ${encoding} is not accepted here; send the body uncompressed`,
    });
  }
  if (reconcile && !RECONCILE_ENCODINGS.has(encoding)) {
    return result({
      status: 415,
      error: `Content-Encoding ${encoding} is not accepted on ${PATHS.reconcile}; send gzip, deflate or no encoding`,
    });
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return result({
      status: 413,
      error: `request body of ${Number(declared)} bytes is over the limit of ${limit} bytes`,
    });
  }
  return { limit, timeoutMs };
}

/**
 * Bounds the body in time, and in size when no length was declared (Node frames a declared length itself).
 * The socket's byte count is watched rather than the body stream, so the framework's parser stays the stream's
 * only reader.
 */
function watchBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  timeoutMs: number,
  refuse: (r: Refusal) => void,
): void {
  const socket = req.socket;
  const deadline = setTimeout(() => {
    if (!req.complete) refuse({ status: 408, error: `the request body did not arrive within ${timeoutMs / 1000} s` });
  }, timeoutMs);
  deadline.unref();
  let poll: NodeJS.Timeout | undefined;
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] !== undefined) {
    const start = socket.bytesRead;
    poll = setInterval(() => {
      if (req.complete) return clearInterval(poll);
      if (socket.bytesRead - start > limit) {
        clearInterval(poll);
        refuse({ status: 413, error: `request body is over the limit of ${limit} bytes` });
      }
    }, CHUNKED_POLL_MS);
    poll.unref();
  }
  res.once('close', () => {
    clearTimeout(deadline);
    clearInterval(poll);
  });
}

/**
 * Answers with a JSON error and closes the connection, so the rest of the body is never parsed.
 *
 * The close lingers: the answer is written (framed by its length, so the client can read it whole), what the client
 * is still sending is read and dropped (never by the body parser), and the connection is ended only once the client has stopped sending (two
 * quiet polls) or after LINGER_MAX_MS. Closing at once would leave unread bytes in the kernel's receive buffer,
 * which makes it send a reset, and a reset can discard the answer at the client before it reads it: the client
 * would see a dropped connection instead of a 413 or 408. A client that keeps sending after it got its answer is
 * read for at most LINGER_MAX_MS, into nothing.
 */
function respond(req: IncomingMessage, res: ServerResponse, r: Refusal): void {
  if (res.headersSent) {
    req.socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: r.error });
  res.writeHead(r.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.write(body);
  // A refusal while the body arrives (413, 408) comes after the framework's body parser started reading it: take
  // the body away from the parser, so it buffers nothing more and never hands the request to the handler (its
  // 'end' never comes), and drop what is still sent.
  req.unpipe();
  req.removeAllListeners('data');
  req.removeAllListeners('end');
  req.on('data', () => undefined);
  req.resume();
  const socket = req.socket;
  const started = Date.now();
  let last = socket.bytesRead;
  let quiet = 0;
  const poll = setInterval(() => {
    quiet = socket.bytesRead === last ? quiet + 1 : 0;
    last = socket.bytesRead;
    if (quiet < 2 && Date.now() - started < LINGER_MAX_MS && !socket.destroyed) return;
    clearInterval(poll);
    res.end(() => socket.destroy());
  }, LINGER_POLL_MS);
  poll.unref();
}

/**
 * The path for a log line: without the token, never the raw text of a path that did not decode, and never an
 * absolute-form target (`http://host/t/<token>/...`), which the guard does not take apart.
 */
function safePath(pathname: string): string {
  if (!pathname.startsWith('/')) return '(absolute-form request target)';
  try {
    decodeURIComponent(pathname);
    return loggablePath(splitTokenPath(pathname).path);
  } catch {
    return '(not valid percent-encoding)';
  }
}

function isHttpServer(value: unknown): value is Server {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Server).listeners === 'function' &&
    'headersTimeout' in value &&
    'requestTimeout' in value
  );
}
