import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type ClaimRequest,
  freeForAllocation,
  type PlannedInterface,
  planClaims,
  planRelease,
  type ReadState,
  type Snapshot,
  type Version,
} from '../../shared/allocator.js';
import type { ClaimDoc } from '../../shared/documents.js';
import { parseMac, type Mac } from '../../shared/mac.js';
import { validatePool } from '../../shared/usable.js';

const NOW = new Date('2026-11-27T12:00:00Z');
const V = { isEqual: () => true } as Version;
const r = validatePool({ rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:ff' });
if (!r.ok) throw new Error('fixture');
const USABLE = r.usable;
const mac = (s: string) => parseMac(s)! as Mac;

function claim(m: string, over: Partial<ClaimDoc> = {}): Snapshot<ClaimDoc> {
  return {
    version: V,
    data: {
      mac: m,
      state: 'pending',
      cluster: 'c',
      kind: 'vm',
      namespace: 'ns',
      name: 'vm1',
      interface: 'default',
      origin: 'allocated',
      requestUid: 'r0',
      transactionTimestamp: 'ts0',
      createdAt: NOW,
      updatedAt: NOW,
      ...over,
    },
  };
}

const state = (claims: Record<string, Snapshot<ClaimDoc> | null>): ReadState => ({
  claims: new Map(Object.entries(claims)),
});

function request(interfaces: PlannedInterface[], over: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: 'vm' },
    requestUid: 'r1',
    timestamp: 'ts1',
    now: NOW,
    usable: USABLE,
    uidRule: 'not-checked',
    cooldownMs: 600_000,
    interfaces,
    storedMacs: new Set(),
    leftovers: 'keep',
    ...over,
  };
}

const auto = (name: string, index = 0): PlannedInterface => ({ index, name, claim: true, allocate: true });
const user = (name: string, m: string, index = 0): PlannedInterface => ({
  index,
  name,
  mac: m,
  claim: true,
  allocate: false,
});

