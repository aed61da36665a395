import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalMac,
  firstOctet,
  formatMac,
  isLocallyAdministered,
  isMulticast,
  type Mac,
  MAC_MAX,
  macFromBigInt,
  parseMac,
} from '../../shared/mac.js';

describe('parseMac / formatMac', () => {
  it.each([
    { name: 'colons, lower case', text: '02:00:00:00:00:0a', canonical: '02:00:00:00:00:0a' },
    { name: 'colons, upper case', text: '02:AB:CD:EF:01:23', canonical: '02:ab:cd:ef:01:23' },
    { name: 'dashes', text: '02-ab-cd-ef-01-23', canonical: '02:ab:cd:ef:01:23' },
    { name: 'dotted groups of four (Cisco)', text: '02ab.cdef.0123', canonical: '02:ab:cd:ef:01:23' },
    { name: 'all zero', text: '00:00:00:00:00:00', canonical: '00:00:00:00:00:00' },
    { name: 'all ones', text: 'FF:FF:FF:FF:FF:FF', canonical: 'ff:ff:ff:ff:ff:ff' },
  ])('accepts $name', ({ text, canonical }) => {
    expect(canonicalMac(text)).toBe(canonical);
  });

  it.each([
    { name: 'empty', text: '' },
    { name: 'five octets', text: '02:00:00:00:00' },
    { name: 'seven octets', text: '02:00:00:00:00:00:01' },
    { name: 'EUI-64 (KMP accepts it; a VM NIC cannot use it)', text: '02:00:00:ff:fe:00:00:01' },
    { name: 'mixed separators', text: '02:00-00:00:00:00' },
    { name: 'single hex digits', text: '2:0:0:0:0:1' },
    { name: 'non-hex', text: '02:00:00:00:00:0g' },
    { name: 'surrounding spaces', text: ' 02:00:00:00:00:01' },
    { name: 'no separators', text: '020000000001' },
    { name: 'dotted groups of two', text: '02.00.00.00.00.01' },
  ])('rejects $name', ({ text }) => {
    expect(parseMac(text)).toBeUndefined();
  });

  it('FF:FF:FF:FF:FF:FF is 2^48-1 and 00:00:00:00:00:00 is 0', () => {
    expect(parseMac('ff:ff:ff:ff:ff:ff')).toBe(MAC_MAX);
    expect(MAC_MAX).toBe(2n ** 48n - 1n);
    expect(parseMac('00:00:00:00:00:00')).toBe(0n);
  });

  it('property: format and parse are inverse for every 48-bit integer', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAC_MAX }), (n) => {
        const text = formatMac(n as Mac);
        expect(text).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        expect(parseMac(text)).toBe(n);
      }),
    );
  });

  it('property: any case and any of the three spellings parse to the same MAC', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: MAC_MAX }),
        fc.constantFrom(':', '-', '.'),
        fc.boolean(),
        (n, sep, upper) => {
          const hex = n.toString(16).padStart(12, '0');
          let text = sep === '.' ? hex.match(/..../g)!.join('.') : hex.match(/../g)!.join(sep);
          if (upper) text = text.toUpperCase();
          expect(parseMac(text)).toBe(n);
        },
      ),
    );
  });

  it('property: parseMac never throws and only accepts what it can format back', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        const mac = parseMac(text);
        if (mac !== undefined) expect(formatMac(mac).replace(/:/g, '')).toBe(text.replace(/[:.-]/g, '').toLowerCase());
      }),
    );
  });
});

describe('address bits', () => {
  it.each([
    { mac: '02:00:00:00:00:00', multicast: false, local: true, octet: 0x02 },
    { mac: '01:00:5e:00:00:01', multicast: true, local: false, octet: 0x01 },
    { mac: '03:00:00:00:00:00', multicast: true, local: true, octet: 0x03 },
    { mac: '00:50:56:00:00:01', multicast: false, local: false, octet: 0x00 },
    { mac: 'ff:ff:ff:ff:ff:ff', multicast: true, local: true, octet: 0xff },
  ])('$mac: multicast $multicast, locally administered $local', ({ mac, multicast, local, octet }) => {
    const m = parseMac(mac)!;
    expect(isMulticast(m)).toBe(multicast);
    expect(isLocallyAdministered(m)).toBe(local);
    expect(firstOctet(m)).toBe(octet);
  });

  it('macFromBigInt refuses what does not fit 48 bits', () => {
    expect(macFromBigInt(-1n)).toBeUndefined();
    expect(macFromBigInt(MAC_MAX + 1n)).toBeUndefined();
    expect(macFromBigInt(5n)).toBe(5n);
  });
});
