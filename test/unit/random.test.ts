/**
 * The random draws behind candidate MACs: `randomBelow` (every probe and free-list pick) and `sample` (a dense
 * range's free list hands each request a few of its free MACs). Both must stay in bounds, never repeat an item, and
 * not favour any part of a range, or concurrent requests would pile onto the same MACs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sample, shuffle } from '../../shared/freelist.js';
import { randomBelow } from '../../shared/engine.js';

/** Counts of `draw()` over `n` buckets; each must lie within `slack` of the mean (loose: never flaky). */
function expectEven(n: number, trials: number, draw: () => number, slack = 0.25) {
  const counts = new Array<number>(n).fill(0);
  for (let t = 0; t < trials; t++) counts[draw()]!++;
  const mean = trials / n;
  for (const c of counts) {
    expect(c).toBeGreaterThan(mean * (1 - slack));
    expect(c).toBeLessThan(mean * (1 + slack));
  }
}

describe('randomBelow', () => {
  it('stays in [0, n) on both sides of the 2^48 switch to the slow path', () => {
    for (const n of [1n, 2n, 3n, 255n, 256n, 4_096n, (1n << 48n) - 1n, 1n << 48n, (1n << 48n) + 5n, 1n << 60n]) {
      for (let i = 0; i < 200; i++) {
        const v = randomBelow(n);
        expect(v >= 0n && v < n, `randomBelow(${n}) gave ${v}`).toBe(true);
      }
    }
  });

  it('is even over a small range, and reaches the top of a range wider than 2^48', () => {
    expectEven(6, 12_000, () => Number(randomBelow(6n)));
    // The top half of a 2^49 range is only reachable by the slow path's extra bits.
    const n = 1n << 49n;
    let high = 0;
    for (let i = 0; i < 2_000; i++) if (randomBelow(n) >= n / 2n) high++;
    expect(high).toBeGreaterThan(800);
    expect(high).toBeLessThan(1_200);
  });

  it('refuses an empty range', () => {
    expect(() => randomBelow(0n)).toThrow('randomBelow needs n > 0');
  });
});

describe('sample', () => {
  it('returns min(count, length) distinct items of the list, for any list and count', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer(), { maxLength: 300 }), fc.nat(400), (items, count) => {
        const picked = sample([...items], count, randomBelow);
        expect(picked).toHaveLength(Math.min(count, items.length));
        expect(new Set(picked).size).toBe(picked.length);
        for (const p of picked) expect(items).toContain(p);
      }),
    );
  });

  it('picks every item equally often, wherever it sits in the list', () => {
    const items = [0, 1, 2, 3, 4, 5, 6, 7];
    expectEven(items.length, 16_000, () => sample([...items], 1, randomBelow)[0]!);
    // The second pick too (a partial shuffle that skewed later steps would show here).
    expectEven(items.length, 16_000, () => sample([...items], 2, randomBelow)[1]!);
  });

  it('draws one random number per item taken, not one per item in the list', () => {
    let draws = 0;
    const counting = (n: bigint) => {
      draws++;
      return randomBelow(n);
    };
    sample(
      Array.from({ length: 4_096 }, (_, i) => i),
      16,
      counting,
    );
    expect(draws).toBe(16);
    draws = 0;
    shuffle(
      Array.from({ length: 4_096 }, (_, i) => i),
      counting,
    );
    expect(draws).toBe(4_095);
  });
});