describe('planClaims', () => {
  it('fresh CREATE: creates a claim per interface, each with a must-not-exist precondition', () => {
    const result = planClaims(request([auto('a', 0), auto('b', 1)]), state({}), [
      mac('02:00:00:00:00:10'),
      mac('02:00:00:00:00:11'),
    ]);
    expect(result.kind).toBe('plan');
    if (result.kind !== 'plan') return;
    expect(result.plan.assignments).toEqual([
      { index: 0, interface: 'a', mac: '02:00:00:00:00:10' },
      { index: 1, interface: 'b', mac: '02:00:00:00:00:11' },
    ]);
    expect(result.plan.writes.map((w) => [w.kind, w.path])).toEqual([
      ['create', 'macs/02:00:00:00:00:10'],
      ['create', 'macs/02:00:00:00:00:11'],
    ]);
    expect(result.plan.writes[0]!.kind === 'create' && result.plan.writes[0]!.data).toMatchObject({
      state: 'pending',
      transactionTimestamp: 'ts1',
      requestUid: 'r1',
      name: 'vm1',
    });
  });

  it('skips candidates that are taken or cooling down, takes one whose cool-down ended (U5)', () => {
    const cooling = claim('02:00:00:00:00:11', { state: 'released', releasedAt: new Date(NOW.getTime() - 60_000) });
    const cooled = claim('02:00:00:00:00:12', { state: 'released', releasedAt: new Date(NOW.getTime() - 600_000) });
    const result = planClaims(
      request([auto('a')]),
      state({
        '02:00:00:00:00:10': claim('02:00:00:00:00:10', { name: 'other' }),
        '02:00:00:00:00:11': cooling,
        '02:00:00:00:00:12': cooled,
      }),
      ['02:00:00:00:00:10', '02:00:00:00:00:11', '02:00:00:00:00:12'].map(mac),
    );
    expect(result.kind === 'plan' && result.plan.assignments[0]!.mac).toBe('02:00:00:00:00:12');
    expect(result.kind === 'plan' && result.plan.writes[0]!.kind).toBe('update'); // a released claim is reused under its version
    expect(result.kind === 'plan' && result.plan.takenCandidates).toBe(2);
  });

  it('returns short when the candidates run out', () => {
    expect(planClaims(request([auto('a'), auto('b', 1)]), state({}), [mac('02:00:00:00:00:10')])).toEqual({
      kind: 'short',
      missing: 1,
      takenCandidates: 0,
    });
  });

  it.each([
    {
      name: 'same namespace: the holder is named',
      holder: { name: 'vm2' },
      expected: { code: 'mac-in-use', interface: 'eth', mac: '02:00:00:00:00:20', holder: 'vm2', holderKind: 'vm' },
    },
    {
      name: 'other namespace: not named (S3)',
      holder: { namespace: 'other', name: 'vm2' },
      expected: { code: 'mac-in-use', interface: 'eth', mac: '02:00:00:00:00:20' },
    },
    {
      name: 'other cluster: not named (S3)',
      holder: { cluster: 'x', name: 'vm1' },
      expected: { code: 'mac-in-use', interface: 'eth', mac: '02:00:00:00:00:20' },
    },
  ])('V5: a user MAC held by another VM is denied; $name', ({ holder, expected }) => {
    const result = planClaims(
      request([user('eth', '02:00:00:00:00:20')]),
      state({ '02:00:00:00:00:20': claim('02:00:00:00:00:20', holder) }),
      [],
    );
    expect(result).toEqual({ kind: 'denied', error: expected });
  });

  it('U5: a user may take a released MAC at once, even during its cool-down', () => {
    const released = claim('02:00:00:00:00:20', { name: 'gone', state: 'released', releasedAt: NOW });
    const result = planClaims(
      request([user('eth', '02:00:00:00:00:20')]),
      state({ '02:00:00:00:00:20': released }),
      [],
    );
    expect(result.kind).toBe('plan');
  });

  it('V7: a user MAC outside the range is claimed with a warning', () => {
    const result = planClaims(request([user('eth', '0a:00:00:00:00:01')]), state({}), []);
    expect(result.kind === 'plan' && result.plan.warnings[0]).toContain('outside the pool range');
    expect(result.kind === 'plan' && result.plan.claimed).toEqual(['0a:00:00:00:00:01']);
  });

  it('V13: the same request again replays: same MACs, same timestamp, nothing written', () => {
    const held = claim('02:00:00:00:00:30', { requestUid: 'r1', transactionTimestamp: 'ts-first' });
    const result = planClaims(request([auto('default')]), state({ '02:00:00:00:00:30': held }), [
      mac('02:00:00:00:00:99'),
    ]);
    expect(result.kind === 'plan' && result.plan).toMatchObject({
      replay: true,
      writes: [],
      timestamp: 'ts-first',
      assignments: [{ mac: '02:00:00:00:00:30' }],
    });
  });

  it('V13: a repeat replays only when every claim still records the request', () => {
    const mine = claim('02:00:00:00:00:30', { requestUid: 'r1', transactionTimestamp: 'ts-first' });
    const result = planClaims(
      request([auto('default'), user('n', '02:00:00:00:00:31', 1)]),
      state({ '02:00:00:00:00:30': mine }),
      [],
    );
    expect(result.kind === 'plan' && result.plan).toMatchObject({
      replay: false,
      timestamp: 'ts-first',
      claimed: ['02:00:00:00:00:31'],
    });
  });

  it('V13: a CREATE of a name whose earlier CREATE never persisted reuses its claim by interface name', () => {
    const result = planClaims(request([auto('default')]), state({ '02:00:00:00:00:30': claim('02:00:00:00:00:30') }), [
      mac('02:00:00:00:00:99'),
    ]);
    expect(result.kind === 'plan' && result.plan.assignments[0]!.mac).toBe('02:00:00:00:00:30');
    expect(result.kind === 'plan' && result.plan.claimed).toEqual([]);
    expect(result.kind === 'plan' && result.plan.timestamp).toBe('ts1');
  });

  it('UPDATE releases held claims the VM no longer uses (U3); CREATE keeps them', () => {
    const held = { '02:00:00:00:00:40': claim('02:00:00:00:00:40', { interface: 'gone' }) };
    const upd = planClaims(request([], { leftovers: 'release' }), state(held), []);
    expect(upd.kind === 'plan' && upd.plan.released).toEqual(['02:00:00:00:00:40']);
    const released = upd.kind === 'plan' ? upd.plan.writes.find((w) => w.path === 'macs/02:00:00:00:00:40') : undefined;
    expect(released?.kind === 'update' && released.data).toMatchObject({
      state: 'released',
      releasedAt: NOW,
      expireAt: new Date(NOW.getTime() + 600_000),
    });
    const create = planClaims(request([], { leftovers: 'keep' }), state(held), []);
    expect(create.kind === 'plan' && create.plan.released).toEqual([]);
  });

  it('V12: claims of a generateName request are adopted by the named VM that carries them', () => {
    const pending = claim('02:00:00:00:00:50', { name: '', requestUid: 'gen-1' });
    const result = planClaims(
      request([user('default', '02:00:00:00:00:50')], {
        uid: 'uid-1',
        storedMacs: new Set(['02:00:00:00:00:50']),
        leftovers: 'release',
      }),
      state({ '02:00:00:00:00:50': pending }),
      [],
    );
    expect(result.kind).toBe('plan');
    if (result.kind !== 'plan') return;
    const write = result.plan.writes.find((w) => w.path === 'macs/02:00:00:00:00:50');
    expect(write?.kind === 'update' && write.data).toMatchObject({ name: 'vm1', uid: 'uid-1' });
  });

  it('a generateName claim is not adopted by a VM that does not carry the MAC', () => {
    const pending = claim('02:00:00:00:00:50', { name: '', requestUid: 'gen-1' });
    const result = planClaims(
      request([user('default', '02:00:00:00:00:50')]),
      state({ '02:00:00:00:00:50': pending }),
      [],
    );
    expect(result.kind).toBe('denied');
  });
});

