import { describe, expect, it } from 'vitest';
import {
  claimJson,
  claimRow,
  describeError,
  namespaceRow,
  reconcileText,
  statusText,
  table,
  timestamp,
} from '../../cli/format.js';
import type { ListedClaim, PoolStatus } from '../../shared/admin.js';
import type { ReconcileReport } from '../../shared/reconcile.js';

/** An error as @grpc/grpc-js raises it from a Firestore call. */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

describe('table', () => {
  it.each([
    {
      name: 'pads each column to its widest cell, two spaces apart, no trailing blanks',
      headers: ['MAC', 'STATE', 'VM'],
      rows: [
        ['02:00:00:00:00:01', 'bound', 'web-1'],
        ['02:00:00:00:00:02', 'pending', '-'],
      ],
      expected: 'MAC                STATE    VM\n02:00:00:00:00:01  bound    web-1\n02:00:00:00:00:02  pending  -\n',
    },
    { name: 'headers only', headers: ['A', 'B'], rows: [], expected: 'A  B\n' },
    {
      name: 'a header wider than its cells',
      headers: ['NAMESPACE', 'X'],
      rows: [['a', 'b']],
      expected: 'NAMESPACE  X\na          b\n',
    },
  ])('$name', ({ headers, rows, expected }) => {
    expect(table(headers, rows)).toBe(expected);
  });
});

describe('describeError: one line, no stack, a hint where it helps', () => {
  it.each([
    {
      name: 'Firestore unreachable',
      error: grpcError(
        14,
        'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
      ),
      expected:
        'Firestore UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1; ' +
        'is Firestore (or FIRESTORE_EMULATOR_HOST) reachable?',
    },
    {
      name: 'permission denied',
      error: grpcError(7, 'Missing or insufficient permissions.'),
      expected:
        'Firestore PERMISSION_DENIED: Missing or insufficient permissions; check Application Default Credentials ' +
        '(gcloud auth application-default login) and GOOGLE_CLOUD_PROJECT',
    },
    {
      name: 'a missing index, with the link to create it',
      error: grpcError(9, 'The query requires an index. You can create it here: https://console.example/x'),
      expected:
        'Firestore FAILED_PRECONDITION: The query requires an index. You can create it here: https://console.example/x',
    },
    {
      name: 'no credentials at all',
      error: new Error('Could not load the default credentials. Browse to https://cloud.google.com/docs for more.'),
      expected:
        'Could not load the default credentials. Browse to https://cloud.google.com/docs for more; check ' +
        'Application Default Credentials (gcloud auth application-default login) and GOOGLE_CLOUD_PROJECT',
    },
    { name: 'a multi-line message', error: new Error('first line\n    at stack (x.js:1:1)'), expected: 'first line' },
    { name: 'not an Error', error: 'plain text', expected: 'plain text' },
  ])('$name', ({ error, expected }) => {
    expect(describeError(error)).toBe(expected);
  });
});

describe('claims', () => {
  const claim = {
    mac: '02:00:00:00:00:0a',
    state: 'pending',
    cluster: 'east',
    namespace: 'lab',
    name: '',
    interface: 'default',
    kind: 'vm',
    origin: 'allocated',
    createdAt: new Date('2026-11-27T12:00:00.123Z'),
    updatedAt: new Date('2026-11-27T12:00:05.999Z'),
  } as const;

  it.each<{ name: string; listed: ListedClaim; row: string[] }>([
    {
      name: 'a generateName claim shows no VM name yet',
      listed: { mac: claim.mac, claim },
      row: [claim.mac, 'pending', 'east', 'lab', 'vm', '-', 'default', 'allocated', '2026-11-27T12:00:05Z'],
    },
    {
      name: 'a claim that does not parse shows what it can',
      listed: { mac: claim.mac, problem: 'state: Invalid option', raw: { cluster: 'east', name: 3 } },
      row: [claim.mac, '(invalid)', 'east', '-', 'vm', '-', '-', '-', '-'],
    },
  ])('claimRow: $name', ({ listed, row }) => {
    expect(claimRow(listed)).toEqual(row);
  });

  it('claimJson: the document, times as RFC 3339', () => {
    expect(JSON.parse(JSON.stringify(claimJson({ mac: claim.mac, claim })))).toEqual({
      ...claim,
      createdAt: '2026-11-27T12:00:00.123Z',
      updatedAt: '2026-11-27T12:00:05.999Z',
    });
  });

  it('timestamp: to the second, UTC', () => {
    expect(timestamp(new Date('2026-11-27T12:00:05.999Z'))).toBe('2026-11-27T12:00:05Z');
  });
});

describe('namespaceRow', () => {
  it.each([
    { view: { namespace: 'a', label: 'ignore', managed: false }, row: ['a', 'ignore', 'no'] },
    { view: { namespace: 'b', label: undefined, managed: true }, row: ['b', '-', 'yes'] },
    {
      view: { namespace: 'c', label: undefined, managed: true, problem: 'labels: bad' },
      row: ['c', '(invalid)', 'yes'],
    },
  ])('$view.namespace', ({ view, row }) => {
    expect(namespaceRow(view)).toEqual(row);
  });
});

