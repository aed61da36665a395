import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatMac, type Mac, MAC_MAX } from '../../shared/mac.js';
import { formatRange, validateRange } from '../../shared/range.js';

describe('validateRange (C1)', () => {
  it.each([
    { name: 'KMP default', start: '02:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF', size: 2n ** 40n },
    { name: 'one MAC', start: '02:00:00:00:00:05', end: '02:00:00:00:00:05', size: 1n },
    { name: 'across a byte boundary', start: '02:00:00:00:00:ff', end: '02:00:00:00:01:00', size: 2n },
    {
      name: 'across octets (KMP test 02.. to 03.. would be multicast; 02 to 04 is not)',
      start: '02:00:00:00:00:00',
      end: '04:00:00:00:00:00',
      size: 2n * 2n ** 40n + 1n,
    },
    { name: 'dash spelling', start: '0a-00-00-00-00-00', end: '0a-00-00-00-00-ff', size: 256n },
  ])('accepts $name', ({ start, end, size }) => {
    const r = validateRange(start, end);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.range.end - r.range.start + 1n).toBe(size);
  });

  it.each([
    {
      name: 'reversed (KMP test 0A.. to 02..)',
      start: '0A:00:00:00:00:00',
      end: '02:00:00:00:00:00',
      message: 'rangeStart 0a:00:00:00:00:00 is greater than rangeEnd 02:00:00:00:00:00',
    },
    {
      name: 'reversed in the last octet only',
      start: '02:00:00:00:00:02',
      end: '02:00:00:00:00:01',
      message: 'is greater than rangeEnd',
    },
    {
      name: 'reversed where bytewise comparison is fooled (04:00.. vs 02:ff..)',
      start: '04:00:00:00:00:00',
      end: '02:FF:FF:FF:FF:FF',
      message: 'is greater than rangeEnd',
    },
    {
      name: 'multicast start (KMP 03:..)',
      start: '03:00:00:00:00:00',
      end: '06:00:00:00:00:00',
      message: 'rangeStart 03:00:00:00:00:00 is a multicast address',
    },
    {
      name: 'multicast end (KMP 05:..)',
      start: '02:00:00:00:00:00',
      end: '05:00:00:00:00:00',
      message: 'rangeEnd 05:00:00:00:00:00 is a multicast address',
    },
    {
      name: 'not a MAC',
      start: 'invalid-mac',
      end: '02:00:00:00:00:00',
      message: 'rangeStart "invalid-mac" is not a 48-bit MAC address',
    },
    { name: 'a number', start: 42, end: '02:00:00:00:00:00', message: 'rangeStart "42" is not a 48-bit MAC address' },
    { name: 'missing start', start: undefined, end: '02:00:00:00:00:00', message: 'rangeStart is missing' },
    { name: 'empty end', start: '02:00:00:00:00:00', end: '', message: 'rangeEnd is missing' },
  ])('refuses $name, saying what is wrong and what is allowed', ({ start, end, message }) => {
    const r = validateRange(start, end);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.message).toContain(message);
      expect(r.message).toContain('allowed: two 48-bit unicast MACs');
    }
  });

  it.each([
    { name: 'vendor OUI', start: '00:50:56:00:00:00', end: '00:50:56:00:00:ff', warns: true },
    { name: 'locally administered', start: '02:00:00:00:00:00', end: '02:00:00:00:00:ff', warns: false },
    { name: 'end outside the local space', start: '0e:00:00:00:00:00', end: '10:00:00:00:00:00', warns: true },
  ])('$name: warning $warns, never a refusal', ({ start, end, warns }) => {
    const r = validateRange(start, end);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.warnings.length > 0).toBe(warns);
  });

  it('property: any two unicast MACs in order make a valid range, reversed they are refused', () => {
    const unicast = fc.bigInt({ min: 0n, max: MAC_MAX }).map((n) => n & ~(1n << 40n));
    fc.assert(
      fc.property(unicast, unicast, (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(validateRange(formatMac(lo as Mac), formatMac(hi as Mac)).ok).toBe(true);
        if (lo !== hi) expect(validateRange(formatMac(hi as Mac), formatMac(lo as Mac)).ok).toBe(false);
      }),
    );
  });
});

describe('formatRange', () => {
  it('writes both ends in canonical form', () => {
    const r = validateRange('02-00-00-00-00-FE', '0200.0000.0101');
    expect(r.ok && formatRange(r.range)).toBe('02:00:00:00:00:fe-02:00:00:00:01:01');
  });
});
