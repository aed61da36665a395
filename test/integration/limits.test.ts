/**
 * Request limits (S1, S2) on the function as Cloud Functions runs it: the built dist/ under the
 * functions-framework CLI, where functions/guard.ts stands in front of the framework's body parser. Raw sockets
 * declare what they like and send as slowly as they like; the guard must answer from the headers, before the body
 * is sent, and cut off a client that sends too slowly after a bounded time. (The in-process test server has no
 * guard; http.test.ts covers the handler's own 413 there.)
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_TIMEOUT_MS, HEADERS_TIMEOUT_MS } from '../../functions/guard.js';
import { MAX_BODY_BYTES } from '../../functions/handler.js';
import { ROLES, roleCredential } from '../../shared/credentials.js';
import { reconcileHeaders, webhookPaths } from '../support/credentials.js';
import { emulatorHost, testDb } from '../support/harness.js';
import { example } from '../support/fixtures.js';
import { jsonLines } from '../support/load.js';
import { type FunctionProcess, spawnFunction, waitForHealthy } from '../support/process.js';
import { count, note } from '../support/record.js';

const TOKEN = `limits-${randomUUID()}`;
const PATHS = webhookPaths(TOKEN);
const MUTATE = PATHS.mutateVirtualMachines;
const RECONCILE = reconcileHeaders(TOKEN);
const CREDENTIALS = [TOKEN, ...ROLES.map((role) => roleCredential(TOKEN, role))];
const MiB = 1024 * 1024;
/** Node checks header and request deadlines once a second under the guard; allow for that and a busy machine. */
const CUT_OFF_SLACK_MS = 2_500;

interface Raw {
  /** The response's status line and headers, and its body. */
  status: number;
  head: string;
  body: string;
  /** ms from the first byte written to the first byte of the response. */
  firstByteMs: number | undefined;
  /** ms from the first byte written until the server closed the connection. */
  closedMs: number;
  /** Body bytes the client managed to write before it stopped (the response came, or the socket closed). */
  sent: number;
}

/**
 * Writes `head` on a fresh connection, then `body` chunks (every `gapMs`, or as fast as the socket takes them),
 * and stops writing as soon as the response begins or the connection closes.
 */
function raw(port: number, head: string, options: { body?: () => Iterable<string | Buffer>; gapMs?: number } = {}) {
  return new Promise<Raw>((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let firstByteMs: number | undefined;
    let sent = 0;
    socket.on('data', (chunk: Buffer) => {
      firstByteMs ??= performance.now() - started;
      data += chunk.toString('latin1');
    });
    socket.on('error', () => undefined); // a reset after the answer is expected; the answer is what counts
    socket.on('close', () => {
      const split = data.indexOf('\r\n\r\n');
      const headText = split < 0 ? data : data.slice(0, split);
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1] ?? 0),
        head: headText,
        body: split < 0 ? '' : data.slice(split + 4),
        firstByteMs,
        closedMs: performance.now() - started,
        sent,
      });
    });
    socket.write(head);
    const chunks = options.body?.()[Symbol.iterator]();
    const next = () => {
      if (chunks === undefined || firstByteMs !== undefined || socket.destroyed) return;
      const item = chunks.next();
      if (item.done) return;
      const ok = socket.write(item.value);
      sent += item.value.length;
      if (options.gapMs !== undefined) setTimeout(next, options.gapMs);
      else if (ok) setImmediate(next);
      else socket.once('drain', next);
    };
    setTimeout(next, options.gapMs ?? 0);
  });
}

