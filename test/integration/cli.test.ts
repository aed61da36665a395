/**
 * The `macpool` CLI through its real entry point (the built dist/cli/macpool.js, in a process of its own) against
 * the real Firestore emulator: exit codes, what it prints, and the documents it leaves.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Firestore } from '@google-cloud/firestore';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { commitClaimRelease, releaseFailureMessage } from '../../shared/admin.js';
import { freeForAllocation, type Version } from '../../shared/allocator.js';
import { namespaceManaged } from '../../shared/config.js';
import { ClaimDocSchema, NamespaceDocSchema } from '../../shared/documents.js';
import { Store } from '../../shared/store.js';
import { webhookConfigurations } from '../../shared/webhooks.js';
import { macsOf, mutated, patchOf, review, vm } from '../support/fixtures.js';
import { claims, emulatorHost, startFunction, testDb } from '../support/harness.js';
import { ROOT } from '../support/process.js';

const CLI = join(ROOT, 'dist', 'cli', 'macpool.js');
const OPT_LABEL = 'mutatevirtualmachines.kubemacpool.io';
const MUTATE = '/mutate-virtualmachines';
const FUNCTION_URL = 'https://macpool-abc123-ew.a.run.app';
const TOKEN = '0123456789abcdef0123456789abcdef';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** GOOGLE_CLOUD_PROJECT; omitted when null. */
  project?: string | null;
  env?: Record<string, string>;
  stdin?: string;
}

/** A project id of its own: tests never see each other's documents. */
const newProject = () => `cli-${randomUUID().slice(0, 8)}`;
/** The project of the tests that need no isolation from each other. */
const PROJECT = newProject();

/** Runs `node dist/cli/macpool.js ...args` with the emulator, as an operator's shell would. */
function macpool(args: string[], options: RunOptions = {}): Promise<Result> {
  const project = options.project === undefined ? PROJECT : options.project;
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      METADATA_SERVER_DETECTION: 'none',
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      ...(project === null ? {} : { GOOGLE_CLOUD_PROJECT: project }),
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A claim document as the function writes it. */
function claim(mac: string, state: 'pending' | 'bound' | 'released', extra: Record<string, unknown> = {}) {
  const now = Date.now();
  return {
    mac,
    state,
    cluster: 'default',
    namespace: 'lab',
    name: `vm-${mac.slice(-2)}`,
    interface: 'default',
    origin: 'allocated',
    requestUid: `req-${mac.slice(-2)}`,
    createdAt: new Date(now - 3_600_000),
    updatedAt: new Date(now - 3_600_000),
    ...extra,
  };
}

async function seed(db: Firestore, docs: Record<string, Record<string, unknown>>): Promise<void> {
  const batch = db.batch();
  for (const [path, data] of Object.entries(docs)) batch.set(db.doc(path), data);
  await batch.commit();
}

async function data(db: Firestore, path: string): Promise<Record<string, any> | undefined> {
  return (await db.doc(path).get()).data();
}

/** The line a writing command prints on stderr first, naming the Firestore it writes to. */
const writingTo = (project: string) => `writing to project ${project} on the Firestore emulator at ${emulatorHost()}`;

/** A usage error: exit 2, nothing on stdout, the message, then one line naming the command's --help (not the help). */
function expectUsageError(r: Result, command: string, message: string, lines = 2): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  const stderr = r.stderr.trimEnd().split('\n');
  expect(stderr).toHaveLength(lines);
  expect(stderr[0]).toMatch(/^error: /);
  expect(r.stderr).toContain(message);
  expect(stderr.at(-1)).toBe(`run '${command} --help' for usage`);
}

