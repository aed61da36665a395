import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatMac, isLocallyAdministered, isMulticast, type Mac, MAC_MAX, parseMac } from '../../shared/mac.js';
import { derivedCandidate, randomBelow, randomCandidates } from '../../shared/engine.js';
import type { MacRange } from '../../shared/range.js';
import { localOnly, MAX_LIST_ENTRIES, type PoolRanges, UsableSet, validatePool } from '../../shared/usable.js';

const MULTICAST_BIT = 1n << 40n;
const OCTET = 1n << 40n;

/** The rule of C5 and C6, written as plainly as possible: the oracle every property compares with. */
function usableByRule(p: PoolRanges, mac: bigint): boolean {
  if (isMulticast(mac as Mac)) return false;
  if (p.excluded.some((r) => mac >= r.start && mac <= r.end)) return false;
  return [p.range, ...p.additional].some(
    (r) => mac >= r.start && mac <= r.end && (!localOnly(r) || isLocallyAdministered(mac as Mac)),
  );
}

/**
 * The size by a sweep: between two consecutive breakpoints (range and exclusion edges, first-octet boundaries)
 * the rule gives the same answer for every MAC, so one test per piece counts the piece.
 */
function sizeBySweep(p: PoolRanges): bigint {
  const points = new Set<bigint>([0n, MAC_MAX + 1n]);
  for (const r of [p.range, ...p.additional, ...p.excluded]) points.add(r.start).add(r.end + 1n);
  for (let k = 0n; k <= 256n; k++) points.add(k * OCTET);
  const sorted = [...points].filter((x) => x <= MAC_MAX + 1n).sort((a, b) => (a < b ? -1 : 1));
  let size = 0n;
  for (let i = 0; i + 1 < sorted.length; i++) if (usableByRule(p, sorted[i]!)) size += sorted[i + 1]! - sorted[i]!;
  return size;
}

const asRange = (a: bigint, b: bigint): MacRange => {
  const [lo, hi] = a <= b ? [a, b] : [b, a];
  return { start: lo as Mac, end: hi as Mac };
};
const unicast = (m: bigint) => m & ~MULTICAST_BIT;

/** Any unicast-ended range: tiny, within one octet, or across many octets (most random pairs cross dozens). */
const anyRange: fc.Arbitrary<MacRange> = fc.oneof(
  fc
    .tuple(fc.bigInt({ min: 0n, max: MAC_MAX }), fc.bigInt({ min: 0n, max: MAC_MAX }))
    .map(([a, b]) => asRange(unicast(a), unicast(b))),
  fc
    .tuple(fc.bigInt({ min: 0n, max: MAC_MAX }), fc.bigInt({ min: 0n, max: 5000n }))
    .map(([a, n]) => asRange(unicast(a), unicast(a) + n > MAC_MAX ? unicast(a) : unicast(unicast(a) + n))),
  fc.bigInt({ min: 0n, max: MAC_MAX }).map((a) => asRange(unicast(a), unicast(a))),
);

/** Exclusions may have any ends; they only take MACs away. */
const anyExclusion: fc.Arbitrary<MacRange> = fc.oneof(
  anyRange,
  fc
    .tuple(fc.bigInt({ min: 0n, max: MAC_MAX }), fc.bigInt({ min: 0n, max: 2n ** 41n }))
    .map(([a, n]) => asRange(a, a + n > MAC_MAX ? MAC_MAX : a + n)),
);

const anyPool: fc.Arbitrary<PoolRanges> = fc.record({
  range: anyRange,
  additional: fc.array(anyRange, { maxLength: 3 }),
  excluded: fc.array(anyExclusion, { maxLength: 5 }),
});

/** A MAC worth probing: anywhere, or right at and around an interval's edge. */
function probes(set: UsableSet, pick: bigint[]): bigint[] {
  const edges = set.intervals.flatMap((r) => [r.start - 1n, r.start, r.end, r.end + 1n]);
  return [...pick, ...edges].filter((m) => m >= 0n && m <= MAC_MAX);
}

