/**
 * Hostile input (F2, F3, V4): property-based fuzzing of request bodies through the real HTTP server (the
 * functions-framework serving the function, against the real emulator). Whatever arrives, the function answers
 * without a 5xx, stays up, writes nothing for a request it refuses, and says what is wrong: a 400 names the field
 * of the AdmissionReview, a denial names the field, interface or value of the VirtualMachine.
 *
 * The last block pins, case by case, the values Kubernetes never sends but a token holder can: names that are no
 * Kubernetes names, megabyte strings, lone surrogates, deep nesting in an interface.
 */
import type { Firestore } from '@google-cloud/firestore';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMac, type Mac, parseMac } from '../../shared/mac.js';
import { type Harness, startFunction } from '../support/harness.js';
import { macsOf, mutated, patchOf, review, vm } from '../support/fixtures.js';
import { count, note, SCALE, scaled } from '../support/record.js';

const MUTATE = '/mutate-virtualmachines';
const ADMISSION_PATHS = [MUTATE, '/validate-namespaces', '/validate-hyperconverged'] as const;
/** F1: every answer within 8 s. */
const ANSWER_WITHIN_MS = 8_000;
const TIMEOUT = 60_000 * SCALE;

/** A summary of every document the function may write: any create, update or delete changes it. */
async function fingerprint(db: Firestore, groups = ['macs', 'config', 'namespaces']): Promise<string> {
  const [roots, ...snaps] = await Promise.all([
    db.listCollections(),
    ...groups.map((id) => db.collectionGroup(id).get()),
  ]);
  const docs = snaps.flatMap((g) => g.docs.map((d) => `${d.ref.path}@${d.updateTime.toMillis()}`));
  return [...roots.map((c) => c.id), ...docs.sort()].join('\n');
}

/**
 * What a request may have written, cheaply: claims recording its uid (every claim write records the uid of the
 * request that made it) and the small configuration and namespace collections.
 */
async function writesOf(db: Firestore, uid: string): Promise<string> {
  const [claims, rest] = await Promise.all([
    db.collection('macs').where('requestUid', '==', uid).get(),
    fingerprint(db, ['config', 'namespaces']),
  ]);
  return `${claims.docs.map((d) => d.id).join(',')}\n${rest}`;
}

interface Answer {
  status: number;
  body: any;
  text: string;
  ms: number;
}

async function send(h: Harness, path: string, body: string | Buffer, contentType = 'application/json') {
  const started = performance.now();
  const res = await h.post(path, body, { 'content-type': contentType });
  return { ...res, ms: performance.now() - started } satisfies Answer;
}

/**
 * What every answer must be: no 5xx, within 8 s, a JSON error or an AdmissionReview for the request, and a
 * denial that is a client error (422, 409, 403) saying what is wrong.
 */
function expectSound(answer: Answer, req?: any) {
  expect(answer.status).toBeLessThan(500);
  expect(answer.ms).toBeLessThan(ANSWER_WITHIN_MS);
  if (answer.status !== 200) {
    expect(typeof answer.body?.error).toBe('string');
    expect(answer.body.error).toMatch(NAMES_WHAT_IS_WRONG);
    return;
  }
  const response = answer.body?.response;
  expect(answer.body?.kind).toBe('AdmissionReview');
  if (req?.request?.uid !== undefined) expect(response?.uid).toBe(req.request.uid);
  if (response.allowed) return;
  expect([422, 409, 403]).toContain(response.status?.code);
  expect(response.status.message).toMatch(NAMES_WHAT_IS_WRONG);
}

/** A message naming a field, an interface or a value, or the body as a whole. */
const NAMES_WHAT_IS_WRONG =
  /\brequest\b|apiVersion|kind|\(root\)|\binput\b|JSON|interface \S+|MAC address \S+|metadata|namespace|spec|items|List/;

/** Runs one property with `runs` scaled; fast-check prints the seed and the shrunk input of a failure. */
function check<T>(arb: fc.Arbitrary<T>, runs: number, predicate: (t: T) => Promise<void>) {
  return fc.assert(
    fc.asyncProperty(arb, async (t) => {
      await predicate(t);
    }),
    { numRuns: scaled(runs), endOnFailure: true },
  );
}