describe('planRelease (D1)', () => {
  const base = {
    owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: 'vm' as const },
    requestUid: 'del',
    now: NOW,
    cooldownMs: 600_000,
    storedMacs: new Set<string>(),
  };
  it.each([
    { name: 'no uid recorded', recorded: undefined, presented: 'u1', released: 1 },
    { name: 'matching uid', recorded: 'u1', presented: 'u1', released: 1 },
    { name: 'another uid (stale or forged DELETE)', recorded: 'u1', presented: 'u2', released: 0 },
  ])('$name', ({ recorded, presented, released }) => {
    const s = state({
      '02:00:00:00:00:60': claim('02:00:00:00:00:60', recorded ? { uid: recorded } : {}),
      '02:00:00:00:00:61': claim('02:00:00:00:00:61', { name: 'vm2' }),
    });
    const plan = planRelease({ ...base, uid: presented }, s);
    expect(plan.released).toHaveLength(released);
    expect(plan.refused).toHaveLength(1 - released);
    expect(plan.writes.some((w) => w.path === 'macs/02:00:00:00:00:61')).toBe(false);
  });
});

describe('freeForAllocation', () => {
  it.each([
    { name: 'never claimed', snap: null, free: true },
    { name: 'pending', snap: claim('m'), free: false },
    { name: 'bound', snap: claim('m', { state: 'bound' }), free: false },
    {
      name: 'released 1 s ago',
      snap: claim('m', { state: 'released', releasedAt: new Date(NOW.getTime() - 1000) }),
      free: false,
    },
    {
      name: 'released 10 min ago',
      snap: claim('m', { state: 'released', releasedAt: new Date(NOW.getTime() - 600_000) }),
      free: true,
    },
    { name: 'corrupt', snap: { data: 'corrupt' as const, version: V }, free: false },
  ])('$name: $free', ({ snap, free }) => {
    expect(freeForAllocation(snap, NOW, 600_000)).toBe(free);
  });
});