/** Lines of stderr that are not warnings or notes: a failure must be exactly one. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error:') || /^\s+at /.test(l));
}

describe('macpool config', () => {
  const db = () => testDb(PROJECT);

  it('config get: prints the default range, saying on stderr that it is the default, when the document is absent', async () => {
    const r = await macpool(['config', 'get'], { project: newProject() });
    expect(r).toMatchObject({ code: 0, stdout: '{"rangeStart":"02:00:00:00:00:00","rangeEnd":"02:FF:FF:FF:FF:FF"}\n' });
    expect(r.stderr).toContain('config/kubeMacPoolConfiguration does not exist: this is the default range');
  });

  it.each([
    { name: 'colon, upper case', start: '02:00:00:AA:00:00', end: '02:00:00:AA:FF:FF' },
    { name: 'dash', start: '02-00-00-aa-00-00', end: '02-00-00-aa-00-ff' },
    { name: 'dotted', start: '0200.00aa.0000', end: '0200.00aa.00ff' },
    { name: 'one MAC', start: '02:00:00:aa:00:01', end: '02:00:00:aa:00:01' },
  ])('config set (C1, $name): writes both fields as given, keeps other fields; config get prints them', async (c) => {
    await seed(db(), {
      'config/kubeMacPoolConfiguration': { rangeStart: 'x', rangeEnd: 'y', note: 'kept', source: 'hyperconverged' },
    });
    const set = await macpool(['config', 'set', '--range-start', c.start, '--range-end', c.end]);
    expect(set.code).toBe(0);
    expect(set.stdout).toBe(`config/kubeMacPoolConfiguration: rangeStart=${c.start} rangeEnd=${c.end}\n`);
    expect(await data(db(), 'config/kubeMacPoolConfiguration')).toEqual({
      rangeStart: c.start,
      rangeEnd: c.end,
      note: 'kept',
      source: 'macpool-cli',
      updatedAt: expect.anything(),
    });
    const get = await macpool(['config', 'get']);
    expect(get).toMatchObject({ code: 0, stdout: `{"rangeStart":"${c.start}","rangeEnd":"${c.end}"}\n`, stderr: '' });
  });

  it.each([
    {
      name: 'reversed',
      start: '02:00:00:00:00:10',
      end: '02:00:00:00:00:01',
      reason: 'rangeStart 02:00:00:00:00:10 is greater than rangeEnd 02:00:00:00:00:01',
    },
    {
      name: 'multicast',
      start: '03:00:00:00:00:00',
      end: '03:00:00:00:00:ff',
      reason: 'rangeStart 03:00:00:00:00:00 is a multicast address',
    },
    {
      name: 'not a MAC',
      start: '02:00:00:00:00',
      end: '02:00:00:00:00:ff',
      reason: 'rangeStart "02:00:00:00:00" is not a 48-bit MAC address',
    },
  ])('config set refuses a bad range ($name) with the reason and what is allowed; nothing is written', async (c) => {
    const before = { rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:ff' };
    await seed(db(), { 'config/kubeMacPoolConfiguration': before });
    const r = await macpool(['config', 'set', '--range-start', c.start, '--range-end', c.end, '--opt-mode', 'opt-in']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(errorLines(r.stderr)).toEqual([expect.stringContaining(c.reason)]);
    expect(r.stderr).toContain('allowed: two 48-bit unicast MACs');
    expect(await data(db(), 'config/kubeMacPoolConfiguration')).toEqual(before);
    expect(await data(db(), 'config/settings')).toBeUndefined(); // all or nothing
  });

  it('config set writes a range outside the locally administered space, with the warning on stderr', async () => {
    const r = await macpool([
      'config',
      'set',
      '--range-start',
      '00:50:56:00:00:00',
      '--range-end',
      '00:50:56:00:00:ff',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: range 00:50:56:00:00:00-00:50:56:00:00:ff is not in the locally administered');
    expect(await data(db(), 'config/kubeMacPoolConfiguration')).toMatchObject({ rangeStart: '00:50:56:00:00:00' });
  });

  it('the function serves the range that config set wrote', async () => {
    const project = newProject();
    expect(
      (
        await macpool(['config', 'set', '--range-start', '0e:00:00:00:00:07', '--range-end', '0e:00:00:00:00:07'], {
          project,
        })
      ).code,
    ).toBe(0);
    const h = await startFunction({ projectId: project });
    try {
      const req = review('CREATE', vm('served', 'lab', [{ name: 'default' }]));
      const res = await h.post(MUTATE, req);
      expect(macsOf(mutated(req, res.body)).default).toBe('0e:00:00:00:00:07');
    } finally {
      await h.close();
    }
  });

  it('config set writes any subset of the settings, validated, keeping the other fields; config get settings shows them', async () => {
    const project = newProject();
    await seed(testDb(project), { 'config/settings': { waitTimeSeconds: 120 } });
    const r = await macpool(
      ['config', 'set', '--opt-mode', 'opt-in', '--pod-opt-mode', 'opt-out', '--cooldown-seconds', '0'],
      { project },
    );
    expect(r).toMatchObject({
      code: 0,
      stdout: 'config/settings: optMode=opt-in podOptMode=opt-out cooldownSeconds=0\n',
    });
    expect(await data(testDb(project), 'config/settings')).toEqual({
      optMode: 'opt-in',
      podOptMode: 'opt-out',
      cooldownSeconds: 0,
      waitTimeSeconds: 120,
    });
    const get = await macpool(['config', 'get', 'settings'], { project });
    expect(JSON.parse(get.stdout)).toEqual({
      optMode: 'opt-in',
      podOptMode: 'opt-out',
      cooldownSeconds: 0,
      waitTimeSeconds: 120,
      releaseGuardPercent: 10,
    });
    const json = await macpool(['config', 'set', '--wait-time-seconds', '30', '-o', 'json'], { project });
    expect(JSON.parse(json.stdout)).toEqual({ settings: { waitTimeSeconds: 30 }, warnings: [] });
  });

  it.each([
    { name: 'cool-down too long', args: ['--cooldown-seconds', '604801'], reason: 'cooldownSeconds: Too big' },
    { name: 'wait time too short', args: ['--wait-time-seconds', '29'], reason: 'waitTimeSeconds: Too small' },
  ])('config set refuses invalid settings ($name) with SettingsSchema reason; nothing is written', async (c) => {
    const project = newProject();
    const r = await macpool(['config', 'set', '--opt-mode', 'opt-in', ...c.args], { project });
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual([expect.stringContaining(`config/settings: ${c.reason}`)]);
    expect(await data(testDb(project), 'config/settings')).toBeUndefined();
  });
});

describe('macpool namespace', () => {
  const project = newProject();
  const db = () => testDb(project);
  const nsDoc = async (cluster: string, ns: string) => data(db(), `clusters/${cluster}/namespaces/${ns}`);

  it('ignore, allocate, reset: write the whole labels map the function reads, keeping other labels', async () => {
    await seed(db(), { 'clusters/east/namespaces/lab-a': { labels: { team: 'a' }, other: 1 } });
    const ignore = await macpool(['namespace', 'ignore', 'lab-a', 'lab-b', '--cluster', 'east'], { project });
    expect(ignore.code).toBe(0);
    expect(ignore.stdout).toBe('NAMESPACE  LABEL   SERVED\nlab-a      ignore  no\nlab-b      ignore  no\n');
    expect(await nsDoc('east', 'lab-a')).toEqual({
      labels: { team: 'a', [OPT_LABEL]: 'ignore' },
      digest: expect.any(Number),
      other: 1,
    });
    expect(await nsDoc('east', 'lab-b')).toEqual({ labels: { [OPT_LABEL]: 'ignore' }, digest: expect.any(Number) });

    expect((await macpool(['namespace', 'allocate', 'lab-a', '--cluster', 'east'], { project })).code).toBe(0);
    expect(await nsDoc('east', 'lab-a')).toEqual({
      labels: { team: 'a', [OPT_LABEL]: 'allocate' },
      digest: expect.any(Number),
      other: 1,
    });

    const reset = await macpool(['namespace', 'reset', 'lab-a', 'lab-b', '--cluster', 'east', '-o', 'json'], {
      project,
    });
    expect(JSON.parse(reset.stdout)).toEqual({
      cluster: 'east',
      optMode: 'opt-out',
      namespaces: [
        { namespace: 'lab-a', label: null, managed: true },
        { namespace: 'lab-b', label: null, managed: true },
      ],
    });
    expect(await nsDoc('east', 'lab-a')).toEqual({ labels: { team: 'a' }, digest: expect.any(Number), other: 1 });
    expect(await nsDoc('east', 'lab-b')).toEqual({ labels: {}, digest: expect.any(Number) });
    for (const ns of ['lab-a', 'lab-b'])
      expect(NamespaceDocSchema.safeParse(await nsDoc('east', ns)).success).toBe(true);
  });

  it('--pods: allocate sets the pod label beside the VM label; list --pods shows what podOptMode serves (M4)', async () => {
    await seed(db(), { 'clusters/east/namespaces/pods-a': { labels: { [OPT_LABEL]: 'ignore' } } });
    const r = await macpool(['namespace', 'allocate', 'pods-a', 'pods-b', '--cluster', 'east', '--pods'], { project });
    expect(r).toMatchObject({
      code: 0,
      stdout: 'NAMESPACE  LABEL     SERVED\npods-a     allocate  yes\npods-b     allocate  yes\n',
    });
    expect(await nsDoc('east', 'pods-a')).toEqual({
      labels: { [OPT_LABEL]: 'ignore', 'mutatepods.kubemacpool.io': 'allocate' },
      digest: expect.any(Number),
    });
    // The VM view of the same namespace is unchanged: still ignored for VMs.
    const list = JSON.parse(
      (await macpool(['namespace', 'list', '--cluster', 'east', '-o', 'json'], { project })).stdout,
    );
    expect(list.namespaces.find((n: any) => n.namespace === 'pods-a')).toEqual({
      namespace: 'pods-a',
      label: 'ignore',
      managed: false,
    });
    const pods = await macpool(['namespace', 'list', '--cluster', 'east', '--pods'], { project });
    expect(pods.stderr).toBe('cluster east, opt-in mode: namespaces without a document are not served\n');
    expect(pods.stdout).toMatch(/^pods-a\s+allocate\s+yes$/m);
  });

  it('namespace ignore (default cluster): the function then leaves the namespace alone (V9)', async () => {
    const r = await macpool(['namespace', 'ignore', 'quiet'], { project });
    expect(r.code).toBe(0);
    const labels = NamespaceDocSchema.parse(await nsDoc('default', 'quiet')).labels;
    expect(namespaceManaged(labels, 'opt-out')).toBe(false);
    const h = await startFunction({ projectId: project });
    try {
      const res = await h.post(MUTATE, review('CREATE', vm('skipped', 'quiet', [{ name: 'default' }])));
      expect(res.body.response.allowed).toBe(true);
      expect(patchOf(res.body)).toEqual([]);
      expect([...(await claims(h.db)).values()].filter((c) => c.namespace === 'quiet')).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it.each([
    { mode: 'opt-out', served: { keep: 'yes', off: 'no', on: 'yes' } },
    { mode: 'opt-in', served: { keep: 'no', off: 'no', on: 'yes' } },
  ])('namespace list: the opt label and whether the pool serves each namespace in $mode mode', async (c) => {
    const p = newProject();
    await seed(testDb(p), {
      'config/settings': { optMode: c.mode },
      'clusters/west/namespaces/keep': { labels: {} },
      'clusters/west/namespaces/off': { labels: { [OPT_LABEL]: 'ignore' } },
      'clusters/west/namespaces/on': { labels: { [OPT_LABEL]: 'allocate' } },
      'clusters/default/namespaces/elsewhere': { labels: {} },
    });
    const r = await macpool(['namespace', 'list', '--cluster', 'west'], { project: p });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'NAMESPACE  LABEL     SERVED\n' +
        `keep       -         ${c.served.keep}\n` +
        `off        ignore    ${c.served.off}\n` +
        `on         allocate  ${c.served.on}\n`,
    );
    expect(r.stderr).toContain(`${c.mode} mode`);
    const json = JSON.parse(
      (await macpool(['namespace', 'list', '--cluster', 'west', '-o', 'json'], { project: p })).stdout,
    );
    expect(json.namespaces.map((n: any) => [n.namespace, n.managed])).toEqual([
      ['keep', c.served.keep === 'yes'],
      ['off', c.served.off === 'yes'],
      ['on', c.served.on === 'yes'],
    ]);
  });
});

describe('macpool status', () => {
  // A 256-MAC range with 10 pending, 20 bound, 5 released cooling down, 3 released past the cool-down and one
  // claim with a state of no known kind; outside it, 2 bound claims and 1 released.
  const project = newProject();
  beforeAll(async () => {
    const now = Date.now();
    const docs: Record<string, Record<string, unknown>> = {
      'config/kubeMacPoolConfiguration': { rangeStart: '02:00:00:00:05:00', rangeEnd: '02-00-00-00-05-FF' },
    };
    const at = (i: number) => `02:00:00:00:05:${i.toString(16).padStart(2, '0')}`;
    const put = (mac: string, doc: Record<string, unknown>) => (docs[`macs/${mac}`] = doc);
    for (let i = 0; i < 10; i++) put(at(i), claim(at(i), 'pending'));
    for (let i = 10; i < 30; i++) put(at(i), claim(at(i), 'bound'));
    for (let i = 30; i < 35; i++) put(at(i), claim(at(i), 'released', { releasedAt: new Date(now - 60_000) }));
    for (let i = 35; i < 38; i++) put(at(i), claim(at(i), 'released', { releasedAt: new Date(now - 3_600_000) }));
    put(at(0xff), { mac: at(0xff), state: 'edited-by-hand' });
    put('02:00:00:00:04:ff', claim('02:00:00:00:04:ff', 'bound')); // just below the range
    put('02:00:00:00:06:00', claim('02:00:00:00:06:00', 'bound')); // just above
    put('0a:00:00:00:00:01', claim('0a:00:00:00:00:01', 'released', { releasedAt: new Date(now - 60_000) }));
    await seed(testDb(project), docs);
  });

  it('prints exact figures for people', async () => {
    const r = await macpool(['status'], { project });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `project       ${project} on the Firestore emulator at ${emulatorHost()}`,
        'range         02:00:00:00:05:00-02:00:00:00:05:ff (256 MACs)',
        'usable        256',
        'claimed       30 (pending 10, bound 20)',
        'released      8 (cooling down 5, past the 600 s cool-down 3)',
        'unreadable    1 (claims with an unknown state: taken)',
        'free          220',
        'utilization   14.06%',
        'claims        42 (pending 10, bound 22, released 9, unknown state 1)',
        'unconfirmed   0',
        'outside pool  3',
        '',
      ].join('\n'),
    );
  });

  it('-o json: the same figures for scripts', async () => {
    const r = await macpool(['status', '-o', 'json'], { project });
    expect(JSON.parse(r.stdout)).toEqual({
      project,
      emulatorHost: emulatorHost(),
      ranges: [{ start: '02:00:00:00:05:00', end: '02:00:00:00:05:ff', size: 256, multicast: 0, universal: 0 }],
      excluded: [],
      usable: 256,
      rangeWarnings: [],
      cooldownSeconds: 600,
      inPool: { pending: 10, bound: 20, released: 8, coolingDown: 5, other: 1, total: 39 },
      claimed: 30,
      free: 220,
      utilizationPercent: 14.06,
      claims: { pending: 10, bound: 22, released: 9, other: 1, total: 42 },
      unconfirmedReleases: 0,
      outsidePool: 3,
    });
  });

  it('counts the releases the cluster has not confirmed yet (U6)', async () => {
    const p = newProject();
    const released = (mac: string, extra: Record<string, unknown>) =>
      claim(mac, 'released', { releasedAt: new Date(Date.now() - 60_000), ...extra });
    await seed(testDb(p), {
      'macs/02:00:00:00:00:01': released('02:00:00:00:00:01', { releasedBy: 'DELETE', unsettled: true }),
      'macs/02:00:00:00:00:02': released('02:00:00:00:00:02', { releasedBy: 'UPDATE', unsettled: true }),
      'macs/02:00:00:00:00:03': released('02:00:00:00:00:03', {
        releasedBy: 'DELETE',
        releaseConfirmedAt: new Date(),
        unsettled: false,
      }),
      'macs/02:00:00:00:00:04': claim('02:00:00:00:00:04', 'pending', { unsettled: true }),
    });
    const r = await macpool(['status'], { project: p });
    expect(r.stdout).toContain('\nunconfirmed   2 (released, not yet shown gone by the cluster:');
    expect(JSON.parse((await macpool(['status', '-o', 'json'], { project: p })).stdout)).toMatchObject({
      unconfirmedReleases: 2,
    });
  });

  it('a longer cool-down from config/settings moves released claims from free to cooling down', async () => {
    const p = newProject();
    const now = Date.now();
    await seed(testDb(p), {
      'config/kubeMacPoolConfiguration': { rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:03' },
      'config/settings': { cooldownSeconds: 7200 },
      'macs/02:00:00:00:00:01': claim('02:00:00:00:00:01', 'released', { releasedAt: new Date(now - 3_600_000) }),
    });
    const status = JSON.parse((await macpool(['status', '-o', 'json'], { project: p })).stdout);
    expect(status).toMatchObject({ free: 3, utilizationPercent: 25, inPool: { coolingDown: 1, released: 1 } });
  });

  it('an invalid stored range is a failure naming the Firestore, the document and the reason', async () => {
    const p = newProject();
    await seed(testDb(p), {
      'config/kubeMacPoolConfiguration': { rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:01' },
    });
    const r = await macpool(['status'], { project: p });
    expect(r.code).toBe(1);
    const where = `${p} on the Firestore emulator at ${emulatorHost()}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(errorLines(r.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(`^error: ${where}: config/kubeMacPoolConfiguration: rangeStart .* is greater than rangeEnd`),
      ),
    ]);
  });
});

// Read-only or self-contained tests: they run side by side.
describe.concurrent('macpool claims', () => {
  const project = newProject();
  const db = () => testDb(project);
  const macs = {
    a: '02:00:00:00:0c:01',
    b: '02:00:00:00:0c:02',
    c: '02:00:00:00:0c:03',
    d: '02:00:00:00:0c:04',
    e: '02:00:00:00:0c:05',
    f: '02:00:00:00:0c:06',
  };
  beforeAll(async () => {
    await seed(db(), {
      'config/settings': { cooldownSeconds: 120 },
      [`macs/${macs.a}`]: claim(macs.a, 'bound', { cluster: 'east', namespace: 'web', name: 'web-1' }),
      [`macs/${macs.b}`]: claim(macs.b, 'bound', { cluster: 'east', namespace: 'web', name: 'web-1', interface: 'n2' }),
      [`macs/${macs.c}`]: claim(macs.c, 'pending', { cluster: 'east', namespace: 'db', name: '' }),
      [`macs/${macs.d}`]: claim(macs.d, 'pending', { cluster: 'west', namespace: 'web', name: 'web-1' }),
      [`macs/${macs.e}`]: { mac: macs.e, state: 'bound', cluster: 'west' }, // edited by hand into a wrong shape
      // A pod named like a VM; the others carry no kind, as claims written before pods were served.
      [`macs/${macs.f}`]: claim(macs.f, 'bound', { cluster: 'east', namespace: 'pods', name: 'web-1', kind: 'pod' }),
    });
  });

  it.each([
    { name: 'no filter', args: [], expected: ['a', 'b', 'c', 'd', 'e', 'f'] },
    { name: 'cluster', args: ['--cluster', 'east'], expected: ['a', 'b', 'c', 'f'] },
    { name: 'namespace', args: ['--namespace', 'web'], expected: ['a', 'b', 'd'] },
    { name: 'cluster and VM', args: ['--cluster', 'east', '--vm', 'web-1'], expected: ['a', 'b'] },
    { name: 'cluster and pod', args: ['--cluster', 'east', '--pod', 'web-1'], expected: ['f'] },
    { name: 'kind pod', args: ['--kind', 'pod'], expected: ['f'] },
    { name: 'kind vm (claims without a kind are VMs)', args: ['--kind', 'vm'], expected: ['a', 'b', 'c', 'd', 'e'] },
    { name: 'kind vm, at most 2', args: ['--kind', 'vm', '--limit', '2'], expected: ['a', 'b'] },
    { name: 'state', args: ['--state', 'pending'], expected: ['c', 'd'] },
    {
      name: 'all of them',
      args: ['--cluster', 'west', '--namespace', 'web', '--vm', 'web-1', '--state', 'pending'],
      expected: ['d'],
    },
    { name: 'nothing matches', args: ['--state', 'released'], expected: [] },
  ])('claims list filters by $name, in MAC order', async ({ args, expected }) => {
    const r = await macpool(['claims', 'list', ...args, '-o', 'json'], { project });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).map((c: any) => c.mac)).toEqual(expected.map((k) => macs[k as keyof typeof macs]));
  });

  it('claims list prints a table for people, and the claims that do not parse as such', async () => {
    const r = await macpool(['claims', 'list', '--namespace', 'web'], { project });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^MAC\s+STATE\s+CLUSTER\s+NAMESPACE\s+KIND\s+NAME\s+INTERFACE\s+ORIGIN\s+UPDATED$/);
    expect(lines[1]).toMatch(
      /^02:00:00:00:0c:01\s+bound\s+east\s+web\s+vm\s+web-1\s+default\s+allocated\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    const pods = await macpool(['claims', 'list', '--kind', 'pod'], { project });
    expect(pods.stdout).toMatch(/^02:00:00:00:0c:06\s+bound\s+east\s+pods\s+pod\s+web-1\s/m);
    expect(lines).toHaveLength(4);
    const all = await macpool(['claims', 'list', '--cluster', 'west'], { project });
    expect(all.stdout).toMatch(/02:00:00:00:0c:05\s+\(invalid\)\s+west/);
    const empty = await macpool(['claims', 'list', '--state', 'released'], { project });
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: 'no claims match\n' });
  });

  it('claims list -o json: the documents with RFC 3339 times; a broken claim names its problem', async () => {
    const r = await macpool(['claims', 'list', '--cluster', 'east', '--state', 'pending', '-o', 'json'], { project });
    expect(JSON.parse(r.stdout)).toEqual([
      {
        ...claim(macs.c, 'pending', { cluster: 'east', namespace: 'db', name: '' }),
        kind: 'vm',
        createdAt: expect.stringMatching(/Z$/),
        updatedAt: expect.stringMatching(/Z$/),
      },
    ]);
    const broken = JSON.parse(
      (await macpool(['claims', 'list', '--cluster', 'west', '-o', 'json'], { project })).stdout,
    );
    expect(broken[1]).toEqual({ mac: macs.e, problem: expect.stringContaining('namespace:') });
  });

  it('claims list --limit lists that many and says how many match', async () => {
    const r = await macpool(['claims', 'list', '--limit', '2', '-o', 'json'], { project });
    expect(JSON.parse(r.stdout)).toHaveLength(2);
    expect(r.stderr).toBe('showing 2 of 6 matching claims; raise --limit to see more\n');
    // VM claims: those without a kind counted too, the pod's not.
    const vms = await macpool(['claims', 'list', '--kind', 'vm', '--limit', '2', '-o', 'json'], { project });
    expect(vms.stderr).toBe('showing 2 of 5 matching claims; raise --limit to see more\n');
    const contradiction = await macpool(['claims', 'list', '--kind', 'pod', '--vm', 'web-1'], { project });
    expect(contradiction.code).toBe(2);
    expect(contradiction.stderr).toContain('--kind pod contradicts --vm');
  });
});

describe('macpool config: several ranges and exclusions (C6)', () => {
  it('--add-range and --exclude write the lists, config get keeps its shape, --all shows the lists, status counts the usable set', async () => {
    const project = newProject();
    const db = testDb(project);
    await seed(db, {
      'config/kubeMacPoolConfiguration': {
        rangeStart: '02:00:00:00:00:00',
        rangeEnd: '02:00:00:00:00:0f',
        note: 'kept',
      },
      'macs/02:00:00:00:00:01': claim('02:00:00:00:00:01', 'bound'),
      'macs/02:00:00:00:00:09': claim('02:00:00:00:00:09', 'bound'), // excluded below: outside the pool now
    });
    const set = await macpool(
      [
        'config',
        'set',
        '--add-range',
        '0a-00-00-00-00-00-0a-00-00-00-00-0f',
        '--exclude',
        '02:00:00:00:00:08-02:00:00:00:00:0b',
        '--exclude',
        '0a00.0000.0003',
      ],
      { project },
    );
    expect(set).toMatchObject({ code: 0 });
    expect(set.stdout).toBe(
      [
        'config/kubeMacPoolConfiguration: additionalRanges + 0a-00-00-00-00-00-0a-00-00-00-00-0f',
        'config/kubeMacPoolConfiguration: excludedRanges + 02:00:00:00:00:08-02:00:00:00:00:0b',
        'config/kubeMacPoolConfiguration: excludedRanges + 0a00.0000.0003',
        '',
      ].join('\n'),
    );
    expect(await data(db, 'config/kubeMacPoolConfiguration')).toMatchObject({
      rangeStart: '02:00:00:00:00:00',
      note: 'kept',
      additionalRanges: [{ rangeStart: '0a-00-00-00-00-00', rangeEnd: '0a-00-00-00-00-0f' }],
      excludedRanges: [
        { rangeStart: '02:00:00:00:00:08', rangeEnd: '02:00:00:00:00:0b' },
        { rangeStart: '0a00.0000.0003', rangeEnd: '0a00.0000.0003' },
      ],
    });
    const get = await macpool(['config', 'get'], { project });
    expect(get).toMatchObject({
      code: 0,
      stdout: '{"rangeStart":"02:00:00:00:00:00","rangeEnd":"02:00:00:00:00:0f"}\n',
    });
    const all = await macpool(['config', 'get', '--all'], { project });
    expect(JSON.parse(all.stdout)).toEqual({
      rangeStart: '02:00:00:00:00:00',
      rangeEnd: '02:00:00:00:00:0f',
      additionalRanges: [{ rangeStart: '0a-00-00-00-00-00', rangeEnd: '0a-00-00-00-00-0f' }],
      excludedRanges: [
        { rangeStart: '02:00:00:00:00:08', rangeEnd: '02:00:00:00:00:0b' },
        { rangeStart: '0a00.0000.0003', rangeEnd: '0a00.0000.0003' },
      ],
    });
    expect(all.stderr).toContain('27 usable MACs');
    // -o json shows the whole document as well.
    const json = await macpool(['-o', 'json', 'config', 'get'], { project });
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(all.stdout));
    const status = JSON.parse((await macpool(['status', '-o', 'json'], { project })).stdout);
    expect(status).toMatchObject({
      usable: 16 + 16 - 4 - 1,
      ranges: [
        { start: '02:00:00:00:00:00', end: '02:00:00:00:00:0f', size: 16 },
        { start: '0a:00:00:00:00:00', end: '0a:00:00:00:00:0f', size: 16 },
      ],
      excluded: [
        { start: '02:00:00:00:00:08', end: '02:00:00:00:00:0b', size: 4 },
        { start: '0a:00:00:00:00:03', end: '0a:00:00:00:00:03', size: 1 },
      ],
      claimed: 1,
      free: 26,
      outsidePool: 1,
    });
    const text = (await macpool(['status'], { project })).stdout;
    expect(text).toContain(
      'ranges        02:00:00:00:00:00-02:00:00:00:00:0f (16 MACs)\n              0a:00:00:00:00:00-',
    );
    expect(text).toContain(
      'excluded      02:00:00:00:00:08-02:00:00:00:00:0b (4 MACs)\n              0a:00:00:00:00:03\n',
    );
    expect(text).toContain('usable        27\n');

    // Removal matches the MACs, whatever the spelling; what is not listed is an error naming what is.
    const removed = await macpool(
      ['config', 'set', '--remove-range', '0a:00:00:00:00:00-0a:00:00:00:00:0f', '--unexclude', '0a:00:00:00:00:03'],
      { project },
    );
    expect(removed.code).toBe(0);
    expect(await data(db, 'config/kubeMacPoolConfiguration')).toMatchObject({
      additionalRanges: [],
      excludedRanges: [{ rangeStart: '02:00:00:00:00:08', rangeEnd: '02:00:00:00:00:0b' }],
    });
    const missing = await macpool(['config', 'set', '--unexclude', '02:00:00:00:00:0e'], { project });
    expect(missing.code).toBe(1);
    expect(errorLines(missing.stderr)).toEqual([
      'error: excludedRanges has no range 02:00:00:00:00:0e; it lists 02:00:00:00:00:08-02:00:00:00:00:0b',
    ]);
  });

  it('refuses an invalid entry with its reason, writing nothing of the change', async () => {
    const project = newProject();
    const db = testDb(project);
    const before = { rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:0f' };
    await seed(db, { 'config/kubeMacPoolConfiguration': before });
    const r = await macpool(
      ['config', 'set', '--exclude', '02:00:00:00:00:01', '--add-range', '0a:00:00:00:00:00-0b:00:00:00:00:00'],
      { project },
    );
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual([
      expect.stringContaining('additionalRanges[0].rangeEnd 0b:00:00:00:00:00 is a multicast address'),
    ]);
    expect(await data(db, 'config/kubeMacPoolConfiguration')).toEqual(before);
  });

  it.each([
    { value: '02:00:00:00:00', message: 'expected a range START-END of two 48-bit MACs' },
    { value: '02:00:00:00:00:00-', message: 'expected a range START-END' },
    { value: '02:00:00:00:00:00..02:00:00:00:00:01', message: 'expected a range START-END' },
  ])('a range the parser refuses ($value) is a usage error', async ({ value, message }) => {
    const r = await macpool(['config', 'set', '--exclude', value], { project: newProject() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('status warns how many MACs of a wide range are never handed out, and why', async () => {
    const project = newProject();
    await seed(testDb(project), {
      'config/kubeMacPoolConfiguration': { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FC:FF:FF:FF:FF:FF' },
    });
    const r = await macpool(['status', '-o', 'json'], { project });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      usable: 42 * 2 ** 40,
      ranges: [{ start: 'aa:00:00:00:00:00', end: 'fc:ff:ff:ff:ff:ff', multicast: 41 * 2 ** 40, universal: 0 }],
    });
    expect(r.stderr).toContain(
      'warning: 45079976738816 of the 91259465105408 MACs of range aa:00:00:00:00:00-fc:ff:ff:ff:ff:ff are multicast',
    );
  });
});

describe('macpool claims release', () => {
  const project = newProject();
  const db = () => testDb(project);
  const doc = (mac: string) => data(db(), `macs/${mac}`);
  beforeAll(async () => {
    await seed(db(), { 'config/settings': { cooldownSeconds: 120 } });
  });

  it.each([
    { name: 'colon', mac: '02:00:00:00:0d:01', arg: '02:00:00:00:0d:01' },
    { name: 'dash, upper case', mac: '02:00:00:00:0d:0a', arg: '02-00-00-00-0D-0A' },
    { name: 'dotted', mac: '02:00:00:00:0d:0b', arg: '0200.0000.0d0b' },
  ])(
    'releases a claim ($name) with the cool-down of config/settings, warning that its VM may still use it',
    async (c) => {
      await seed(db(), { [`macs/${c.mac}`]: claim(c.mac, 'bound', { uid: 'uid-1', namespace: 'web', name: 'web-1' }) });
      const before = Date.now();
      const r = await macpool(['claims', 'release', c.arg], { project });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^released ${c.mac}; automatic allocation may hand it out from \\S+Z\\n$`));
      expect(r.stderr).toContain('warning: the claim belonged to VM web/web-1 of cluster default (bound)');
      const after = await doc(c.mac);
      const parsed = ClaimDocSchema.parse(after);
      expect(parsed).toMatchObject({ state: 'released', name: 'web-1', uid: 'uid-1', interface: 'default' });
      expect(parsed.releasedAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(parsed.expireAt!.getTime() - parsed.releasedAt!.getTime()).toBe(120_000);
      expect(parsed.requestUid).toMatch(/^macpool-cli-/);
    },
  );

  it('--now ends the cool-down at once: the function hands the MAC out to the next VM', async () => {
    const p = newProject();
    const mac = '02:00:00:00:0d:ff';
    await seed(testDb(p), {
      'config/kubeMacPoolConfiguration': { rangeStart: mac, rangeEnd: mac },
      [`macs/${mac}`]: claim(mac, 'pending'),
    });
    const r = await macpool(['claims', 'release', mac, '--now', '-o', 'json'], { project: p });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ mac, state: 'released', changed: true });
    expect(Date.parse(out.freeAt)).toBeLessThanOrEqual(Date.now());
    const parsed = ClaimDocSchema.parse(await data(testDb(p), `macs/${mac}`));
    const snapshot = { data: parsed, version: {} as Version };
    expect(freeForAllocation(snapshot, new Date(), 600_000)).toBe(true); // default cool-down
    const h = await startFunction({ projectId: p });
    try {
      const req = review('CREATE', vm('next', 'lab', [{ name: 'default' }]));
      const res = await h.post(MUTATE, req);
      expect(macsOf(mutated(req, res.body)).default).toBe(mac);
    } finally {
      await h.close();
    }
  });

  it('a claim already released stays as it is, and the command says when the MAC is free', async () => {
    const mac = '02:00:00:00:0d:20';
    await seed(db(), { [`macs/${mac}`]: claim(mac, 'released', { releasedAt: new Date(Date.now() - 60_000) }) });
    const before = await db().doc(`macs/${mac}`).get();
    const r = await macpool(['claims', 'release', mac], { project });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/is already released; automatic allocation may hand it out from/);
    expect((await db().doc(`macs/${mac}`).get()).updateTime?.isEqual(before.updateTime!)).toBe(true);
  });

  it('an unconfirmed release (an admitted DELETE): without --now it says how to confirm; --now confirms it for others', async () => {
    const p = newProject();
    const mac = '02:00:00:00:0d:40';
    await seed(testDb(p), {
      [`macs/${mac}`]: claim(mac, 'released', {
        releasedAt: new Date(Date.now() - 60_000),
        releasedBy: 'DELETE',
        uid: 'uid-gone',
        namespace: 'web',
        name: 'web-1',
      }),
    });
    const plain = await macpool(['claims', 'release', mac], { project: p });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(
      new RegExp(
        `^${mac} is already released by a DELETE, not yet confirmed: the cluster has not shown its VM without it, ` +
          `so other explicit requests are refused until \\S+Z; if it is gone, confirm with: macpool claims release ${mac} --now\\n$`,
      ),
    );
    const h = await startFunction({ projectId: p });
    try {
      const pinned = () =>
        h.post(MUTATE, review('CREATE', vm('next', 'lab', [{ name: 'nic', network: 'multus', mac }])));
      expect((await pinned()).body.response.allowed).toBe(false);
      const now = await macpool(['claims', 'release', mac, '--now'], { project: p });
      expect(now.code).toBe(0);
      expect(ClaimDocSchema.parse(await data(testDb(p), `macs/${mac}`))).toMatchObject({
        releasedBy: 'operator',
        releaseConfirmedAt: expect.any(Date),
      });
      expect((await pinned()).body.response.allowed).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('an unknown MAC is a failure with a clear message, and nothing is written', async () => {
    const r = await macpool(['claims', 'release', '02:00:00:00:0d:99'], { project });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${writingTo(project)}\n` +
        'error: no claim for MAC 02:00:00:00:0d:99: nothing to release (macpool claims list shows the claims)\n',
    );
    expect(await doc('02:00:00:00:0d:99')).toBeUndefined();
  });

  it('a claim document that does not parse is not touched', async () => {
    const mac = '02:00:00:00:0d:30';
    await seed(db(), { [`macs/${mac}`]: { mac, state: 'bound' } });
    const r = await macpool(['claims', 'release', mac], { project });
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual([expect.stringContaining(`the claim document macs/${mac} does not parse`)]);
    expect(await doc(mac)).toEqual({ mac, state: 'bound' });
  });

  it('the release is guarded by the version read: a claim changed meanwhile is left alone (conflict)', async () => {
    const mac = '02:00:00:00:0d:40';
    await seed(db(), { [`macs/${mac}`]: claim(mac, 'pending') });
    const snap = await db().doc(`macs/${mac}`).get();
    // An admission rewrites the claim between the read and the commit.
    await db().doc(`macs/${mac}`).update({ state: 'bound', uid: 'uid-new', updatedAt: new Date() });
    const outcome = await commitClaimRelease(
      new Store(db()),
      ClaimDocSchema.parse(snap.data()),
      snap.updateTime as unknown as Version,
      120,
      { now: new Date(), immediate: false },
    );
    expect(outcome).toEqual({ kind: 'conflict', mac });
    expect(releaseFailureMessage({ kind: 'conflict', mac })).toBe(
      `the claim for MAC ${mac} changed while it was being released; nothing was written, run the command again`,
    );
    expect(await doc(mac)).toMatchObject({ state: 'bound', uid: 'uid-new' });
  });
});

describe('macpool reconcile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'macpool-cli-'));
  const file = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  /** What `kubectl get virtualmachines[,namespaces] -A -o json` prints. */
  const list = (items: unknown[]) => ({ apiVersion: 'v1', kind: 'List', items, metadata: { resourceVersion: '' } });
  const namespace = (name: string, labels: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels },
  });
  const stored = (name: string, ns: string, mac: string) =>
    vm(name, ns, [{ name: 'default', mac }], { uid: `uid-${name}` });

  it('-f FILE: binds, releases, heals, reports collisions as MAC <mac>: <vm>, <vm>, and exits 0', async () => {
    const project = newProject();
    await seed(testDb(project), {
      'macs/02:00:00:00:0e:01': claim('02:00:00:00:0e:01', 'pending', { namespace: 'r', name: 'a' }),
      'macs/02:00:00:00:0e:09': claim('02:00:00:00:0e:09', 'pending', { namespace: 'r', name: 'ghost' }),
    });
    const inventory = file(
      'vms.json',
      list([
        stored('a', 'r', '02:00:00:00:0e:01'),
        stored('bypassed', 'r', '02:00:00:00:0e:02'),
        stored('twin-a', 'r', '02:00:00:00:0e:03'),
        stored('twin-b', 'r', '02-00-00-00-0E-03'),
      ]),
    );
    const r = await macpool(['reconcile', '-f', inventory], { project });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^reconciled 4 VMs of cluster default against \d+ claims in [\d.]+ s$/m);
    for (const line of ['bound       1', 'released    1', 'healed      2', 'collisions  1']) {
      expect(r.stdout).toMatch(new RegExp(`^${line}$`, 'm'));
    }
    expect(r.stdout).toMatch(/^MAC 02:00:00:00:0e:03: r\/twin-a, r\/twin-b$/m);
    // The structured collision line (log-based metrics), and no progress bar: stderr is not a terminal.
    const logs = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    expect(logs).toEqual([expect.objectContaining({ event: 'mac-collision', mac: '02:00:00:00:0e:03' })]);
    expect(r.stderr).not.toContain('reconcile [');
    const docs = await claims(testDb(project));
    expect(docs.get('02:00:00:00:0e:01')).toMatchObject({ state: 'bound', uid: 'uid-a' });
    expect(docs.get('02:00:00:00:0e:09')).toMatchObject({ state: 'released' });
    expect(docs.get('02:00:00:00:0e:02')).toMatchObject({ state: 'bound', origin: 'healed', name: 'bypassed' });
  });

  it('-f - reads stdin; VMs with namespaces (one List) update the namespace documents; -o json is the report', async () => {
    const project = newProject();
    const stdin = JSON.stringify(
      list([
        stored('web', 'shop', '02:00:00:00:0e:11'),
        stored('skip', 'quiet', '02:00:00:00:0e:12'),
        namespace('shop'),
        namespace('quiet', { [OPT_LABEL]: 'ignore' }),
      ]),
    );
    const r = await macpool(['reconcile', '-f', '-', '--cluster', 'east', '-o', 'json'], { project, stdin });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      vms: 2,
      healed: 1,
      namespaces: 2,
      collisions: [],
      problems: [],
      durationMs: expect.any(Number),
    });
    const db = testDb(project);
    expect(await data(db, 'clusters/east/namespaces/quiet')).toEqual({
      labels: { [OPT_LABEL]: 'ignore' },
      digest: expect.any(Number),
    });
    expect((await claims(db)).get('02:00:00:00:0e:12')).toBeUndefined(); // an ignored namespace is not healed

    // Idempotent: the same inventory again changes nothing.
    const again = await macpool(['reconcile', '-f', '-', '--cluster', 'east', '-o', 'json'], { project, stdin });
    expect(JSON.parse(again.stdout)).toMatchObject({ healed: 0, bound: 0, released: 0, unchanged: 1, namespaces: 0 });
  });

  it('R8: an empty inventory releases no bound claim (exit 1, the report printed); --dry-run writes nothing; --force writes', async () => {
    const project = newProject();
    const db = testDb(project);
    await seed(db, {
      'macs/02:00:00:00:0e:31': claim('02:00:00:00:0e:31', 'bound', { name: 'kept', uid: 'uid-kept' }),
      'macs/02:00:00:00:0e:32': claim('02:00:00:00:0e:32', 'released', {
        name: 'gone',
        releasedBy: 'DELETE',
        releasedAt: new Date(Date.now() - 3_600_000),
      }),
    });
    const empty = file('empty.json', list([]));
    const refused = await macpool(['reconcile', '-f', empty], { project });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^released {4}1$/m);
    expect(refused.stdout).toContain('refused, nothing written: the inventory lists no VirtualMachine');
    expect(errorLines(refused.stderr)).toEqual([expect.stringContaining('error: reconcile refused, nothing written')]);
    expect((await claims(db)).get('02:00:00:00:0e:31')).toMatchObject({ state: 'bound' });
    expect((await claims(db)).get('02:00:00:00:0e:32')?.releaseConfirmedAt).toBeUndefined();

    const listed = await macpool(['claims', 'list'], { project });
    expect(listed.stdout).toMatch(/^02:00:00:00:0e:32 {2}released \(unconfirmed DELETE\) /m);

    const inventory = file('kept.json', list([stored('kept', 'lab', '02:00:00:00:0e:31')]));
    const dry = await macpool(['reconcile', '-f', inventory, '--dry-run', '-o', 'json'], { project });
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ confirmed: 1, unchanged: 1, wrote: false });
    expect((await claims(db)).get('02:00:00:00:0e:32')?.releaseConfirmedAt).toBeUndefined();

    const forced = await macpool(['reconcile', '-f', empty, '--force', '-o', 'json'], { project });
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ released: 1, confirmed: 1, wrote: true });
    expect((await claims(db)).get('02:00:00:00:0e:31')).toMatchObject({ state: 'released', releasedBy: 'reconcile' });
  });

  it('several -f files: VMs in one, namespaces in another', async () => {
    const project = newProject();
    const vms = file('several-vms.json', list([stored('x', 'quiet', '02:00:00:00:0e:21')]));
    const nss = file('several-ns.json', list([namespace('quiet', { [OPT_LABEL]: 'ignore' })]));
    const r = await macpool(['reconcile', '-f', vms, '-f', nss, '-o', 'json'], { project });
    expect(JSON.parse(r.stdout)).toMatchObject({ vms: 1, healed: 0, namespaces: 1 });
  });

  it.each([
    { name: 'not a List', content: '{"kind":"VirtualMachine"}', message: 'must be a List' },
    { name: 'not JSON', content: 'apiVersion: v1\nkind: List\n', message: 'is not JSON' },
  ])('an input that is $name is a failure in one line; nothing is written', async ({ content, message }) => {
    const project = newProject();
    const r = await macpool(['reconcile', '-f', file(`bad-${randomUUID()}.json`, content)], { project });
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual([expect.stringContaining(message)]);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(await claims(testDb(project))).toEqual(new Map());
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('shows a progress bar when stderr is a terminal', async () => {
    const project = newProject();
    const inventory = file('tty.json', list([stored('tty', 'lab', '02:00:00:00:0e:31')]));
    const command = `${process.execPath} ${CLI} reconcile -f ${inventory}`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {
      env: {
        PATH: process.env.PATH ?? '',
        METADATA_SERVER_DETECTION: 'none',
        FIRESTORE_EMULATOR_HOST: emulatorHost(),
        GOOGLE_CLOUD_PROJECT: project,
      },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('reconcile [');
    expect(r.stdout).toContain('1/1 writes');
  });
});

// Read-only or self-contained tests: they run side by side.
describe.concurrent('macpool webhook-config', () => {
  const expectedItems = (options: Parameters<typeof webhookConfigurations>[0]) => {
    const { mutating, validating } = webhookConfigurations(options);
    return [mutating, validating];
  };
  const yamlDocs = (text: string) => parseAllDocuments(text).map((d) => d.toJS());

  it('prints the YAML of webhookConfigurationsYaml(), offline (no project, no emulator)', async () => {
    const r = await macpool(['webhook-config', '--url', FUNCTION_URL, '--token', TOKEN], {
      project: null,
      env: { FIRESTORE_EMULATOR_HOST: '' },
    });
    expect(r.code).toBe(0);
    expect(yamlDocs(r.stdout)).toEqual(expectedItems({ url: FUNCTION_URL, token: TOKEN }));
  });

  it('takes the first token of --cluster from MACPOOL_TOKENS, and the opt mode and timeout given', async () => {
    const east2 = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
    const r = await macpool(
      [
        'webhook-config',
        '--url',
        FUNCTION_URL,
        '--cluster',
        'east',
        '--opt-mode',
        'opt-in',
        '--pod-opt-mode',
        'opt-out',
        '--timeout-seconds',
        '5',
      ],
      { env: { MACPOOL_TOKENS: `west=${TOKEN},east=${'e'.repeat(20)},east=${east2}` } },
    );
    expect(r.code).toBe(0);
    expect(yamlDocs(r.stdout)).toEqual(
      expectedItems({
        url: FUNCTION_URL,
        token: 'e'.repeat(20),
        optMode: 'opt-in',
        podOptMode: 'opt-out',
        timeoutSeconds: 5,
      }),
    );
  });

  it('-o json prints the same objects as a List, for kubectl apply -f -', async () => {
    const r = await macpool(['webhook-config', '--url', FUNCTION_URL, '--token', TOKEN, '-o', 'json']);
    expect(JSON.parse(r.stdout)).toEqual({
      apiVersion: 'v1',
      kind: 'List',
      items: expectedItems({ url: FUNCTION_URL, token: TOKEN }),
    });
  });

  it.each([
    {
      name: 'no token anywhere',
      env: {},
      message: 'no token for cluster default: pass --token TOKEN, or set MACPOOL_TOKENS',
    },
    {
      name: 'no entry for the cluster',
      env: { MACPOOL_TOKENS: `west=${TOKEN}` },
      message: 'MACPOOL_TOKENS has no token for cluster default',
    },
  ])('without a token ($name) it is a usage error saying how to give one, and prints no token', async (c) => {
    const r = await macpool(['webhook-config', '--url', FUNCTION_URL], { env: c.env });
    expectUsageError(r, 'macpool webhook-config', c.message);
    expect(r.stderr).not.toContain(TOKEN);
  });

  it.each([
    {
      name: 'a malformed MACPOOL_TOKENS',
      args: [],
      env: { MACPOOL_TOKENS: 'default=short-secret' },
      message: 'the token is not allowed',
    },
    {
      name: 'a plain http URL',
      args: ['--token', TOKEN, '--url', 'http://x.example'],
      env: {},
      message: 'the scheme must be https',
    },
    { name: 'a bad token', args: ['--token', 'short-secret'], env: {}, message: 'invalid cluster token (length 12)' },
    {
      name: 'a timeout over 30 s',
      args: ['--token', TOKEN, '--timeout-seconds', '31'],
      env: {},
      message: 'invalid timeoutSeconds 31',
    },
  ])(
    'refuses $name as a usage error (exit 2, one line and the pointer to --help), without echoing the token',
    async (c) => {
      const r = await macpool(['webhook-config', '--url', FUNCTION_URL, ...c.args], { env: c.env });
      expectUsageError(r, 'macpool webhook-config', c.message);
      expect(r.stderr).not.toContain('short-secret');
      expect(r.stderr).not.toContain(TOKEN);
    },
  );
});

// Each test has its own project: they run side by side.
describe.concurrent('the Firestore each command talks to', () => {
  it.each([
    { name: 'config set', args: ['config', 'set', '--cooldown-seconds', '60'] },
    { name: 'namespace ignore', args: ['namespace', 'ignore', 'lab'] },
    { name: 'namespace allocate', args: ['namespace', 'allocate', 'lab'] },
    { name: 'namespace reset', args: ['namespace', 'reset', 'lab'] },
    { name: 'claims release', args: ['claims', 'release', '02:00:00:00:0f:01'] },
    {
      name: 'reconcile',
      args: ['reconcile', '-f', '-'],
      // The VM that holds the seeded claim: an inventory without it would be refused (R8).
      stdin: JSON.stringify({
        kind: 'List',
        items: [vm('vm-01', 'lab', [{ name: 'default', mac: '02:00:00:00:0f:01' }])],
      }),
    },
  ])('$name names the project and the emulator on stderr, before it writes', async ({ args, stdin }) => {
    const project = newProject();
    await seed(testDb(project), { 'macs/02:00:00:00:0f:01': claim('02:00:00:00:0f:01', 'bound') });
    const r = await macpool(args, { project, ...(stdin === undefined ? {} : { stdin }) });
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(writingTo(project));
  });

  it('a dry run names the project and says it writes nothing', async () => {
    const project = newProject();
    const r = await macpool(['reconcile', '-f', '-', '--dry-run'], { project, stdin: '{"kind":"List","items":[]}' });
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(
      `dry run on project ${project} on the Firestore emulator at ${emulatorHost()}: nothing is written`,
    );
  });

  it('against Google Cloud (no emulator) the line names the project alone', async () => {
    const r = await macpool(['--timeout', '5', 'namespace', 'ignore', 'lab'], {
      project: 'my-macpool',
      env: { FIRESTORE_EMULATOR_HOST: '' },
    });
    expect(r.code).toBe(1); // no credentials here
    expect(r.stderr.split('\n')[0]).toBe('writing to project my-macpool');
  });

  it.each([
    { name: 'config get', args: ['config', 'get'] },
    { name: 'config get settings', args: ['config', 'get', 'settings'] },
    { name: 'namespace list', args: ['namespace', 'list'] },
    { name: 'claims list', args: ['claims', 'list'] },
  ])('$name reads only, and prints no such line', async ({ args }) => {
    const r = await macpool(args, { project: newProject() });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('writing to');
  });

  it('status names the project and the emulator in its header, also for a project with nothing in it', async () => {
    const project = newProject();
    const r = await macpool(['status'], { project });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`project       ${project} on the Firestore emulator at ${emulatorHost()}`);
    expect(r.stdout).toContain('\nclaims        0 (pending 0, bound 0, released 0)\n');
  });
});