// --- generators --------------------------------------------------------------------------------------------

/** Names as Kubernetes allows them (most of the time), and every way to miss: unicode, case, dots, slashes, length. */
const nameArb = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/), weight: 6 },
  { arbitrary: fc.stringMatching(/^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}$/), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), weight: 1 },
  {
    arbitrary: fc.constantFrom('.', '..', '__reserved__', 'a/b', 'A', '-a', 'a-', 'a'.repeat(64), 'a'.repeat(254)),
    weight: 1,
  },
  { arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => `v${String.fromCharCode(c)}`), weight: 1 },
);
/** Interface names: any well-formed text goes, so mostly unicode. */
const interfaceArb = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), weight: 2 },
  { arbitrary: nameArb, weight: 2 },
  { arbitrary: fc.constant('i'.repeat(254)), weight: 1 },
);

/** Kubernetes' own rules for names, written out here rather than taken from the code under test. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isNamespaceName = (s: string) => s.length <= 63 && DNS_LABEL.test(s);
const isObjectName = (s: string) => s.length <= 253 && s.split('.').every((label) => DNS_LABEL.test(label));
const isInterfaceName = (s: string) => s.length <= 253 && s.isWellFormed();

const envelope = (operation: string, object: unknown, oldObject: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `fuzz-${Math.random().toString(36).slice(2)}`,
    kind: { group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachine' },
    resource: { group: 'kubevirt.io', version: 'v1', resource: 'virtualmachines' },
    namespace: 'fuzz',
    operation,
    userInfo: { username: 'fuzzer' },
    object,
    oldObject,
    ...extra,
  },
});

/** JSON of a different type than `value` (null, boolean, number, string, array, object). */
function otherTypeArb(value: unknown): fc.Arbitrary<unknown> {
  const kind = jsonKind(value);
  return fc.jsonValue().filter((v) => jsonKind(v) !== kind);
}

function jsonKind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Field paths of an AdmissionReview for a VM (object fields under `request.object`). */
const ENVELOPE_FIELDS = [
  'apiVersion',
  'kind',
  'request',
  'request.uid',
  'request.kind',
  'request.resource',
  'request.resource.group',
  'request.operation',
  'request.namespace',
  'request.name',
  'request.dryRun',
] as const;
const OBJECT_FIELDS = [
  'metadata',
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'metadata.annotations',
  'spec',
  'spec.template',
  'spec.template.spec',
  'spec.template.spec.domain',
  'spec.template.spec.domain.devices',
  'spec.template.spec.domain.devices.interfaces',
  'spec.template.spec.domain.devices.interfaces.0',
  'spec.template.spec.domain.devices.interfaces.0.name',
  'spec.template.spec.domain.devices.interfaces.1.macAddress',
  'spec.template.spec.networks',
  'spec.template.spec.networks.0',
  'spec.template.spec.networks.0.name',
] as const;

function getPath(root: any, path: string): unknown {
  return path.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), root);
}

function setPath(root: any, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop()!;
  const parent = keys.reduce((o, k) => o[k], root);
  parent[last] = value;
}

/** Every spelling a MAC field might hold: valid ones in each notation and case, and near misses of each. */
const hexByte = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
const octets = fc.array(hexByte, { minLength: 6, maxLength: 6 });
const randomCase = (s: string) =>
  fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