describe('S5: an UPDATE frees or takes over only claims of its own uid', () => {
  const held = (uid?: string) =>
    state({
      '02:00:00:00:00:70': claim('02:00:00:00:00:70', { state: 'bound', ...(uid ? { uid } : {}) }),
    });
  const update = (uid: string | undefined, interfaces: PlannedInterface[]) =>
    request(interfaces, {
      ...(uid ? { uid } : {}),
      uidRule: 'must-match',
      leftovers: 'release',
      storedMacs: new Set(['02:00:00:00:00:70']),
    });

  it.each([
    { name: 'matching uid', recorded: 'u1', presented: 'u1', frees: true },
    { name: 'no uid recorded', recorded: undefined, presented: 'u1', frees: true },
    { name: 'another uid (forged or stale)', recorded: 'u1', presented: 'u2', frees: false },
    { name: 'no uid presented', recorded: 'u1', presented: undefined, frees: false },
  ])('NIC removed, $name: frees $frees', ({ recorded, presented, frees }) => {
    const result = planClaims(update(presented, []), held(recorded), []);
    expect(result.kind).toBe('plan');
    if (result.kind !== 'plan') return;
    expect(result.plan.released).toEqual(frees ? ['02:00:00:00:00:70'] : []);
    expect(result.plan.refused).toEqual(frees ? [] : ['02:00:00:00:00:70']);
    expect(result.plan.writes.some((w) => w.path === 'macs/02:00:00:00:00:70')).toBe(frees);
    const w = result.plan.writes[0];
    // The genuine release is unconfirmed: the stored VM (oldObject) still carries the MAC (U6).
    if (frees && w?.kind === 'update') {
      expect(w.data).toMatchObject({ state: 'released', releasedBy: 'UPDATE', requestUid: 'r1' });
      expect(w.data.releaseConfirmedAt).toBeUndefined();
      if (recorded) expect(w.data.uid).toBe(recorded);
    }
  });

  it('a mismatching UPDATE still gets a MAC for a new interface, and leaves the recorded uid alone', () => {
    const result = planClaims(update('u2', [user('default', '02:00:00:00:00:70'), auto('hotplug', 1)]), held('u1'), [
      mac('02:00:00:00:00:71'),
    ]);
    expect(result.kind === 'plan' && result.plan.assignments).toEqual([
      { index: 1, interface: 'hotplug', mac: '02:00:00:00:00:71' },
    ]);
    if (result.kind !== 'plan') return;
    expect(result.plan.writes.map((w) => w.path)).toEqual(['macs/02:00:00:00:00:71']);
    expect(result.plan.refused).toEqual(['02:00:00:00:00:70']);
  });

  it('property: whatever the uids and interfaces, a claim of another uid is never written by an UPDATE', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ uid: fc.option(fc.constantFrom('u1', 'u2', 'u3'), { nil: undefined }), keep: fc.boolean() }),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        fc.option(fc.constantFrom('u1', 'u2', 'u3'), { nil: undefined }),
        fc.integer({ min: 0, max: 3 }),
        (claims, presented, extra) => {
          const macs = claims.map((_, i) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`);
          const s = state(
            Object.fromEntries(
              claims.map((c, i) => [
                macs[i]!,
                claim(macs[i]!, { state: 'bound', interface: `if${i}`, ...(c.uid ? { uid: c.uid } : {}) }),
              ]),
            ),
          );
          const interfaces = [
            ...claims.flatMap((c, i) => (c.keep ? [user(`if${i}`, macs[i]!, i)] : [])),
            ...Array.from({ length: extra }, (_, k) => auto(`new${k}`, claims.length + k)),
          ];
          const req = request(interfaces, {
            ...(presented ? { uid: presented } : {}),
            uidRule: 'must-match',
            leftovers: 'release',
            storedMacs: new Set(macs),
          });
          const result = planClaims(
            req,
            s,
            [0, 1, 2, 3].map((k) => mac(`02:00:00:00:02:0${k}`)),
          );
          if (result.kind !== 'plan') return false;
          for (const [i, c] of claims.entries()) {
            const foreign = c.uid !== undefined && c.uid !== presented;
            const written = result.plan.writes.find((w) => w.path === `macs/${macs[i]}`);
            if (foreign && written !== undefined) return false;
            // No write ever replaces a recorded uid with another.
            if (written?.kind === 'update' && c.uid !== undefined && written.data.uid !== c.uid) return false;
          }
          return result.plan.assignments.length === extra;
        },
      ),
    );
  });
});

describe('U6: a release by an UPDATE or DELETE is not a fact until the cluster shows it', () => {
  const released = (over: Partial<ClaimDoc> = {}) =>
    claim('02:00:00:00:00:80', {
      state: 'released',
      releasedBy: 'DELETE',
      releasedAt: new Date(NOW.getTime() - 60_000),
      ...over,
    });
  const other = { cluster: 'c', namespace: 'other', name: 'newcomer', kind: 'vm' as const };

  it.each([
    { name: 'unconfirmed, cooling down', over: {}, allowed: false },
    { name: 'confirmed, cooling down', over: { releaseConfirmedAt: NOW }, allowed: true },
    { name: 'unconfirmed, cool-down over', over: { releasedAt: new Date(NOW.getTime() - 601_000) }, allowed: true },
    { name: 'released before U6 (no releasedBy)', over: { releasedBy: undefined }, allowed: true },
    { name: 'released by a reconcile', over: { releasedBy: 'reconcile' as const }, allowed: true },
  ])('another VM asking for it explicitly, $name: allowed $allowed', ({ over, allowed }) => {
    const result = planClaims(
      request([user('default', '02:00:00:00:00:80')], { owner: other }),
      state({
        '02:00:00:00:00:80': released(over),
      }),
      [],
    );
    expect(result.kind).toBe(allowed ? 'plan' : 'denied');
    if (result.kind === 'denied') {
      expect(result.error).toEqual({
        code: 'mac-release-unconfirmed',
        holderKind: 'vm',
        interface: 'default',
        mac: '02:00:00:00:00:80',
        freeAt: new Date(NOW.getTime() - 60_000 + 600_000).toISOString(),
      });
    }
  });

  it('the VM that released it gets it back at once', () => {
    const result = planClaims(
      request([user('default', '02:00:00:00:00:80')]),
      state({
        '02:00:00:00:00:80': released(),
      }),
      [],
    );
    expect(result.kind === 'plan' && result.plan.claimed).toEqual(['02:00:00:00:00:80']);
  });

  it('a later UPDATE of the VM whose oldObject no longer carries the MAC confirms the release', () => {
    const result = planClaims(
      request([user('default', '02:00:00:00:00:81')], {
        uid: 'u1',
        uidRule: 'must-match',
        leftovers: 'release',
        storedMacs: new Set(['02:00:00:00:00:81']),
      }),
      state({
        '02:00:00:00:00:80': released({ releasedBy: 'UPDATE', uid: 'u1' }),
        '02:00:00:00:00:81': claim('02:00:00:00:00:81', { state: 'bound', uid: 'u1' }),
      }),
      [],
    );
    expect(result.kind === 'plan' && result.plan.confirmed).toEqual(['02:00:00:00:00:80']);
    const w = result.kind === 'plan' ? result.plan.writes.find((x) => x.path === 'macs/02:00:00:00:00:80') : undefined;
    expect(w).toMatchObject({ kind: 'update', data: { releaseConfirmedAt: NOW } });
  });

  it.each([
    { name: 'recorded no uid', uid: undefined },
    { name: 'recorded another uid', uid: 'u-genuine' },
  ])('a later UPDATE confirms no release that $name (a forged UPDATE cannot free it)', ({ uid }) => {
    const result = planClaims(
      request([user('default', '02:00:00:00:00:81')], {
        uid: 'u-forged',
        uidRule: 'must-match',
        leftovers: 'release',
        storedMacs: new Set(['02:00:00:00:00:81']),
      }),
      state({
        '02:00:00:00:00:80': released({ releasedBy: 'DELETE', ...(uid !== undefined ? { uid } : {}) }),
        '02:00:00:00:00:81': claim('02:00:00:00:00:81', { state: 'pending' }),
      }),
      [],
    );
    expect(result.kind === 'plan' && result.plan.confirmed).toEqual([]);
    const w = result.kind === 'plan' ? result.plan.writes.find((x) => x.path === 'macs/02:00:00:00:00:80') : undefined;
    expect(w).toBeUndefined();
  });

  it('a release records the releasing uid and transaction timestamp on a claim that had no uid, and keeps a recorded one', () => {
    const plan = planRelease(
      {
        owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: 'vm' },
        uid: 'u-delete',
        requestUid: 'del',
        timestamp: '2026-11-27T12:00:00.123456789Z',
        now: NOW,
        cooldownMs: 600_000,
        storedMacs: new Set(['02:00:00:00:00:92', '02:00:00:00:00:93']),
      },
      state({
        '02:00:00:00:00:92': claim('02:00:00:00:00:92', { state: 'pending' }),
        '02:00:00:00:00:93': claim('02:00:00:00:00:93', { state: 'bound', uid: 'u-delete' }),
      }),
    );
    const byPath = new Map(plan.writes.map((w) => [w.path, w.kind === 'update' ? w.data : {}]));
    expect(byPath.get('macs/02:00:00:00:00:92')).toMatchObject({
      uid: 'u-delete',
      releasedBy: 'DELETE',
      requestUid: 'del',
      releaseTimestamp: '2026-11-27T12:00:00.123456789Z',
    });
    expect(byPath.get('macs/02:00:00:00:00:93')).toMatchObject({ uid: 'u-delete', releasedBy: 'DELETE' });
  });

  it("a pod's DELETE proves no release: what its annotation names or omits stays unconfirmed, nothing is confirmed", () => {
    const plan = planRelease(
      {
        owner: { cluster: 'c', namespace: 'ns', name: 'pod1', kind: 'pod' },
        uid: 'u1',
        requestUid: 'del',
        now: NOW,
        cooldownMs: 600_000,
        storedMacs: new Set(),
        storedMacsTrusted: false,
      },
      state({
        '02:00:00:00:00:94': claim('02:00:00:00:00:94', { kind: 'pod', name: 'pod1', state: 'bound', uid: 'u1' }),
        '02:00:00:00:00:95': released({ kind: 'pod', name: 'pod1', releasedBy: 'DELETE', uid: 'u1' }),
      }),
    );
    expect(plan.released).toEqual(['02:00:00:00:00:94']);
    expect(plan.confirmed).toEqual([]);
    const byPath = new Map(plan.writes.map((w) => [w.path, w.kind === 'update' ? w.data : {}]));
    expect(byPath.get('macs/02:00:00:00:00:94')?.releaseConfirmedAt).toBeUndefined();
    expect(byPath.has('macs/02:00:00:00:00:95')).toBe(false);
  });

  it('a DELETE leaves the MACs its VM carries unconfirmed and confirms the ones it does not', () => {
    const plan = planRelease(
      {
        owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: 'vm' },
        uid: 'u1',
        requestUid: 'del',
        now: NOW,
        cooldownMs: 600_000,
        storedMacs: new Set(['02:00:00:00:00:90']),
      },
      state({
        '02:00:00:00:00:90': claim('02:00:00:00:00:90', { state: 'bound', uid: 'u1' }),
        '02:00:00:00:00:91': claim('02:00:00:00:00:91', { state: 'pending', uid: 'u1' }),
        // No uid recorded yet: the DELETE's oldObject is only what its sender wrote, so its absence proves nothing.
        '02:00:00:00:00:92': claim('02:00:00:00:00:92', { state: 'pending' }),
      }),
    );
    expect([...plan.released].sort()).toEqual(['02:00:00:00:00:90', '02:00:00:00:00:91', '02:00:00:00:00:92']);
    const byPath = new Map(plan.writes.map((w) => [w.path, w.kind === 'update' ? w.data : {}]));
    expect(byPath.get('macs/02:00:00:00:00:90')).toMatchObject({ releasedBy: 'DELETE' });
    expect(byPath.get('macs/02:00:00:00:00:90')?.releaseConfirmedAt).toBeUndefined();
    expect(byPath.get('macs/02:00:00:00:00:91')).toMatchObject({ releasedBy: 'DELETE', releaseConfirmedAt: NOW });
    expect(byPath.get('macs/02:00:00:00:00:92')?.releaseConfirmedAt).toBeUndefined();
  });
});

describe('U6, S5 over every input: an admission confirms a release only with the uid the claim recorded', () => {
  const MACS = ['02:00:00:00:00:e0', '02:00:00:00:00:e1', '02:00:00:00:00:e2', '02:00:00:00:00:e3'];
  const UIDS = [undefined, 'uid-a', 'uid-b'];
  const claimArb = (m: string) =>
    fc
      .record({
        state: fc.constantFrom('pending', 'bound', 'released'),
        uid: fc.constantFrom(...UIDS),
        releasedBy: fc.constantFrom(undefined, 'UPDATE', 'DELETE', 'reconcile', 'operator'),
        confirmed: fc.boolean(),
        name: fc.constantFrom('vm1', 'other', ''),
        kind: fc.constantFrom('vm', 'pod'),
        interface: fc.constantFrom('a', 'b'),
      })
      .map((c) =>
        claim(m, {
          state: c.state,
          ...(c.uid !== undefined ? { uid: c.uid } : {}),
          ...(c.state === 'released' && c.releasedBy !== undefined ? { releasedBy: c.releasedBy } : {}),
          ...(c.state === 'released' ? { releasedAt: new Date(NOW.getTime() - 60_000) } : {}),
          ...(c.state === 'released' && c.confirmed ? { releaseConfirmedAt: NOW } : {}),
          name: c.name,
          kind: c.kind,
          interface: c.interface,
        }),
      );
  const claimsArb = fc.tuple(...MACS.map((m) => fc.option(claimArb(m), { nil: undefined })));
  const requestArb = fc.record({
    uid: fc.constantFrom(...UIDS),
    stored: fc.subarray(MACS),
    kind: fc.constantFrom('vm', 'pod'),
    keep: fc.subarray(MACS),
    trusted: fc.boolean(),
  });
  const toState = (claims: (Snapshot<ClaimDoc> | undefined)[]) =>
    state(Object.fromEntries(claims.flatMap((c, i) => (c ? [[MACS[i]!, c]] : []))));

  /** Every write that sets releaseConfirmedAt must be for a claim whose recorded uid the request named, absent from oldObject. */
  function expectOnlyProvenConfirmations(
    writes: readonly { path: string; kind: string; data?: Record<string, unknown> }[],
    before: ReadState,
    uid: string | undefined,
    stored: ReadonlySet<string>,
    trusted: boolean,
  ) {
    for (const w of writes) {
      if (w.kind !== 'update' || w.data?.releaseConfirmedAt === undefined) continue;
      const m = w.path.slice('macs/'.length);
      const prior = before.claims.get(m);
      const doc = prior && prior.data !== 'corrupt' ? prior.data : undefined;
      expect({ m, trusted, recorded: doc?.uid, stored: stored.has(m) }).toEqual({
        m,
        trusted: true,
        recorded: uid ?? '(a uid)',
        stored: false,
      });
    }
  }

  it('UPDATE (planClaims, leftovers released)', () => {
    fc.assert(
      fc.property(claimsArb, requestArb, (claims, req) => {
        const before = toState(claims);
        const storedMacs = new Set(req.stored);
        const result = planClaims(
          request(
            req.keep.map((m, i) => user(`k${i}`, m, i)),
            {
              owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: req.kind },
              uidRule: 'must-match',
              leftovers: 'release',
              storedMacs,
              ...(req.uid !== undefined ? { uid: req.uid } : {}),
            },
          ),
          before,
          [],
        );
        if (result.kind !== 'plan') return;
        expectOnlyProvenConfirmations(result.plan.writes, before, req.uid, storedMacs, true);
      }),
      { numRuns: 2_000 },
    );
  });

  it('DELETE (planRelease), for VMs and for pods (whose oldObject proves nothing)', () => {
    fc.assert(
      fc.property(claimsArb, requestArb, (claims, req) => {
        const before = toState(claims);
        const storedMacs = new Set(req.stored);
        const plan = planRelease(
          {
            owner: { cluster: 'c', namespace: 'ns', name: 'vm1', kind: req.kind },
            uid: req.uid,
            requestUid: 'del',
            now: NOW,
            cooldownMs: 600_000,
            storedMacs,
            storedMacsTrusted: req.trusted,
          },
          before,
        );
        expectOnlyProvenConfirmations(plan.writes, before, req.uid, storedMacs, req.trusted);
      }),
      { numRuns: 2_000 },
    );
  });
});
