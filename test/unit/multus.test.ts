import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_ATTACHMENTS, parseNetworks, renderNetworks } from '../../shared/multus.js';

/** A DNS-1123 label, as Multus requires of network and namespace names in the short form. */
const label = fc
  .tuple(
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'),
    fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'), maxLength: 20 }),
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'),
  )
  .map(([a, mid, z]) => a + mid + z);
const ifname = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789_.-'),
  minLength: 1,
  maxLength: 15,
});
const item = fc.record({
  namespace: fc.option(label, { nil: undefined }),
  name: label,
  iface: fc.option(ifname, { nil: undefined }),
});
const mac = fc
  .integer({ min: 0, max: 0xffff })
  .map((n) => `02:00:00:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`);

/** Any JSON value, for the fields macpool does not know (they must come back exactly as given). */
const json = fc.jsonValue({ maxDepth: 3 });
const element = fc
  .tuple(
    label,
    fc.option(label, { nil: undefined }),
    fc.option(mac, { nil: undefined }),
    fc.option(ifname, { nil: undefined }),
    fc.dictionary(
      fc
        .string({ minLength: 1, maxLength: 8 })
        .filter(
          (k) =>
            !['name', 'namespace', 'mac', 'interface', 'interfaceRequest', 'ips', 'cni-args', '__proto__'].includes(k),
        ),
      json,
      { maxKeys: 3 },
    ),
    fc.boolean(),
  )
  .map(([name, namespace, m, iface, extra, extraFirst]) => {
    const known = {
      name,
      ...(namespace ? { namespace } : {}),
      ...(m ? { mac: m } : {}),
      ...(iface ? { interface: iface } : {}),
    };
    return extraFirst ? { ...extra, ...known } : { ...known, ...extra };
  });

describe('the networks annotation (multus.ts)', () => {
  it('every short-form list is read as Multus reads it and written back as the JSON list it stands for', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 8 }), fc.constantFrom('', ' ', '  '), (items, pad) => {
        const text = items
          .map((i) => `${pad}${i.namespace ? `${i.namespace}/` : ''}${i.name}${i.iface ? `@${i.iface}` : ''}${pad}`)
          .join(',');
        const parsed = parseNetworks(text);
        expect(parsed?.ok).toBe(true);
        if (!parsed?.ok) return;
        const { networks } = parsed;
        expect(networks.form).toBe('short');
        expect(networks.attachments.map((a) => a.interface)).toEqual(items.map((i, n) => i.iface ?? `net${n + 1}`));
        expect(networks.attachments.every((a) => a.macText === undefined)).toBe(true);
        const macs = new Map(items.map((_, n) => [n, `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`]));
        expect(JSON.parse(renderNetworks(networks, macs))).toEqual(
          items.map((i, n) => ({
            name: i.name,
            ...(i.namespace ? { namespace: i.namespace } : {}),
            ...(i.iface ? { interface: i.iface } : {}),
            mac: macs.get(n),
          })),
        );
      }),
    );
  });

  it('every JSON-list element comes back exactly as given (fields, values, order); only a missing `mac` is added', () => {
    fc.assert(
      fc.property(fc.array(element, { minLength: 1, maxLength: 8 }), (elements) => {
        const parsed = parseNetworks(JSON.stringify(elements, null, 2));
        expect(parsed?.ok).toBe(true);
        if (!parsed?.ok) return;
        const missing = parsed.networks.attachments.filter((a) => a.macText === undefined);
        expect(missing.map((a) => a.index)).toEqual(elements.flatMap((e, i) => ('mac' in e ? [] : [i])));
        const macs = new Map(missing.map((a) => [a.index, `02:aa:00:00:00:${a.index.toString(16).padStart(2, '0')}`]));
        const written = JSON.parse(renderNetworks(parsed.networks, macs)) as Record<string, unknown>[];
        expect(written).toHaveLength(elements.length);
        for (const [i, e] of elements.entries()) {
          // As JSON values: a number is written back in JSON's own form (`1.0` as `1`, `-0` as `0`).
          const expected = JSON.parse(JSON.stringify('mac' in e ? e : { ...e, mac: macs.get(i) }));
          expect(Object.keys(written[i]!)).toEqual(Object.keys(expected));
          expect(written[i]).toEqual(expected);
        }
      }),
    );
  });

  it('no text makes the reader throw: it reads networks, finds none, or says what is wrong', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: fc.constantFrom(...'ab/@, [{"}]:') })), (text) => {
        const parsed = parseNetworks(text);
        if (parsed !== undefined && !parsed.ok) expect(parsed.problem.length).toBeGreaterThan(0);
        if (parsed?.ok) expect(parsed.networks.attachments.length).toBeGreaterThan(0);
      }),
    );
  });

  it('refuses more attachments than one commit should carry', () => {
    const many = Array.from({ length: MAX_ATTACHMENTS + 1 }, (_, i) => `n${i}`).join(',');
    expect(parseNetworks(many)).toEqual({
      ok: false,
      problem: `lists ${MAX_ATTACHMENTS + 1} networks; at most ${MAX_ATTACHMENTS} are served`,
    });
    expect(parseNetworks(many.split(',').slice(1).join(','))?.ok).toBe(true);
  });

  it.each(['MAC', 'Mac', 'Interface', 'NAME', 'Namespace', 'IPS', 'Cni-Args'])(
    'refuses the key %s: Multus (Go) would read it as the lower-case field, macpool would not',
    (key) => {
      const parsed = parseNetworks(JSON.stringify([{ name: 'br1', mac: '', [key]: '02:00:00:00:00:99' }]));
      expect(parsed).toEqual({ ok: false, problem: expect.stringContaining(`key "${key}" is`) });
    },
  );

  it.each([
    { text: '[{"name":"a","mac":null,"namespace":null,"interface":null}]', interfaces: ['net1'] },
    { text: undefined, result: undefined },
    { text: '', result: undefined },
    { text: '[]', result: undefined },
    { text: '[{"name":"a","interfaceRequest":"old1"}]', interfaces: ['old1'] },
    { text: '[{"name":"a","interface":""}]', interfaces: ['net1'] },
  ])('reads $text', ({ text, result, interfaces }) => {
    const parsed = parseNetworks(text);
    if (interfaces === undefined) expect(parsed).toBe(result);
    else expect(parsed?.ok && parsed.networks.attachments.map((a) => a.interface)).toEqual(interfaces);
  });
});