const macArb: fc.Arbitrary<string> = fc.oneof(
  octets.map((o) => o.join(':')).chain(randomCase),
  octets.map((o) => o.join('-')).chain(randomCase),
  octets.map((o) => `${o[0]}${o[1]}.${o[2]}${o[3]}.${o[4]}${o[5]}`).chain(randomCase),
  // Near misses: wrong or mixed separators, a missing or extra octet, padding, odd digits.
  fc.tuple(octets, fc.constantFrom(':', '-', '.', ' ', '', '::', '_', '：')).map(([o, sep]) => o.join(sep)),
  fc
    .tuple(octets, fc.constantFrom(':', '-'))
    .map(([o, sep]) => [...o.slice(0, 3), ...o.slice(3).join('-').split('-')].join(sep).replace(/^(..).(..)/, '$1-$2')),
  fc.array(hexByte, { minLength: 0, maxLength: 9 }).map((o) => o.join(':')),
  octets.map((o) => ` ${o.join(':')}`),
  octets.map((o) => `${o.join(':')}\n`),
  octets.map((o) => o.join(':').replace(/0/g, '０')),
  octets.map((o) => o.map((b) => b.padStart(3, '0')).join(':')),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.stringMatching(/^[0-9a-fA-F:.-]{0,20}$/),
);

/** The oracle for V4/V7: how the pool must treat a MAC text. */
const VALID_MAC =
  /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$|^[0-9a-f]{2}(?:-[0-9a-f]{2}){5}$|^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i;

