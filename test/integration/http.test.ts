import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentCount, type Harness, startFunction } from '../support/harness.js';
import { webhookPaths } from '../support/credentials.js';
import { example, macsOf, mutated, patchOf, review, vm } from '../support/fixtures.js';

const MUTATE = '/mutate-virtualmachines';
const TOKEN_A = 'token-for-cluster-a-0123456789';
const TOKEN_B = 'token-for-cluster-b-9876543210';
const A = webhookPaths(TOKEN_A);
const B = webhookPaths(TOKEN_B);

describe('HTTP interface and auth', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction({
      tokens: [
        { cluster: 'cluster-a', token: TOKEN_A },
        { cluster: 'cluster-b', token: TOKEN_B },
      ],
    });
  });
  afterAll(async () => h.close());

  it.each([
    { name: 'the VM webhook URL (its credential in the path)', path: A.mutateVirtualMachines, headers: {} },
    {
      name: 'the cluster secret as Authorization: Bearer',
      path: MUTATE,
      headers: { authorization: `Bearer ${TOKEN_A}` },
    },
  ])('S1, S4: $name names the cluster', async ({ path, headers }) => {
    const req = review('CREATE', vm(`s1-${path.length}`, 'ns', [{ name: 'default' }]));
    const res = await h.post(path, req, headers);
    expect(res.status).toBe(200);
    const mac = macsOf(mutated(req, res.body)).default!;
    expect((await h.db.doc(`macs/${mac}`).get()).data()?.cluster).toBe('cluster-a');
  });

  it.each([
    { name: 'no token', path: MUTATE, headers: {} },
    { name: 'a wrong token', path: `/t/wrong-token-0000000000000000${MUTATE}`, headers: {} },
    { name: 'a truncated token', path: `/t/${TOKEN_A.slice(0, -1)}${MUTATE}`, headers: {} },
    { name: 'a token with a suffix', path: MUTATE, headers: { authorization: `Bearer ${TOKEN_A}x` } },
    { name: 'an empty path token', path: `/t/${MUTATE}`, headers: {} },
    { name: 'the cluster secret in the path (S4)', path: `/t/${TOKEN_A}${MUTATE}`, headers: {} },
  ])('S1: $name gets 401 without saying which part failed, and nothing is written', async ({ path, headers }) => {
    const before = await documentCount(h.db);
    const res = await h.post(path, review('CREATE', vm('s1-denied', 'ns', [{ name: 'default' }])), headers);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthorized' });
    expect(await documentCount(h.db)).toBe(before);
  });

  it('S1: no log line ever contains a token', () => {
    const all = JSON.stringify(h.logs);
    expect(h.logs.length).toBeGreaterThan(5);
    expect(all).not.toContain(TOKEN_A.slice(0, 12));
    expect(all).not.toContain('wrong-token');
  });

  it('S3 + V5: a MAC held in another cluster is denied without naming the holder', async () => {
    await h.post(
      A.mutateVirtualMachines,
      review('CREATE', vm('secret-vm', 'ns', [{ name: 'n', network: 'multus', mac: '02:00:00:00:5e:01' }])),
    );
    const res = await h.post(
      B.mutateVirtualMachines,
      review('CREATE', vm('b-vm', 'ns', [{ name: 'n', network: 'multus', mac: '02:00:00:00:5e:01' }])),
    );
    expect(res.body.response.status.message).toBe(
      'MAC address 02:00:00:00:5e:01 requested for interface n is already in use',
    );
  });

  it('S2: a body over 3 MiB is refused with 413 and nothing is written', async () => {
    const req = review('CREATE', vm('big', 'ns', [{ name: 'default' }]));
    req.request.object.metadata.annotations = { padding: 'x'.repeat(3 * 1024 * 1024) };
    const before = await documentCount(h.db);
    const res = await h.post(A.mutateVirtualMachines, req);
    expect(res.status).toBe(413);
    expect(res.body.error).toContain('over the limit of 3145728 bytes');
    expect(await documentCount(h.db)).toBe(before);
  });

  it.each([
    { name: 'a JSON array', body: '[1,2]', error: 'not a JSON object' },
    { name: 'an empty object', body: '{}', error: 'apiVersion' },
    {
      name: 'a wrong apiVersion',
      body: JSON.stringify({ apiVersion: 'v1', kind: 'AdmissionReview', request: {} }),
      error: 'apiVersion',
    },
    {
      name: 'a review without request',
      body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      error: 'request',
    },
    {
      name: 'an unknown operation',
      body: JSON.stringify({
        ...review('CREATE', vm('x', 'ns', [])),
        request: { ...review('CREATE', vm('x', 'ns', [])).request, operation: 'PATCH' },
      }),
      error: 'request.operation',
    },
  ])('F2: $name is a 400 with a JSON error naming what is wrong', async ({ body, error }) => {
    const before = await documentCount(h.db);
    const res = await h.post(A.mutateVirtualMachines, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(error);
    expect(await documentCount(h.db)).toBe(before);
  });

  it.each([
    { name: 'a top-level JSON string', body: '"hello"', error: 'request body is not a JSON object' },
    {
      name: 'truncated JSON',
      body: '{"apiVersion": "admission.k8s.io/v1", "kind": ',
      error: 'request body is not JSON (Unexpected end of JSON input)',
    },
    { name: 'a trailing comma', body: '{"apiVersion": "admission.k8s.io/v1",}', error: 'request body is not JSON (' },
    { name: 'an empty body', body: '', error: 'request body is empty; expected a JSON object' },
  ])(
    'F2: $name sent as application/json is a 400 with a JSON error saying so, nothing written',
    async ({ body, error }) => {
      const before = await documentCount(h.db);
      const res = await h.post(A.mutateVirtualMachines, body);
      expect(res.status).toBe(400);
      expect(res.body.error).toContain(error);
      expect(await documentCount(h.db)).toBe(before);
    },
  );

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/merge-patch+json'])(
    'F2: a body that is not JSON at all, sent as %s, is a 400 with a JSON error',
    async (type) => {
      const res = await h.post(A.mutateVirtualMachines, 'this=is&not=json', { 'content-type': type });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/^request body is not JSON \(.+\); expected a JSON object$/);
    },
  );

  it('a leading byte-order mark is not taken for part of the JSON', async () => {
    const req = review('CREATE', vm('bom', 'ns', [{ name: 'default' }]));
    const res = await h.post(A.mutateVirtualMachines, `\uFEFF${JSON.stringify(req)}`);
    expect(res.status).toBe(200);
    expect(res.body.response).toMatchObject({ uid: req.request.uid, allowed: true });
  });

  it('a valid AdmissionReview is served whatever content type it is sent as', async () => {
    const req = review('CREATE', vm('typed', 'ns', [{ name: 'default' }]));
    const res = await h.post(A.mutateVirtualMachines, JSON.stringify(req), { 'content-type': 'text/plain' });
    expect(res.status).toBe(200);
    expect(res.body.response).toMatchObject({ uid: req.request.uid, allowed: true });
  });

  it('F2: other resources are allowed unchanged', async () => {
    const pod = review('CREATE', vm('p', 'ns', [{ name: 'default' }]));
    pod.request.resource = { group: '', version: 'v1', resource: 'pods' };
    const res = await h.post(A.mutateVirtualMachines, pod);
    expect(res.body.response).toEqual({ uid: pod.request.uid, allowed: true });
  });

  it('a malformed VirtualMachine is denied with the field that is wrong', async () => {
    const bad = review('CREATE', vm('bad', 'ns', [{ name: 'default' }]));
    bad.request.object.spec.template.spec.domain.devices.interfaces = 'eth0';
    const res = await h.post(A.mutateVirtualMachines, bad);
    expect(res.body.response.allowed).toBe(false);
    expect(res.body.response.status.code).toBe(422);
    expect(res.body.response.status.message).toContain('spec.template.spec.domain.devices.interfaces');
  });

  it('answers admission.k8s.io/v1beta1 in the same version and echoes the uid', async () => {
    const req = example('create-vm-masquerade');
    req.apiVersion = 'admission.k8s.io/v1beta1';
    const res = await h.post(A.mutateVirtualMachines, req);
    expect(res.body).toMatchObject({
      apiVersion: 'admission.k8s.io/v1beta1',
      kind: 'AdmissionReview',
      response: { uid: req.request.uid, allowed: true },
    });
    expect(patchOf(res.body).length).toBeGreaterThan(0);
  });

  it('unknown paths are 404 and other methods 405', async () => {
    expect((await h.post(`/t/${TOKEN_A}/nope`, {})).status).toBe(404);
    expect((await h.get(A.mutateVirtualMachines)).status).toBe(405);
  });

  it('GET /healthz is 200 when Firestore answers', async () => {
    expect(await h.get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('O1: one structured log line per request, with operation, namespace, name, MACs, outcome, duration and attempts', async () => {
    const before = h.logs.length;
    const req = review('CREATE', vm('o1', 'logs', [{ name: 'default' }]));
    const res = await h.post(A.mutateVirtualMachines, req);
    expect(h.logs.length).toBe(before + 1);
    const line = h.logs.at(-1)!;
    expect(line).toMatchObject({
      severity: 'INFO',
      message: 'MACs allocated',
      event: 'mac-allocated',
      operation: 'CREATE',
      cluster: 'cluster-a',
      namespace: 'logs',
      name: 'o1',
      macs: [macsOf(mutated(req, res.body)).default],
      outcome: 'allowed',
      attempts: 1,
      requestUid: req.request.uid,
    });
    expect(typeof line.durationMs).toBe('number');
  });
});

describe('Firestore unreachable or hanging (F1)', () => {
  let blackhole: Server;
  const sockets = new Set<import('node:net').Socket>();
  let port: number;
  beforeAll(async () => {
    // Accepts connections and never answers: a hung Firestore.
    blackhole = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    port = (blackhole.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => blackhole.close(resolve));
  });

  it.each([
    { name: 'hanging', host: () => `127.0.0.1:${port}` },
    { name: 'refusing connections', host: () => '127.0.0.1:9' },
  ])(
    'a request that needs a MAC is denied "MAC pool unavailable" within 8 s when Firestore is $name',
    async ({ host }) => {
      const h = await startFunction({ firestoreHost: host() });
      try {
        const started = Date.now();
        const res = await h.post(MUTATE, review('CREATE', vm('f1', 'ns', [{ name: 'default' }])));
        const elapsed = Date.now() - started;
        expect(elapsed).toBeLessThan(8_000);
        expect(res.status).toBe(200);
        expect(res.body.response.allowed).toBe(false);
        expect(res.body.response.status).toMatchObject({ code: 503 });
        expect(res.body.response.status.message).toContain('MAC pool unavailable');
        const health = await h.get('/healthz');
        expect(health.status).toBe(503);
        // A VM that needs no MAC does not depend on Firestore.
        const plain = await h.post(
          MUTATE,
          review('CREATE', vm('f1-plain', 'ns', [{ name: 'default', binding: 'bridge' }])),
        );
        expect(plain.body.response.allowed).toBe(true);
      } finally {
        await h.close();
      }
    },
    30_000,
  );
});
