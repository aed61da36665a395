import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CellFigures,
  cellOf,
  claimDigest,
  DIGEST_MAX,
  FANOUT,
  inCell,
  namespaceDigest,
} from '../../shared/fingerprint.js';
import { formatMac, type Mac } from '../../shared/mac.js';

const mac = fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }).map((n) => formatMac(n as Mac));
const identity = fc.record({
  mac,
  cluster: fc.string({ minLength: 1, maxLength: 10 }),
  kind: fc.constantFrom('vm' as const, 'pod' as const),
  namespace: fc.string({ minLength: 1, maxLength: 10 }),
  name: fc.string({ maxLength: 10 }),
  uid: fc.option(fc.uuid(), { nil: undefined }),
  interface: fc.string({ minLength: 1, maxLength: 10 }),
});

describe('claim fingerprints (R7)', () => {
  it('every MAC has one cell of three buckets below 32, and lies in each of its prefixes only', () => {
    fc.assert(
      fc.property(mac, mac, (a, b) => {
        const cell = cellOf(a);
        expect(cell.every((x) => Number.isInteger(x) && x >= 0 && x < FANOUT)).toBe(true);
        for (let depth = 1; depth <= 3; depth++) expect(inCell(a, cell.slice(0, depth))).toBe(true);
        expect(inCell(b, cell)).toBe(cellOf(b).every((x, i) => x === cell[i]));
      }),
    );
  });

  it('a digest is a 31-bit integer, so a cluster sums millions of them exactly; any field changes it', () => {
    fc.assert(
      fc.property(identity, fc.constantFrom('cluster', 'kind', 'namespace', 'name', 'uid', 'interface'), (c, field) => {
        const d = claimDigest(c);
        expect(Number.isInteger(d) && d >= 0 && d < DIGEST_MAX).toBe(true);
        const changed = {
          ...c,
          [field]: field === 'kind' ? (c.kind === 'vm' ? 'pod' : 'vm') : `${String(c[field as keyof typeof c] ?? '')}x`,
        };
        // Equal only by a 2^-31 chance; fast-check's runs never hit it.
        expect(claimDigest(changed)).not.toBe(d);
      }),
    );
    expect(DIGEST_MAX * 1_000_000).toBeLessThan(Number.MAX_SAFE_INTEGER);
  });

  it("a cell's expected figures are the sums of its sub-cells'", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(mac, fc.integer({ min: 0, max: DIGEST_MAX - 1 })), { maxLength: 200 }),
        (entries) => {
          const figures = new CellFigures();
          for (const [m, d] of entries) figures.add(m, d);
          for (const [m] of entries) {
            const [b1, b2] = cellOf(m);
            const children = Array.from({ length: FANOUT }, (_, b) => figures.get([b1, b]));
            const parent = figures.get([b1]);
            expect(children.reduce((n, f) => n + f.count, 0)).toBe(parent.count);
            expect(children.reduce((n, f) => n + f.sum, 0)).toBe(parent.sum);
            const grandchildren = Array.from({ length: FANOUT }, (_, b) => figures.get([b1, b2, b]));
            expect(grandchildren.reduce((n, f) => n + f.count, 0)).toBe(figures.get([b1, b2]).count);
          }
        },
      ),
    );
  });

  it('a namespace digest reads only the opt labels', () => {
    const base = { 'mutatevirtualmachines.kubemacpool.io': 'ignore' };
    expect(namespaceDigest('lab', { ...base, team: 'a' })).toBe(namespaceDigest('lab', base));
    expect(namespaceDigest('lab', { ...base, 'mutatepods.kubemacpool.io': 'allocate' })).not.toBe(
      namespaceDigest('lab', base),
    );
    expect(namespaceDigest('lab2', base)).not.toBe(namespaceDigest('lab', base));
  });
});