describe('UsableSet: properties over any pool (C5, C6)', () => {
  it('every MAC it can hand out is unicast, inside a range, outside every exclusion, local where C5 says', () => {
    fc.assert(
      fc.property(anyPool, fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n }), { maxLength: 20 }), (p, picks) => {
        const set = new UsableSet(p);
        fc.pre(set.size > 0n);
        for (const i of [0n, set.size - 1n, ...picks]) {
          const mac = set.at(i);
          expect(isMulticast(mac)).toBe(false);
          expect(usableByRule(p, mac)).toBe(true);
          const inLocalOnly = [p.range, ...p.additional].filter((r) => mac >= r.start && mac <= r.end);
          if (inLocalOnly.every(localOnly)) expect(isLocallyAdministered(mac)).toBe(true);
        }
      }),
    );
  });

  it('size equals the count the rule gives, piece by piece', () => {
    fc.assert(fc.property(anyPool, (p) => new UsableSet(p).size === sizeBySweep(p)));
  });

  it('membership agrees with the rule everywhere, edges included', () => {
    fc.assert(
      fc.property(anyPool, fc.array(fc.bigInt({ min: 0n, max: MAC_MAX }), { maxLength: 20 }), (p, picks) => {
        const set = new UsableSet(p);
        for (const m of probes(set, picks)) expect(set.has(m as Mac)).toBe(usableByRule(p, m));
      }),
    );
  });

  it('at and rank are inverse, and at is strictly increasing', () => {
    fc.assert(
      fc.property(
        anyPool,
        fc.array(fc.bigInt({ min: 0n, max: 2n ** 48n }), { minLength: 2, maxLength: 20 }),
        (p, is) => {
          const set = new UsableSet(p);
          fc.pre(set.size > 0n);
          const positions = [...new Set(is.map((i) => i % set.size))].sort((a, b) => (a < b ? -1 : 1));
          let previous = -1n;
          for (const i of positions) {
            const mac = set.at(i);
            expect(set.rank(mac)).toBe(i);
            expect(mac > previous).toBe(true);
            previous = mac;
          }
          for (const m of probes(set, [])) {
            const rank = set.rank(m as Mac);
            if (rank === undefined) expect(set.has(m as Mac)).toBe(false);
            else expect(set.at(rank)).toBe(m);
          }
        },
      ),
    );
  });

  it('a segment is a run of consecutive usable MACs starting at the given position', () => {
    fc.assert(
      fc.property(
        anyPool,
        fc.bigInt({ min: 0n, max: 2n ** 50n }),
        fc.bigInt({ min: 1n, max: 2n ** 42n }),
        (p, i, n) => {
          const set = new UsableSet(p);
          fc.pre(set.size > 0n);
          const seg = set.segment(i, n);
          const first = set.rank(seg.start)!;
          expect(first).toBe(i % set.size);
          expect(seg.end - seg.start + 1n <= n).toBe(true);
          // Consecutive ranks and consecutive MACs: no hole inside a segment.
          const last = set.rank(seg.end);
          expect(last).toBe(first + (seg.end - seg.start));
        },
      ),
    );
  });

  it('walking segments from any offset visits every usable MAC once (small pools, enumerated)', () => {
    const small = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.bigInt({ min: 0n, max: 2n ** 40n - 600n }))
      .chain(([octet, base]) => {
        const origin = BigInt(octet & ~1) * OCTET + base;
        const r = fc
          .tuple(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: 300n }))
          .map(([a, b]) => asRange(origin + a, origin + b));
        return fc.record({
          range: r,
          additional: fc.array(r, { maxLength: 2 }),
          excluded: fc.array(r, { maxLength: 4 }),
          offset: fc.bigInt({ min: 0n, max: 1000n }),
          window: fc.bigInt({ min: 1n, max: 40n }),
          origin: fc.constant(origin),
        });
      });
    fc.assert(
      fc.property(small, ({ offset, window, origin, ...p }) => {
        const set = new UsableSet(p);
        const enumerated: bigint[] = [];
        for (let m = origin; m <= origin + 300n; m++) if (usableByRule(p, m)) enumerated.push(m);
        expect(set.size).toBe(BigInt(enumerated.length));
        fc.pre(set.size > 0n);
        const seen: bigint[] = [];
        for (let at = offset, covered = 0n; covered < set.size;) {
          const seg = set.segment(at, window < set.size - covered ? window : set.size - covered);
          for (let m = seg.start; m <= seg.end; m++) seen.push(m);
          covered += seg.end - seg.start + 1n;
          at += seg.end - seg.start + 1n;
        }
        expect(seen.sort((a, b) => (a < b ? -1 : 1))).toEqual(enumerated);
      }),
    );
  });

  it('costs the same for 2^47 MACs as for 256: no step grows with the size of a range', () => {
    const wide = new UsableSet({
      range: { start: 0x020000000000n as Mac, end: 0xfeffffffffffn as Mac },
      additional: [],
      excluded: Array.from({ length: 64 }, (_, k) => ({
        start: (0x020000000000n + BigInt(k) * 4096n) as Mac,
        end: (0x020000000000n + BigInt(k) * 4096n + 15n) as Mac,
      })),
    });
    expect(wide.size).toBe(64n * OCTET - 64n * 16n);
    // 64 local octets, the first cut by 64 holes (the first hole at its start): intervals, not MACs, are counted.
    expect(wide.intervals.length).toBe(64 + 63);
    const started = performance.now();
    for (let i = 0n; i < 20_000n; i++) wide.rank(wide.at(i * 7_919_000_000n));
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

/**
 * The usable MACs of a pool by brute force: every MAC of every range, judged by C5 from its bits alone (no code of
 * usable.ts), minus the exclusions. Only for pools of a few hundred MACs.
 */
function enumerateUsable(p: PoolRanges): bigint[] {
  const octet = (m: bigint) => m >> 40n;
  const local = (m: bigint) => (octet(m) & 2n) === 2n;
  const out = new Set<bigint>();
  for (const r of [p.range, ...p.additional]) {
    const localRange = local(r.start) && local(r.end);
    for (let m: bigint = r.start; m <= r.end; m++) {
      if ((octet(m) & 1n) === 1n) continue; // multicast
      if (localRange && !local(m)) continue;
      if (p.excluded.some((x) => m >= x.start && m <= x.end)) continue;
      out.add(m);
    }
  }
  return [...out].sort((a, b) => (a < b ? -1 : 1));
}

/** From `a` MACs before the end of first octet `k` to `b + 1` MACs into octet k+1: where per-octet rules change. */
function straddling(k: fc.Arbitrary<number>): fc.Arbitrary<MacRange> {
  return fc
    .record({ k, a: fc.integer({ min: 1, max: 64 }), b: fc.integer({ min: 0, max: 64 }) })
    .map(({ k, a, b }) => ({
      start: ((BigInt(k) << 40n) | (OCTET - BigInt(a))) as Mac,
      end: ((BigInt(k + 1) << 40n) | BigInt(b)) as Mac,
    }));
}

/**
 * Pools of such ranges: the range at octet k (any of 0..254, so even, odd, local and universal octets all occur,
 * at either end), more of them near k (to overlap) or anywhere, and exclusions inside them.
 */
const straddlingPool: fc.Arbitrary<PoolRanges> = fc
  .integer({ min: 0, max: 254 })
  .chain((k) => {
    const near = fc.integer({ min: Math.max(0, k - 1), max: Math.min(254, k + 1) });
    return fc.record({
      range: straddling(fc.constant(k)),
      additional: fc.array(straddling(fc.oneof(near, fc.integer({ min: 0, max: 254 }))), { maxLength: 3 }),
    });
  })
  .chain(({ range, additional }) => {
    const all = [range, ...additional];
    const inside = fc
      .record({ which: fc.nat(all.length - 1), from: fc.nat(130), length: fc.nat(40) })
      .map(({ which, from, length }) => {
        const r = all[which]!;
        const start = r.start + BigInt(from) > r.end ? r.end : r.start + BigInt(from);
        return { start: start as Mac, end: (start + BigInt(length) > r.end ? r.end : start + BigInt(length)) as Mac };
      });
    return fc.record({
      range: fc.constant(range),
      additional: fc.constant(additional),
      excluded: fc.array(inside, { maxLength: 4 }),
    });
  });

describe('UsableSet against brute force, across first-octet boundaries', () => {
  it('size, has, at(i) for every i and rank agree with enumerating every MAC of every range', () => {
    fc.assert(
      fc.property(straddlingPool, (p) => {
        const set = new UsableSet(p);
        const usable = enumerateUsable(p);
        expect(set.size).toBe(BigInt(usable.length));
        usable.forEach((mac, i) => {
          expect(set.at(BigInt(i))).toBe(mac);
          expect(set.rank(mac as Mac)).toBe(BigInt(i));
        });
        const members = new Set(usable);
        for (const r of [p.range, ...p.additional, ...p.excluded]) {
          for (let m = r.start - 2n; m <= r.end + 2n; m++) {
            expect(set.has(m as Mac)).toBe(members.has(m));
            if (!members.has(m)) expect(set.rank(m as Mac)).toBeUndefined();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('the generator reaches what it is for: odd and even, local and universal octets at both ends', () => {
    const seen = new Set<string>();
    const kinds = (m: bigint) => `${(m >> 40n) & 1n}${(m >> 41n) & 1n}`;
    fc.assert(
      fc.property(straddlingPool, (p) => {
        seen.add(`start ${kinds(p.range.start)}`).add(`end ${kinds(p.range.end)}`);
      }),
      { numRuns: 300 },
    );
    expect(seen.size).toBe(8);
  });
});

/** Pearson's chi-square against the uniform distribution over `k` cells. */
function chiSquare(counts: readonly number[], draws: number): number {
  const expected = draws / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

/** The chi-square value a uniform sample exceeds with probability about 1e-6 (Wilson-Hilferty). */
function criticalValue(degrees: number): number {
  const z = 4.753; // upper 1e-6 point of the standard normal
  const a = 2 / (9 * degrees);
  return degrees * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('candidates are uniform over the usable set', () => {
  // 64 usable MACs in runs of very different lengths (1, 3, 12, 48): picking a run first would favour the short ones.
  const pool: PoolRanges = {
    range: { start: 0x0a0000000000n as Mac, end: 0x0a000000007fn as Mac },
    additional: [],
    excluded: [
      { start: 0x0a0000000001n as Mac, end: 0x0a0000000010n as Mac },
      { start: 0x0a0000000014n as Mac, end: 0x0a0000000020n as Mac },
      { start: 0x0a000000002dn as Mac, end: 0x0a000000004fn as Mac },
    ],
  };
  const set = new UsableSet(pool);
  const draws = 64 * 400;

  it('the fixture is what the comment says', () => {
    expect(set.size).toBe(64n);
    expect(set.intervals.map((r) => Number(r.end - r.start + 1n))).toEqual([1, 3, 12, 48]);
  });

  it('at(random) passes a chi-square test; a run-first pick fails the same test', () => {
    const counts = new Array<number>(64).fill(0);
    for (let i = 0; i < draws; i++) counts[Number(set.rank(set.at(randomBelow(set.size)))!)]!++;
    expect(chiSquare(counts, draws)).toBeLessThan(criticalValue(63));

    const biased = new Array<number>(64).fill(0);
    for (let i = 0; i < draws; i++) {
      const run = set.intervals[Number(randomBelow(BigInt(set.intervals.length)))]!;
      const mac = (run.start + randomBelow(run.end - run.start + 1n)) as Mac;
      biased[Number(set.rank(mac)!)]!++;
    }
    expect(chiSquare(biased, draws)).toBeGreaterThan(criticalValue(63));
  });
});

describe("the engine's candidates are uniform over the usable set", () => {
  // Holes of every kind: a multicast octet (03), a local-only range that drops a multicast (07, 09) and a universal
  // octet (08), and exclusions; runs of 1, 47, 5, 58, 16 and 8 usable MACs.
  const set = new UsableSet({
    range: { start: 0x02ffffffffc0n as Mac, end: 0x04000000003fn as Mac },
    additional: [{ start: 0x06fffffffff0n as Mac, end: 0x0a000000000fn as Mac }],
    excluded: [
      { start: 0x02ffffffffc1n as Mac, end: 0x02ffffffffd0n as Mac },
      { start: 0x040000000005n as Mac, end: 0x040000000005n as Mac },
      { start: 0x0a0000000000n as Mac, end: 0x0a0000000007n as Mac },
    ],
  });
  const size = Number(set.size);
  const draws = size * 300;
  const critical = criticalValue(size - 1);

  /** The chi-square of `draws` MACs from `pick`, counted by their rank in the usable set. */
  function chiSquareOf(pick: (i: number) => readonly Mac[]): number {
    const counts = new Array<number>(size).fill(0);
    for (let i = 0, n = 0; n < draws; i++) {
      for (const mac of pick(i)) {
        const rank = set.rank(mac);
        if (rank === undefined) throw new Error(`${formatMac(mac)} is not usable`);
        counts[Number(rank)]!++;
        n++;
      }
    }
    return chiSquare(
      counts,
      counts.reduce((a, b) => a + b, 0),
    );
  }

  /** A biased picker the test must catch: a run of usable MACs first, then a MAC in it. */
  const runFirst = (): Mac[] => {
    const run = set.intervals[Number(randomBelow(BigInt(set.intervals.length)))]!;
    return [(run.start + randomBelow(run.end - run.start + 1n)) as Mac];
  };

  it('the fixture is what the comment says', () => {
    expect(set.intervals.map((r) => Number(r.end - r.start + 1n))).toEqual([1, 47, 5, 58, 16, 8]);
    expect(size).toBe(135);
  });

  it('derivedCandidate over distinct owners passes a chi-square test; a run-first pick fails it', () => {
    const owner = (i: number) => ({ cluster: 'default', namespace: 'lab', name: `vm-${i}`, kind: 'vm' }) as const;
    expect(chiSquareOf((i) => [derivedCandidate(set, owner(i), 'uid', 'default')])).toBeLessThan(critical);
    expect(chiSquareOf(runFirst)).toBeGreaterThan(critical);
  });

  it('randomCandidates passes the same test (all of each draw counted); a run-first pick fails it', () => {
    expect(chiSquareOf(() => randomCandidates(set, 3, randomBelow))).toBeLessThan(critical);
    expect(chiSquareOf(runFirst)).toBeGreaterThan(critical);
  });
});

describe('validatePool', () => {
  const ok = (fields: Parameters<typeof validatePool>[0]) => {
    const r = validatePool(fields);
    if (!r.ok) throw new Error(r.message);
    return r;
  };

  it.each([
    {
      name: 'the wide range of C5: 83 first octets, 41 of them multicast',
      fields: { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FC:FF:FF:FF:FF:FF' },
      size: 42n * OCTET,
      warning: '45079976738816 of the 91259465105408 MACs of range aa:00:00:00:00:00-fc:ff:ff:ff:ff:ff are multicast',
    },
    {
      name: 'a wide range with both ends local keeps to the local space',
      fields: { rangeStart: 'AA:00:00:00:00:00', rangeEnd: 'FE:FF:FF:FF:FF:FF' },
      size: 22n * OCTET,
      warning: 'are universally administered (second least significant bit of the first octet clear)',
    },
    {
      name: 'mixed ends (local start, universal end): multicast out, universal kept',
      fields: { rangeStart: '02:ff:ff:ff:ff:fe', rangeEnd: '04:00:00:00:00:01' },
      size: 4n,
      warning: 'is not in the locally administered space',
    },
    {
      name: '16 MACs with 8 excluded',
      fields: {
        rangeStart: '02:00:00:00:00:00',
        rangeEnd: '02:00:00:00:00:0f',
        excludedRanges: [
          { rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:03' },
          { rangeStart: '02:00:00:00:00:08', rangeEnd: '02:00:00:00:00:09' },
          { rangeStart: '02:00:00:00:00:0e', rangeEnd: '02:00:00:00:00:0e' },
          { rangeStart: '02-00-00-00-00-0F', rangeEnd: '0200.0000.000f' },
        ],
      },
      size: 8n,
    },
    {
      name: 'two additional ranges, one overlapping the range',
      fields: {
        rangeStart: '02:00:00:00:00:00',
        rangeEnd: '02:00:00:00:00:0f',
        additionalRanges: [
          { rangeStart: '02:00:00:00:00:08', rangeEnd: '02:00:00:00:00:17' },
          { rangeStart: '0a:00:00:00:00:00', rangeEnd: '0a:00:00:00:00:ff' },
        ],
      },
      size: 24n + 256n,
    },
  ])('$name', ({ fields, size, warning }) => {
    const r = ok(fields);
    expect(r.usable.size).toBe(size);
    if (warning !== undefined) expect(r.warnings.join('\n')).toContain(warning);
  });

  it('a pool whose exclusions take everything is valid, with a warning that every allocation is denied', () => {
    const r = ok({
      rangeStart: '02:00:00:00:00:00',
      rangeEnd: '02:00:00:00:00:0f',
      excludedRanges: [{ rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:ff' }],
    });
    expect(r.usable.size).toBe(0n);
    expect(r.warnings.join('\n')).toContain('has no usable MAC');
  });

  it.each([
    {
      name: 'a list that is not a list',
      fields: { additionalRanges: { rangeStart: '02:00:00:00:01:00', rangeEnd: '02:00:00:00:01:ff' } },
      message: 'additionalRanges must be a list of at most 256 maps {rangeStart, rangeEnd}',
    },
    {
      name: 'an entry that is not a map',
      fields: { excludedRanges: ['02:00:00:00:00:05'] },
      message: 'excludedRanges must be a list of at most 256 maps',
    },
    {
      name: 'an entry without rangeEnd',
      fields: { excludedRanges: [{ rangeStart: '02:00:00:00:00:05' }] },
      message: 'excludedRanges[0].rangeEnd is missing',
    },
    {
      name: 'a multicast end in an additional range',
      fields: {
        additionalRanges: [
          { rangeStart: '0a:00:00:00:00:00', rangeEnd: '0a:00:00:00:00:01' },
          { rangeStart: '0a:00:00:00:00:00', rangeEnd: '0b:00:00:00:00:00' },
        ],
      },
      message: 'additionalRanges[1].rangeEnd 0b:00:00:00:00:00 is a multicast address',
    },
    {
      name: 'a reversed exclusion',
      fields: { excludedRanges: [{ rangeStart: '02:00:00:00:00:09', rangeEnd: '02:00:00:00:00:01' }] },
      message: 'excludedRanges[0].rangeStart 02:00:00:00:00:09 is greater than excludedRanges[0].rangeEnd',
    },
    {
      name: 'too many entries',
      fields: {
        excludedRanges: Array.from({ length: MAX_LIST_ENTRIES + 1 }, () => ({
          rangeStart: '02:00:00:00:00:01',
          rangeEnd: '02:00:00:00:00:01',
        })),
      },
      message: 'excludedRanges must be a list of at most 256',
    },
  ])('refuses the whole document for $name', ({ fields, message }) => {
    const r = validatePool({ rangeStart: '02:00:00:00:00:00', rangeEnd: '02:00:00:00:00:ff', ...fields });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toContain(message);
  });

  it('standing says why a MAC is not handed out', () => {
    const r = ok({
      rangeStart: '02:00:00:00:00:00',
      rangeEnd: '06:00:00:00:00:ff',
      excludedRanges: [{ rangeStart: '02:00:00:00:00:10', rangeEnd: '02:00:00:00:00:1f' }],
    });
    const standing = (m: string) => r.usable.standing(parseMac(m)!);
    expect(standing('02:00:00:00:00:01')).toBe('usable');
    expect(standing('02:00:00:00:00:11')).toBe('excluded');
    expect(standing('03:00:00:00:00:01')).toBe('multicast');
    expect(standing('04:00:00:00:00:01')).toBe('universal');
    expect(standing('06:00:00:00:01:00')).toBe('outside');
    expect(formatMac(r.usable.at(r.usable.size - 1n))).toBe('06:00:00:00:00:ff');
  });
});