describe('statusText', () => {
  const status: PoolStatus = {
    ranges: [{ start: '02:00:00:00:00:00', end: '02:00:00:00:00:ff', size: 256, multicast: 0, universal: 0 }],
    excluded: [],
    usable: 256,
    rangeWarnings: [],
    cooldownSeconds: 600,
    inPool: { pending: 1, bound: 2, released: 3, coolingDown: 1, other: 0, total: 6 },
    claimed: 3,
    free: 252,
    utilizationPercent: 1.56,
    claims: { pending: 1, bound: 3, released: 3, other: 0, total: 7 },
    unconfirmedReleases: 0,
    outsidePool: 1,
  };

  it('the Firestore it read, then one figure per line; the unreadable line only when there are such claims', () => {
    expect(statusText(status, 'macpool-dev on the Firestore emulator at 127.0.0.1:8085')).toBe(
      [
        'project       macpool-dev on the Firestore emulator at 127.0.0.1:8085',
        'range         02:00:00:00:00:00-02:00:00:00:00:ff (256 MACs)',
        'usable        256',
        'claimed       3 (pending 1, bound 2)',
        'released      3 (cooling down 1, past the 600 s cool-down 2)',
        'free          252',
        'utilization   1.56%',
        'claims        7 (pending 1, bound 3, released 3)',
        'unconfirmed   0',
        'outside pool  1',
        '',
      ].join('\n'),
    );
    const withOther = statusText(
      { ...status, inPool: { ...status.inPool, other: 2 }, claims: { ...status.claims, other: 2 } },
      'my-macpool',
    );
    expect(withOther).toMatch(/^project {7}my-macpool\n/);
    expect(withOther).toContain('\nunreadable    2 (claims with an unknown state: taken)\n');
    expect(withOther).toContain('released 3, unknown state 2)');
    expect(statusText({ ...status, unconfirmedReleases: 2 }, 'p')).toContain(
      '\nunconfirmed   2 (released, not yet shown gone by the cluster: refused to explicit requests of others until a reconcile confirms or the cool-down ends)\n',
    );
  });

  it('lists every range with what C5 drops from it, and every exclusion, one per line', () => {
    const text = statusText(
      {
        ...status,
        ranges: [
          { start: 'aa:00:00:00:00:00', end: 'fc:ff:ff:ff:ff:ff', size: 92358976733184, multicast: 0, universal: 0 },
          { start: '02:ff:ff:ff:ff:fe', end: '06:00:00:00:00:01', size: 3298534883332, multicast: 2, universal: 1 },
        ],
        excluded: [
          { start: '02:00:00:00:00:10', end: '02:00:00:00:00:1f', size: 16 },
          { start: '02:00:00:00:00:05', end: '02:00:00:00:00:05', size: 1 },
        ],
      },
      'p',
    );
    expect(text.split('\n').slice(0, 6)).toEqual([
      'project       p',
      'ranges        aa:00:00:00:00:00-fc:ff:ff:ff:ff:ff (92358976733184 MACs)',
      '              02:ff:ff:ff:ff:fe-06:00:00:00:00:01 (3298534883332 MACs; never handed out: 2 multicast, 1 universally administered)',
      'excluded      02:00:00:00:00:10-02:00:00:00:00:1f (16 MACs)',
      '              02:00:00:00:00:05',
      'usable        256',
    ]);
  });
});

describe('reconcileText', () => {
  const report: ReconcileReport = {
    vms: 4,
    claims: 9,
    bound: 1,
    released: 2,
    healed: 3,
    unchanged: 4,
    skippedYoung: 0,
    confirmed: 2,
    rebound: 1,
    awaitingDeletion: 0,
    youngReleases: 0,
    withheldConfirmations: 0,
    wrote: true,
    conflicts: 1,
    readPath: 'full',
    reads: 12,
    cellsRead: 0,
    fingerprinted: 0,
    namespaces: 0,
    collisions: [
      { mac: '02:00:00:00:00:01', vms: ['a/x', 'b/y'], otherCluster: false },
      { mac: '02:00:00:00:00:02', vms: ['a/z'], otherCluster: true },
    ],
    problems: ['item 3 (Pod p): not a VirtualMachine or Namespace, skipped'],
    durationMs: 1234,
  };

  it('the counts, then one line per collision (MAC <mac>: <vm>, <vm>) and per problem', () => {
    expect(reconcileText(report, 'east')).toBe(
      [
        'reconciled 4 VMs of cluster east against 9 claims in 1.2 s',
        'bound       1',
        'released    2',
        'healed      3',
        'unchanged   4',
        'skipped     0',
        'confirmed   2 (releases the cluster now shows)',
        'rebound     1 (released by a change the cluster never stored)',
        'deleting    0',
        'waiting     0',
        'withheld    0',
        'conflicts   1 (changed meanwhile: the next run looks again)',
        'namespaces  0',
        'collisions  2',
        'MAC 02:00:00:00:00:01: a/x, b/y',
        'MAC 02:00:00:00:00:02: a/z (also claimed in another cluster)',
        'problem: item 3 (Pod p): not a VirtualMachine or Namespace, skipped',
        '',
      ].join('\n'),
    );
  });

  it('says why releases were withheld', () => {
    expect(reconcileText({ ...report, withheldConfirmations: 3 }, 'east')).toContain(
      '\nwithheld    3 (releases left unconfirmed: the inventory lists no object of their kind; --force if the cluster has none)\n',
    );
  });

  it('says when nothing was written, and why', () => {
    expect(reconcileText({ ...report, wrote: false }, 'east')).toContain('\ndry run: nothing written\n');
    const refused = reconcileText(
      { ...report, wrote: false, refused: 'the inventory lists no VirtualMachine' },
      'east',
    );
    expect(refused).toContain(
      '\nrefused, nothing written: the inventory lists no VirtualMachine; run again with --force',
    );
  });
});
