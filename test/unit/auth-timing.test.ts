/**
 * S1: the credential check takes as long wherever the presented credential sits among the known ones (every
 * secret and every role credential derived from it), or when it matches none, because every one is compared.
 * Measured, not spied on: with 2,000 secrets (14,000 credentials) a check that stopped at the first match would be
 * thousands of times faster for the first than for the last, so a generous bound (3x) separates the two without
 * depending on a quiet machine. What this cannot show is that
 * each single comparison is constant-time; that rests on comparing fixed-length SHA-256 digests with
 * `crypto.timingSafeEqual` (functions/auth.ts).
 */
import { describe, expect, it } from 'vitest';
import { Credentials } from '../../functions/auth.js';
import { roleCredential } from '../../shared/credentials.js';
import type { ClusterToken } from '../../shared/env.js';
import { count, note } from '../support/record.js';

const N = 2_000;
const tokens: ClusterToken[] = Array.from({ length: N }, (_, i) => ({
  cluster: `c${i}`,
  token: `token-${i.toString().padStart(6, '0')}-${'x'.repeat(24)}`,
}));

const credentials = new Credentials(tokens);

describe('Credentials.identify compares every known credential (S1)', () => {
  const positions = [
    { name: 'first', presented: tokens[0]!.token, cluster: 'c0' },
    { name: 'middle', presented: roleCredential(tokens[N / 2]!.token, 'vm'), cluster: `c${N / 2}` },
    { name: 'last', presented: roleCredential(tokens[N - 1]!.token, 'reconcile'), cluster: `c${N - 1}` },
    { name: 'none', presented: `token-999999-${'y'.repeat(24)}`, cluster: undefined },
    { name: 'absent', presented: undefined, cluster: undefined },
  ];

  it.each(positions)('names the right cluster for the $name credential', ({ presented, cluster }) => {
    expect(credentials.identify(presented)?.cluster).toBe(cluster);
  });

  it('takes the same time whether the match is first, middle, last or absent', () => {
    const samples = new Map<string, number[]>(positions.map((p) => [p.name, []]));
    for (let round = 0; round < 25; round++) {
      // Interleaved, so a noisy moment touches every position alike; the first rounds warm the JIT up.
      for (const p of positions) {
        const started = process.hrtime.bigint();
        credentials.identify(p.presented);
        const ns = Number(process.hrtime.bigint() - started);
        if (round >= 5) samples.get(p.name)!.push(ns);
      }
    }
    const medians = [...samples.values()].map((s) => s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!);
    const ratio = Math.max(...medians) / Math.min(...medians);
    expect(ratio).toBeLessThan(3);
    note({
      area: 'Auth',
      case:
        `Credential check time with ${N.toLocaleString('en-US')} configured secrets (${(N * 7).toLocaleString('en-US')} ` +
        'credentials with the derived ones): match first, middle, last, none, no credential',
      runs: count(20 * positions.length, 'timed checks'),
      outcome:
        `medians ${medians.map((m) => (m / 1e6).toFixed(2)).join(' / ')} ms, slowest/fastest ${ratio.toFixed(2)} ` +
        '(stopping at the first match would make it about 1000)',
    });
  });
});