// Read-only or self-contained tests: they run side by side.
describe.concurrent('exit codes, usage and help', () => {
  it.each([
    { name: 'unknown command', args: ['frobnicate'], command: 'macpool', message: "unknown command 'frobnicate'" },
    {
      name: 'mistyped command',
      args: ['stauts'],
      command: 'macpool',
      message: "unknown command 'stauts'\n(Did you mean status?)",
      lines: 3,
    },
    {
      name: 'unknown option',
      args: ['status', '--colour'],
      command: 'macpool status',
      message: "unknown option '--colour'",
    },
    {
      name: 'missing argument',
      args: ['namespace', 'ignore'],
      command: 'macpool namespace ignore',
      message: "missing required argument 'namespaces'",
    },
    {
      name: 'bad output format',
      args: ['-o', 'yaml', 'status'],
      command: 'macpool',
      message: 'Allowed choices are table, json',
    },
    {
      name: 'bad state',
      args: ['claims', 'list', '--state', 'gone'],
      command: 'macpool claims list',
      message: 'Allowed choices are pending, bound, released',
    },
    {
      name: 'bad limit',
      args: ['claims', 'list', '--limit', '0'],
      command: 'macpool claims list',
      message: 'expected a whole number of 1 or more',
    },
    {
      name: 'a limit that is not a number',
      args: ['claims', 'list', '--limit', 'abc'],
      command: 'macpool claims list',
      message: 'expected a whole number of 1 or more',
    },
    {
      name: 'bad MAC',
      args: ['claims', 'release', '02:00'],
      command: 'macpool claims release',
      message: 'expected a 48-bit MAC',
    },
    {
      name: 'bad cluster name',
      args: ['namespace', 'list', '--cluster', 'East_1'],
      command: 'macpool namespace list',
      message: 'must be a DNS label',
    },
    {
      name: 'bad cluster name (webhook-config)',
      args: ['webhook-config', '--url', FUNCTION_URL, '--token', TOKEN, '--cluster', 'East_1'],
      command: 'macpool webhook-config',
      message: 'must be a DNS label',
    },
    {
      name: 'bad namespace name',
      args: ['namespace', 'ignore', 'Lab'],
      command: 'macpool namespace ignore',
      message: 'must be a DNS label',
    },
    {
      name: 'not a number',
      args: ['config', 'set', '--cooldown-seconds', 'ten'],
      command: 'macpool config set',
      message: 'expected a whole number',
    },
    { name: 'nothing to set', args: ['config', 'set'], command: 'macpool config set', message: 'nothing to set' },
    {
      name: 'half a range',
      args: ['config', 'set', '--range-start', '02:00:00:00:00:00'],
      command: 'macpool config set',
      message: 'go together',
    },
    {
      name: 'no inventory',
      args: ['reconcile'],
      command: 'macpool reconcile',
      message: "required option '-f, --filename <file>' not specified",
    },
    {
      name: 'stdin twice',
      args: ['reconcile', '-f', '-', '-f', '-'],
      command: 'macpool reconcile',
      message: 'standard input (-) can be read once',
    },
  ])('$name: exit 2, the message and one line pointing at --help', async ({ args, command, message, lines }) => {
    const r = await macpool(args);
    expectUsageError(r, command, message, lines);
    expect(r.stderr).not.toContain('Usage:');
  });

  it("a command group without its subcommand: exit 2 with the group's help, which lists the subcommands", async () => {
    const r = await macpool(['claims']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: macpool claims /);
    expect(r.stderr).toMatch(/\n {2}list \[options\] +list claims/);
  });

  it('without GOOGLE_CLOUD_PROJECT a Firestore command fails with one line saying what to set', async () => {
    const r = await macpool(['status'], { project: null });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: no Google Cloud project: set GOOGLE_CLOUD_PROJECT to the project that holds the pool ' +
        '(with Application Default Credentials, or with FIRESTORE_EMULATOR_HOST for an emulator)\n',
    );
  });

  it('an unreachable Firestore fails after --timeout, in one line', async () => {
    const r = await macpool(['--timeout', '1', 'config', 'get'], { env: { FIRESTORE_EMULATOR_HOST: '127.0.0.1:1' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: the Firestore emulator at 127.0.0.1:1 did not answer within 1 s\n');
  });

  const commands = [
    [],
    ['config'],
    ['config', 'get'],
    ['config', 'set'],
    ['namespace'],
    ['namespace', 'ignore'],
    ['namespace', 'allocate'],
    ['namespace', 'reset'],
    ['namespace', 'list'],
    ['status'],
    ['claims'],
    ['claims', 'list'],
    ['claims', 'release'],
    ['reconcile'],
    ['webhook-config'],
  ];
  it.each(commands.map((c) => ({ name: ['macpool', ...c].join(' '), args: c })))(
    '$name --help: exit 0, with an example',
    async ({ args }) => {
      const r = await macpool([...args, '--help'], { project: null });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: macpool/);
      expect(r.stdout).toMatch(/\nExamples?:\n {2}\$ /);
    },
  );
});