describe('fuzzing request bodies through the HTTP server (F2, F3)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  it(
    'random JSON objects and arrays on every path: 400 naming what is wrong, nothing written',
    async () => {
      const arb = fc.record({
        path: fc.constantFrom(...ADMISSION_PATHS, '/reconcile'),
        body: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.array(fc.jsonValue())),
      });
      let runs = 0;
      const before = await fingerprint(h.db);
      await check(arb, 120, async ({ path, body }) => {
        runs++;
        const answer = await send(h, path, JSON.stringify(body));
        if (path === '/reconcile' && Array.isArray(body) && body.length === 0) {
          // `[]` is a valid, empty inventory (a list of no Lists); this project holds no claim it could release.
          expect(answer).toMatchObject({ status: 200, body: { vms: 0, released: 0 } });
          return;
        }
        expectSound(answer);
        expect(answer.status).toBe(400);
      });
      expect(await fingerprint(h.db)).toBe(before);
      note({
        area: 'Hostile input',
        case: 'Random JSON objects and arrays on every path',
        runs: count(runs, 'runs'),
        outcome: 'all 400 with a JSON error naming the body or field; 0 writes; 0 5xx',
      });
    },
    TIMEOUT,
  );

  it(
    'AdmissionReviews with random objects: an answer for the request, 422 naming the object when denied',
    async () => {
      const arb = fc.record({
        operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
        object: fc.jsonValue(),
        oldObject: fc.jsonValue(),
        dryRun: fc.constantFrom(true, false, null, undefined),
        apiVersion: fc.constantFrom('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'),
      });
      let runs = 0;
      let denied = 0;
      await check(arb, 120, async ({ operation, object, oldObject, dryRun, apiVersion }) => {
        runs++;
        const req: any = envelope(operation, object, oldObject, dryRun === undefined ? {} : { dryRun });
        req.apiVersion = apiVersion;
        const before = await writesOf(h.db, req.request.uid);
        const answer = await send(h, MUTATE, JSON.stringify(req));
        expectSound(answer, req);
        expect(answer.status).toBe(200);
        expect(answer.body.apiVersion).toBe(apiVersion);
        if (!answer.body.response.allowed) {
          denied++;
          expect(answer.body.response.status.message).toMatch(
            /^invalid VirtualMachine: (request\.object|request\.oldObject|metadata\.name|namespace|spec\.\S+): /,
          );
          expect(await writesOf(h.db, req.request.uid)).toBe(before);
        }
        if (operation === 'DELETE' || operation === 'CONNECT') expect(answer.body.response.allowed).toBe(true);
      });
      note({
        area: 'Hostile input',
        case: 'Valid AdmissionReview envelopes with random JSON as object and oldObject, every operation',
        runs: count(runs, 'runs'),
        outcome: `${denied} denied 422 naming the object and the field, 0 writes from them; DELETE and CONNECT always allowed; 0 5xx`,
      });
    },
    TIMEOUT,
  );

  it(
    'a wrong type in any field: 400 or 422 naming that field, nothing written',
    async () => {
      const arb = fc
        .record({
          operation: fc.constantFrom('CREATE', 'UPDATE'),
          target: fc.constantFrom(
            ...ENVELOPE_FIELDS.map((f) => ({ where: 'review' as const, field: f })),
            ...OBJECT_FIELDS.map((f) => ({ where: 'object' as const, field: f })),
            ...OBJECT_FIELDS.map((f) => ({ where: 'oldObject' as const, field: f })),
          ),
          name: fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/),
        })
        .filter((c) => !(c.target.where === 'oldObject' && c.operation === 'CREATE'))
        .chain((c) => {
          const base = baseReview(c.operation, c.name);
          const where = c.target.where === 'review' ? base : base.request[c.target.where];
          return otherTypeArb(getPath(where, c.target.field)).map((value) => ({ ...c, base, value }));
        });
      let runs = 0;
      let refused = 0;
      await check(arb, 150, async ({ target, base, value }) => {
        runs++;
        const req = structuredClone(base);
        setPath(target.where === 'review' ? req : req.request[target.where], target.field, value);
        const uid: string = base.request.uid;
        const before = await writesOf(h.db, uid);
        const answer = await send(h, MUTATE, JSON.stringify(req));
        expectSound(answer, target.where === 'review' ? undefined : req);
        const refusedHere = answer.status !== 200 || !answer.body.response.allowed;
        if (!refusedHere) return;
        refused++;
        const text: string = answer.status === 200 ? answer.body.response.status.message : answer.body.error;
        // Zod reports the field itself or, for a wrong type of a container, the first field inside it that fails.
        const named = target.where === 'review' ? target.field : `request.${target.where}: ${target.field}`;
        expect(text.includes(named) || text.includes(`request.${target.where}: ${parentOf(target.field)}`)).toBe(true);
        expect(await writesOf(h.db, uid)).toBe(before);
      });
      note({
        area: 'Hostile input',
        case: 'One field of a valid CREATE/UPDATE given a value of another JSON type (11 envelope fields, 17 VM fields, object and oldObject)',
        runs: count(runs, 'runs'),
        outcome: `${refused} refused (400 or 422), each naming the field; the rest are types the schema allows (null where optional); 0 writes from refusals; 0 5xx`,
      });
    },
    TIMEOUT,
  );

  it(
    'MAC strings of every shape: kept as written and claimed when valid (V4), 422 naming interface and value when not',
    async () => {
      let runs = 0;
      const outcomes = { claimed: 0, invalid: 0, multicast: 0, inUse: 0, empty: 0 };
      const seen = new Map<string, string>();
      await check(fc.tuple(macArb, fc.boolean()), 200, async ([mac, multus]) => {
        runs++;
        const name = `mac-${runs}`;
        const req = review('CREATE', vm(name, 'macs', [{ name: 'eth-x', network: multus ? 'multus' : 'pod', mac }]));
        const before = await writesOf(h.db, req.request.uid);
        const answer = await send(h, MUTATE, JSON.stringify(req));
        expectSound(answer, req);
        const response = answer.body.response;
        if (mac === '') {
          // An empty MAC is no MAC: the pool assigns one.
          outcomes.empty++;
          expect(response.allowed).toBe(true);
          return;
        }
        if (!VALID_MAC.test(mac)) {
          outcomes.invalid++;
          expect(response).toMatchObject({ allowed: false, status: { code: 422 } });
          expect(response.status.message).toBe(
            `invalid MAC address format for interface eth-x: ${mac} ` +
              '(allowed: 48-bit MACs written aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff)',
          );
          expect(await writesOf(h.db, req.request.uid)).toBe(before);
          return;
        }
        const canonical = formatMac(parseMac(mac)!);
        if (parseInt(canonical.slice(0, 2), 16) & 1) {
          outcomes.multicast++;
          expect(response).toMatchObject({ allowed: false, status: { code: 422 } });
          expect(response.status.message).toContain(`interface eth-x: ${mac} is a multicast address`);
          expect(await writesOf(h.db, req.request.uid)).toBe(before);
          return;
        }
        const holder = seen.get(canonical);
        if (holder !== undefined) {
          outcomes.inUse++;
          expect(response).toMatchObject({ allowed: false, status: { code: 409 } });
          expect(response.status.message).toBe(
            `MAC address ${canonical} requested for interface eth-x is already in use by virtual machine ${holder}`,
          );
          expect(await writesOf(h.db, req.request.uid)).toBe(before);
          return;
        }
        outcomes.claimed++;
        seen.set(canonical, name);
        expect(response.allowed).toBe(true);
        // Left exactly as written: the patch does not touch the MAC.
        expect(patchOf(answer.body).some((op) => op.path.endsWith('/macAddress'))).toBe(false);
        expect(macsOf(mutated(req, answer.body))['eth-x']).toBe(mac);
        const claim = (await h.db.doc(`macs/${canonical}`).get()).data();
        expect(claim).toMatchObject({ name, namespace: 'macs', interface: 'eth-x', origin: 'requested' });
        const outside = !canonical.startsWith('02:');
        expect((response.warnings ?? []).some((w: string) => w.includes('outside the pool range'))).toBe(outside);
      });
      note({
        area: 'Hostile input',
        case: 'macAddress of every shape: each notation in random case, near misses (separators, octet counts, padding, fullwidth digits, whitespace), random text',
        runs: count(runs, 'runs'),
        outcome: `${outcomes.claimed} valid ones claimed under the canonical id and left as written, ${outcomes.invalid} invalid and ${outcomes.multicast} multicast denied 422 with the interface and the exact value, ${outcomes.inUse} repeats denied 409; 0 writes from denials`,
      });
    },
    TIMEOUT,
  );

  it(
    'deep nesting anywhere: answered, never a 5xx or an internal error',
    async () => {
      const arb = fc.record({
        depth: fc.integer({ min: 1_000, max: 50_000 }),
        brackets: fc.constantFrom('object', 'array'),
        place: fc.constantFrom(
          { operation: 'CREATE', root: 'request', path: 'userInfo.extra' },
          { operation: 'CREATE', root: 'object', path: 'metadata.labels' },
          { operation: 'CREATE', root: 'object', path: 'spec.template.spec.domain.devices.interfaces.0.masquerade' },
          { operation: 'CREATE', root: 'object', path: 'spec.template.spec.domain.firmware' },
          { operation: 'UPDATE', root: 'object', path: 'spec.runStrategy' },
          { operation: 'UPDATE', root: 'oldObject', path: 'status' },
          { operation: 'UPDATE', root: 'object', path: 'spec.template.spec.domain.devices.interfaces.0.masquerade' },
          { operation: 'CREATE', root: 'review', path: 'request' },
        ),
      });
      let runs = 0;
      await check(arb, 40, async ({ depth, brackets, place }) => {
        runs++;
        const nested =
          brackets === 'object'
            ? '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
            : '['.repeat(depth) + ']'.repeat(depth);
        const old = vm(`deep-${runs}`, 'deep', [{ name: 'default', mac: '02:00:00:00:de:01' }], { uid: 'u' });
        const req =
          place.operation === 'UPDATE'
            ? review('UPDATE', structuredClone(old), old)
            : review('CREATE', vm(`deep-${runs}`, 'deep', [{ name: 'default' }]));
        const root = place.root === 'review' ? req : place.root === 'request' ? req.request : req.request[place.root];
        setPath(root, place.path, '__DEEP__');
        const answer = await send(h, MUTATE, JSON.stringify(req).replace('"__DEEP__"', nested));
        expectSound(answer, place.root === 'review' ? undefined : req);
      });
      note({
        area: 'Hostile input',
        case: 'Nesting 1,000 to 50,000 levels deep (objects and arrays) in eight places, the interface list of CREATE and UPDATE included',
        runs: count(runs, 'runs'),
        outcome:
          'all answered (200, 422 naming the interface for nesting inside one, 400 where the request itself is nested), 0 internal errors, 0 5xx',
      });
    },
    TIMEOUT,
  );

  it(
    'huge arrays and maps under 3 MiB: answered within 8 s, nothing written for interfaces that need no MAC',
    async () => {
      const arb = fc.record({
        size: fc.integer({ min: 1_000, max: 40_000 }),
        position: fc.constantFrom(
          'interfaces',
          'networks',
          'annotations',
          'unknown field',
          'update, unchanged interfaces',
        ),
      });
      let runs = 0;
      let slowest = 0;
      const before = await fingerprint(h.db);
      await check(arb, 12, async ({ size, position }) => {
        runs++;
        const object = vm(`huge-${runs}`, 'huge', [{ name: 'default', binding: 'bridge' }]);
        const spec = object.spec.template.spec;
        const many = Array.from({ length: size }, (_, i) => i);
        if (position === 'interfaces' || position === 'update, unchanged interfaces') {
          spec.domain.devices.interfaces = many.map((i) => ({ name: `if${i}`, bridge: {} }));
          spec.networks = many.map((i) => ({ name: `if${i}`, pod: {} }));
        }
        if (position === 'networks') spec.networks = many.map((i) => ({ name: `n${i}`, pod: {} }));
        if (position === 'annotations')
          object.metadata.annotations = Object.fromEntries(many.map((i) => [`k${i}`, `v${i}`]));
        if (position === 'unknown field') object.spec.extra = many;
        const req = position.startsWith('update')
          ? review('UPDATE', object, structuredClone(object))
          : review('CREATE', object);
        const answer = await send(h, MUTATE, JSON.stringify(req));
        slowest = Math.max(slowest, answer.ms);
        expectSound(answer, req);
      });
      expect(await fingerprint(h.db)).toBe(before);
      note({
        area: 'Hostile input',
        case: 'Arrays and maps of 1,000 to 40,000 entries (interfaces needing no MAC, networks, annotations, unknown fields, unchanged UPDATE)',
        runs: count(runs, 'runs'),
        outcome: `all answered, slowest ${Math.round(slowest)} ms; 0 writes; 0 5xx`,
      });
    },
    TIMEOUT,
  );

  it(
    'names of every kind: claimed exactly as sent when Kubernetes allows them, 422 naming the field when not',
    async () => {
      const arb = fc.record({
        name: nameArb,
        namespace: nameArb,
        iface: interfaceArb,
        second: interfaceArb,
        annotation: fc.string({ unit: 'grapheme', maxLength: 60 }),
      });
      let runs = 0;
      let claimed = 0;
      let refused = 0;
      await check(arb, 100, async ({ name, namespace, iface, second, annotation }) => {
        runs++;
        const object = vm(name, namespace, [{ name: iface }, { name: second, network: 'multus' }], {
          annotations: { [annotation || 'k']: annotation },
        });
        const req = review('CREATE', object);
        const before = await writesOf(h.db, req.request.uid);
        const answer = await send(h, MUTATE, JSON.stringify(req));
        expectSound(answer, req);
        const response = answer.body.response;
        const problems = [
          isNamespaceName(namespace) ? [] : ['namespace'],
          isObjectName(name) ? [] : ['metadata.name'],
          isInterfaceName(iface) ? [] : ['interfaces[0].name'],
          isInterfaceName(second) ? [] : ['interfaces[1].name'],
          iface === second ? ['every interface must have a unique name'] : [],
        ].flat();
        expect(response.allowed).toBe(problems.length === 0);
        if (!response.allowed) {
          refused++;
          expect(response.status.code).toBe(422);
          expect(problems.some((problem) => response.status.message.includes(problem))).toBe(true);
          expect(await writesOf(h.db, req.request.uid)).toBe(before);
          return;
        }
        claimed++;
        const macs = macsOf(mutated(req, answer.body));
        for (const [ifName, mac] of Object.entries(macs)) {
          const claim = (await h.db.doc(`macs/${mac}`).get()).data();
          expect(claim).toMatchObject({ name, namespace, interface: ifName, state: 'pending' });
        }
      });
      note({
        area: 'Hostile input',
        case:
          'Names of every kind (Kubernetes names, unicode graphemes, any code point, dots, slashes, case, 64 and ' +
          '254 characters, lone surrogates) as VM name, namespace and interface names; unicode annotations',
        runs: count(runs, 'runs'),
        outcome:
          `${claimed} claimed with every name stored exactly as sent; ${refused} denied 422 naming the name ` +
          'Kubernetes would not allow (or the repeated interface); 0 writes from them; 0 5xx',
      });
    },
    TIMEOUT,
  );
});