function post(path: string, headers: Record<string, string | number>): string {
  const lines = Object.entries({ host: 'macpool', 'content-type': 'application/json', ...headers }).map(
    ([k, v]) => `${k}: ${v}`,
  );
  return `POST ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** Peak resident memory of a process, in bytes (Linux); undefined elsewhere. */
function peakMemory(pid: number): number | undefined {
  const file = `/proc/${pid}/status`;
  if (!existsSync(file)) return undefined;
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(file, 'utf8'))?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}

describe('the request guard in front of the framework (dist/ under the functions-framework CLI)', () => {
  let fn: FunctionProcess;
  let port: number;
  const project = `limits-${randomUUID().slice(0, 8)}`;
  beforeAll(async () => {
    fn = await spawnFunction({
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      GOOGLE_CLOUD_PROJECT: project,
      MACPOOL_TOKENS: `default=${TOKEN}`,
    });
    expect(await waitForHealthy(fn)).toBe(true);
    port = Number(new URL(fn.url).port);
  });
  afterAll(async () => {
    await fn.stop();
  });

  const REFUSED_FROM_HEADERS = [
    {
      name: 'a declared body one byte over 3 MiB',
      head: () => post(MUTATE, { 'content-length': MAX_BODY_BYTES + 1 }),
      status: 413,
      error: `request body of ${MAX_BODY_BYTES + 1} bytes is over the limit of ${MAX_BODY_BYTES} bytes`,
    },
    {
      name: 'a declared body of 1 GiB',
      head: () => post(MUTATE, { 'content-length': 1024 * MiB }),
      status: 413,
      error: 'over the limit of 3145728 bytes',
    },
    {
      name: 'a 4 MiB body announced with Expect: 100-continue',
      head: () => post(MUTATE, { 'content-length': 4 * MiB, expect: '100-continue' }),
      status: 413,
      error: 'over the limit',
    },
    {
      name: 'a reconcile inventory in an encoding the job never sends (br)',
      head: () => post('/reconcile', { ...RECONCILE, 'content-length': 1000, 'content-encoding': 'br' }),
      status: 415,
      error: 'Content-Encoding br is not accepted on /reconcile; send gzip, deflate or no encoding',
    },
    {
      name: 'a declared reconcile inventory over 32 MiB',
      head: () => post('/reconcile', { ...RECONCILE, 'content-length': 33 * MiB }),
      status: 413,
      error: 'over the limit of 33554432 bytes',
    },
    {
      name: 'a gzip-compressed webhook request',
      head: () => post(MUTATE, { 'content-length': 1000, 'content-encoding': 'gzip' }),
      status: 415,
      error: 'Content-Encoding gzip is not accepted here',
    },
    {
      name: 'a deflate-compressed namespace webhook request',
      head: () => post(PATHS.syncNamespaces, { 'content-length': 1000, 'content-encoding': 'deflate' }),
      status: 415,
      error: 'Content-Encoding deflate',
    },
    {
      name: 'a large body without a token',
      head: () => post('/mutate-virtualmachines', { 'content-length': 2 * MiB }),
      status: 401,
      error: 'unauthorized',
    },
    {
      name: 'a compressed inventory with a wrong credential',
      head: () =>
        post('/reconcile', {
          authorization: `${RECONCILE.authorization}x`,
          'content-length': 1000,
          'content-encoding': 'gzip',
        }),
      status: 401,
      error: 'unauthorized',
    },
    {
      name: 'an inventory with the reconcile credential in the URL path (S4)',
      head: () => post(`/t/${roleCredential(TOKEN, 'reconcile')}/reconcile`, { 'content-length': 1000 }),
      status: 401,
      error: 'unauthorized',
    },
    {
      name: 'an inventory with the VM webhook credential as a header (S4)',
      head: () =>
        post('/reconcile', { authorization: `Bearer ${roleCredential(TOKEN, 'vm')}`, 'content-length': 1000 }),
      status: 401,
      error: 'unauthorized',
    },
    {
      name: 'a webhook request with the cluster secret in the URL path (S4)',
      head: () => post(`/t/${TOKEN}/mutate-virtualmachines`, { 'content-length': 1000 }),
      status: 401,
      error: 'unauthorized',
    },
    {
      name: 'a body over 3 MiB to an absolute-form target with a token',
      head: () => post(`http://macpool${MUTATE}`, { 'content-length': 4 * MiB }),
      status: 413,
      error: 'over the limit of 3145728 bytes',
    },
    {
      name: 'a path that is not valid percent-encoding (after a real token)',
      head: () => post(`/t/${TOKEN}%E0%A4%A/mutate-virtualmachines`, { 'content-length': 1000 }),
      status: 400,
      error: 'the request path is not valid percent-encoding',
    },
  ];

  it.each(REFUSED_FROM_HEADERS)(
    'S2: $name is answered $status from the headers, before any body byte is sent, and the connection closed',
    async ({ head, status, error }) => {
      const res = await raw(port, head());
      expect(res.sent).toBe(0);
      expect(res.status).toBe(status);
      expect(res.head).not.toContain('100 Continue');
      expect(res.head.toLowerCase()).toContain('connection: close');
      expect(JSON.parse(res.body).error).toContain(error);
      expect(res.firstByteMs).toBeLessThan(1_000);
      expect(res.closedMs - res.firstByteMs!).toBeLessThan(1_000);
    },
  );

  it('S2: a body of exactly 3 MiB is read and served', async () => {
    const req = example('create-vm-masquerade');
    req.request.object.metadata.annotations = { padding: '' };
    const bare = Buffer.byteLength(JSON.stringify(req));
    req.request.object.metadata.annotations.padding = 'x'.repeat(MAX_BODY_BYTES - bare);
    const body = JSON.stringify(req);
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);
    const res = await fetch(`${fn.url}${MUTATE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    expect((await res.json()).response.allowed).toBe(true);
  });

  it.each([
    {
      name: 'truncated JSON',
      body: '{"apiVersion": "admission.k8s.io/v1", "kind": ',
      error: 'request body is not JSON (',
    },
    { name: 'a JSON string', body: '"hello"', error: 'request body is not a JSON object; expected an AdmissionReview' },
    { name: 'no body', body: '', error: 'request body is empty; expected a JSON object' },
  ])('F2: $name is answered by the handler: 400 with a JSON error, not the framework page', async ({ body, error }) => {
    const res = await fetch(`${fn.url}${MUTATE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await res.json()).error).toContain(error);
  });

  it('a gzip-compressed inventory is still inflated for /reconcile', async () => {
    const res = await fetch(`${fn.url}/reconcile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...RECONCILE },
      body: gzipSync(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [], metadata: {} })),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ collisions: [] });
    const broken = await fetch(`${fn.url}/reconcile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...RECONCILE },
      body: gzipSync('{"kind": "List", "items": ['),
    });
    expect(broken.status).toBe(400);
    expect((await broken.json()).error).toContain('request body is not JSON (');
  });

  it('S2: a chunked body (no length declared) is cut off once it passes 3 MiB, not read to its end', async () => {
    const before = peakMemory(fn.child.pid!);
    const chunk = `${(64 * 1024).toString(16)}\r\n${'x'.repeat(64 * 1024)}\r\n`;
    const res = await raw(port, post(MUTATE, { 'transfer-encoding': 'chunked' }), {
      body: function* () {
        for (let i = 0; i < 1024; i++) yield chunk; // 64 MiB, if the server read it all
      },
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error).toContain('over the limit of 3145728 bytes');
    expect(res.sent).toBeLessThan(64 * MiB); // it stopped reading well before the end
    const after = peakMemory(fn.child.pid!);
    if (before !== undefined && after !== undefined) expect(after - before).toBeLessThan(48 * MiB);
    note({
      area: 'Limits',
      case: 'A chunked body of 64 MiB (no length declared) sent as fast as the socket takes it',
      runs: count(1, 'run'),
      outcome: `413 after ${(res.sent / MiB).toFixed(1)} MiB had been written (socket buffers included); peak memory of the instance grew ${before !== undefined && after !== undefined ? ((after - before) / MiB).toFixed(1) : '?'} MiB`,
    });
  });

  it('S2: a gzip bomb (300 KB inflating to 300 MB) is refused before it is inflated', async () => {
    const bomb = gzipSync(Buffer.alloc(300 * MiB, ' '), { level: 9 });
    const before = peakMemory(fn.child.pid!);
    const results = await Promise.all([
      fetch(`${fn.url}${MUTATE}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: bomb,
      }).then(
        (r) => r.status,
        () => 0,
      ),
      fetch(`${fn.url}/reconcile`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: bomb,
      }).then(
        (r) => r.status,
        () => 0,
      ),
    ]);
    // 415 for the webhook path; 401 for the unauthenticated inventory. (A refused upload may also end in a reset.)
    expect(results[0] === 415 || results[0] === 0).toBe(true);
    expect(results[1] === 401 || results[1] === 0).toBe(true);
    const after = peakMemory(fn.child.pid!);
    if (before !== undefined && after !== undefined) expect(after - before).toBeLessThan(48 * MiB);
    note({
      area: 'Limits',
      case: `A gzip bomb (${Math.round(bomb.length / 1024)} KB inflating to 300 MB) to the webhook path, and without a token to /reconcile`,
      runs: count(2, 'requests'),
      outcome: `refused ${results.join(' and ')} from the headers; peak memory of the instance grew ${before !== undefined && after !== undefined ? ((after - before) / MiB).toFixed(1) : '?'} MiB`,
    });
  });

  const SLOW = [
    {
      name: 'a body sent one byte every 500 ms',
      head: () => post(MUTATE, { 'content-length': 1000 }),
      body: () => Array.from({ length: 1000 }, () => 'x'),
      gapMs: 500,
      limitMs: BODY_TIMEOUT_MS,
      status: 408,
    },
    {
      name: 'a body that never comes',
      head: () => post(MUTATE, { 'content-length': 1000 }),
      limitMs: BODY_TIMEOUT_MS,
      status: 408,
    },
    {
      name: 'headers sent one line a second, never finished',
      head: () => `POST ${MUTATE} HTTP/1.1\r\nhost: macpool\r\n`,
      body: () => Array.from({ length: 1000 }, (_, i) => `x-slow-${i}: 1\r\n`),
      gapMs: 1_000,
      limitMs: HEADERS_TIMEOUT_MS,
      status: 408,
    },
    {
      name: 'a chunked body that trickles in',
      head: () => post(MUTATE, { 'transfer-encoding': 'chunked' }),
      body: () => Array.from({ length: 1000 }, () => '1\r\nx\r\n'),
      gapMs: 300,
      limitMs: BODY_TIMEOUT_MS,
      status: 408,
    },
  ];

  it('a body refused with 408 is never handled, even when the rest of it arrives right after the answer', async () => {
    const review = example('create-vm-masquerade');
    review.request.uid = randomUUID();
    review.request.name = review.request.object.metadata.name = `late-${randomUUID().slice(0, 8)}`;
    const text = JSON.stringify(review);
    const chunk = (t: string) => `${Buffer.byteLength(t).toString(16)}\r\n${t}\r\n`;
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write(post(MUTATE, { 'transfer-encoding': 'chunked' }) + chunk(text.slice(0, 100)));
    // Past the body deadline the guard answers 408; the client then sends the rest at once.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (!answer.startsWith('HTTP/1.1 408')) return;
        clearInterval(poll);
        resolve();
      }, 20);
    });
    if (!socket.destroyed) socket.write(chunk(text.slice(100)) + '0\r\n\r\n');
    await new Promise((r) => setTimeout(r, 3_000));
    socket.destroy();
    const db = testDb(project);
    const held = await db.collection('macs').where('name', '==', review.request.name).get();
    expect(held.size).toBe(0);
    await db.terminate();
  });

  it('slow and stalled clients are cut off after a bounded time, and the instance keeps serving meanwhile', async () => {
    const slow = Promise.all(SLOW.map((c) => raw(port, c.head(), c)));
    // While they hang on, a normal request is served at once.
    await new Promise((r) => setTimeout(r, 1_000));
    const started = performance.now();
    const res = await fetch(`${fn.url}${MUTATE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(example('create-vm-masquerade')),
    });
    const servedMs = performance.now() - started;
    expect(res.status).toBe(200);
    expect(servedMs).toBeLessThan(2_000);
    const results = await slow;
    SLOW.forEach((c, i) => {
      const r = results[i]!;
      expect(r.status, c.name).toBe(c.status);
      expect(r.closedMs, c.name).toBeGreaterThanOrEqual(c.limitMs - 500);
      expect(r.closedMs, c.name).toBeLessThan(c.limitMs + CUT_OFF_SLACK_MS);
    });
    note({
      area: 'Limits',
      case: 'Slow clients: body 1 byte/500 ms, body never sent, headers 1 line/s, chunked body trickling',
      runs: count(SLOW.length, 'clients'),
      outcome: `cut off with 408 after ${results.map((r) => (r.closedMs / 1000).toFixed(1)).join(' / ')} s (limits ${BODY_TIMEOUT_MS / 1000} s for a body, ${HEADERS_TIMEOUT_MS / 1000} s for headers); a normal request meanwhile answered in ${Math.round(servedMs)} ms`,
    });
  }, 30_000);

  it('S1: every refusal is logged once, without the token', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const lines = jsonLines(fn.output());
    const refusals = lines.filter((l) => l.message === 'request refused' || l.message === 'unauthorized request');
    expect(refusals.length).toBeGreaterThanOrEqual(REFUSED_FROM_HEADERS.length + SLOW.length - 1);
    for (const l of refusals) expect(l).toMatchObject({ severity: 'WARNING', httpStatus: expect.any(Number) });
    for (const c of CREDENTIALS) expect(fn.output()).not.toContain(c);
    note({
      area: 'Limits',
      case: 'Refused from the headers alone: over 3 MiB (and 1 GiB, and 4 MiB with Expect: 100-continue), inventory over 32 MiB, gzip and deflate on webhook paths, br on /reconcile, no or wrong credential, the secret or the reconcile credential in the path, the VM credential on /reconcile, path not valid percent-encoding',
      runs: count(REFUSED_FROM_HEADERS.length, 'cases'),
      outcome: `413 / 415 / 401 / 400 in under 1 s with no body byte sent, connection closed; a body of exactly 3 MiB served; ${refusals.length} log lines, 0 with the secret or a role credential`,
    });
  });
});