let baseReviews = 0;
/** A valid CREATE or UPDATE of a VM with an allocated and a user-set MAC (its own, so it is never in use). */
function baseReview(operation: string, name: string): any {
  const mac = formatMac((0x02_00_00_7e_00_00n + BigInt(++baseReviews)) as Mac);
  const object = vm(name, 'types', [{ name: 'default' }, { name: 'n1', network: 'multus', mac }], {
    uid: `uid-${name}`,
    annotations: { team: 'a' },
  });
  return operation === 'CREATE' ? review('CREATE', object) : review('UPDATE', structuredClone(object), object);
}

function parentOf(path: string): string {
  return path.split('.').slice(0, -1).join('.');
}

/**
 * Values that end up in Firestore ids and fields, or in a comparison's stack, and that Kubernetes never sends
 * (names are DNS labels or subdomains, uids are UUIDs, nesting is shallow); any holder of a cluster token can.
 * Each must be a 422 naming the field, at once, with nothing written, rather than a Firestore error.
 */
describe('values Kubernetes never sends: 422 naming the field, not a Firestore error', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startFunction();
  });
  afterAll(async () => h.close());

  const create = (namespace: string, name: string, iface = 'default') =>
    review('CREATE', vm(name, namespace, [{ name: iface }]));
  const deepUpdate = () => {
    const old = vm('deep-if', 'deep', [{ name: 'default', mac: '02:00:00:00:de:02' }], { uid: 'u' });
    const next = structuredClone(old);
    next.spec.template.spec.domain.devices.interfaces[0].masquerade = '__DEEP__';
    return review('UPDATE', next, old);
  };
  const DEEP = '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000);
  const bigUid = () => {
    const req = create('ns', 'v6');
    req.request.uid = 'u'.repeat(1_200_000);
    return req;
  };

  it.concurrent.each([
    { name: 'namespace "."', req: () => create('.', 'v1'), field: 'namespace' },
    { name: 'namespace ".."', req: () => create('..', 'v2'), field: 'namespace' },
    { name: 'namespace "__reserved__"', req: () => create('__reserved__', 'v3'), field: 'namespace' },
    { name: 'namespace "a/b" (a slash)', req: () => create('a/b', 'v4'), field: 'namespace' },
    { name: 'a VM name of 1.2 MB', req: () => create('ns', 'n'.repeat(1_200_000)), field: 'metadata.name' },
    { name: 'an interface name of 1.2 MB', req: () => create('ns', 'v5', 'i'.repeat(1_200_000)), field: 'name' },
    { name: 'a request uid of 1.2 MB', req: bigUid, field: 'request.uid' },
    { name: 'a lone UTF-16 surrogate in the VM name', req: () => create('ns', 'v7\ud800'), field: 'metadata.name' },
    { name: 'an UPDATE with an interface nested 20,000 levels deep', req: deepUpdate, field: 'interfaces' },
  ])(
    '$name: denied 422 naming the $field at once, nothing written',
    async ({ req, field }) => {
      const request = req();
      const uid: string = request.request.uid;
      const body = JSON.stringify(request).replace('"__DEEP__"', DEEP);
      const key = uid.length > 1_000 ? 'no-such-uid' : uid;
      const before = await writesOf(h.db, key);
      const answer = await send(h, MUTATE, body);
      expect(answer.status).toBe(200);
      const response = answer.body.response;
      const observed = `answered ${response.allowed ? 'allowed' : `${response.status.code} ${response.status.message}`}`;
      const seen = `${observed.slice(0, 150)} after ${Math.round(answer.ms)} ms`;
      expect(response, seen).toMatchObject({ allowed: false, status: { code: 422 } });
      expect(response.status.message, seen).toContain(field);
      expect(answer.ms, seen).toBeLessThan(1_000);
      expect(await writesOf(h.db, key)).toBe(before);
    },
    30_000,
  );
});
