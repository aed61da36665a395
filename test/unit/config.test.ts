import { describe, expect, it } from 'vitest';
import { Cached, namespaceManaged, parsePoolConfig } from '../../shared/config.js';
import { rfc3339Nano, parseRfc3339 } from '../../shared/timestamp.js';
import { escapePointer, timestampOps } from '../../shared/patch.js';

describe('parsePoolConfig', () => {
  it('an absent range document means the KMP default range', () => {
    const { range } = parsePoolConfig(undefined, undefined);
    expect(range.ok && range.config.usable.key).toBe('02:00:00:00:00:00-02:ff:ff:ff:ff:ff');
    expect(range.ok && range.config.settings).toEqual({
      optMode: 'opt-out',
      podOptMode: 'opt-in',
      cooldownSeconds: 600,
      waitTimeSeconds: 300,
      releaseGuardPercent: 10,
    });
  });
  it('an existing but empty document is an error, not the default', () => {
    const { range } = parsePoolConfig({}, undefined);
    expect(range.ok).toBe(false);
  });
  it.each([
    { doc: { optMode: 'sometimes' }, message: 'optMode' },
    { doc: { cooldownSeconds: -1 }, message: 'cooldownSeconds' },
    { doc: { waitTimeSeconds: 'soon' }, message: 'waitTimeSeconds' },
  ])('invalid settings $doc are reported and the defaults kept', ({ doc, message }) => {
    const { range, settings } = parsePoolConfig(undefined, doc);
    expect(settings.ok).toBe(false);
    expect(!settings.ok && settings.reason).toContain(message);
    expect(range.ok && range.config.settings.optMode).toBe('opt-out');
  });
});

describe('namespaceManaged (V9)', () => {
  it.each([
    { labels: {}, mode: 'opt-out' as const, managed: true },
    { labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' }, mode: 'opt-out' as const, managed: false },
    { labels: { 'mutatevirtualmachines.kubemacpool.io': 'allocate' }, mode: 'opt-out' as const, managed: true },
    { labels: {}, mode: 'opt-in' as const, managed: false },
    { labels: { 'mutatevirtualmachines.kubemacpool.io': 'allocate' }, mode: 'opt-in' as const, managed: true },
    { labels: { 'mutatevirtualmachines.kubemacpool.io': 'ignore' }, mode: 'opt-in' as const, managed: false },
  ])('$mode with $labels: $managed', ({ labels, mode, managed }) => {
    expect(namespaceManaged(labels, mode)).toBe(managed);
  });
});

describe('Cached', () => {
  it('serves fresh values, refreshes stale ones in the background, and blocks past the maximum age', async () => {
    let now = 0;
    let loads = 0;
    const cache = new Cached(
      async () => ++loads,
      () => now,
      5_000,
      10_000,
    );
    expect(await cache.get()).toBe(1);
    now = 4_000;
    expect(await cache.get()).toBe(1);
    now = 6_000; // stale: served, refreshed behind
    expect(await cache.get()).toBe(1);
    await new Promise((r) => setTimeout(r, 0));
    expect(await cache.get()).toBe(2);
    now = 20_000; // too old: waits for the refresh
    expect(await cache.get()).toBe(3);
  });
  it('shares one load between concurrent callers', async () => {
    let loads = 0;
    const cache = new Cached(
      async () => ++loads,
      () => 0,
      5_000,
      10_000,
    );
    expect(await Promise.all([cache.get(), cache.get(), cache.get()])).toEqual([1, 1, 1]);
  });
  it('a failed load is retried by the next caller', async () => {
    let fail = true;
    const cache = new Cached(
      async () => {
        if (fail) throw new Error('down');
        return 'up';
      },
      () => 0,
      5_000,
      10_000,
    );
    await expect(cache.get()).rejects.toThrow('down');
    fail = false;
    expect(await cache.get()).toBe('up');
  });
});

describe('timestamps and patches', () => {
  it('rfc3339Nano prints nine fraction digits', () => {
    expect(rfc3339Nano(new Date('2026-11-27T10:00:00.123Z'), 456_789)).toBe('2026-11-27T10:00:00.123456789Z');
    expect(rfc3339Nano(new Date('2026-11-27T10:00:00Z'))).toBe('2026-11-27T10:00:00.000000000Z');
    expect(parseRfc3339('2026-11-27T10:00:00.123456789Z')).toBe(Date.parse('2026-11-27T10:00:00.123Z'));
    expect(parseRfc3339('yesterday')).toBeUndefined();
  });
  it('escapes JSON pointer segments (RFC 6901)', () => {
    expect(escapePointer('kubemacpool.io/transaction-timestamp')).toBe('kubemacpool.io~1transaction-timestamp');
    expect(escapePointer('a~b')).toBe('a~0b');
  });
  it('adds metadata.annotations only when absent', () => {
    expect(timestampOps(false, 't').map((o) => o.path)).toEqual([
      '/metadata/annotations',
      '/metadata/annotations/kubemacpool.io~1transaction-timestamp',
    ]);
    expect(timestampOps(true, 't').map((o) => o.path)).toEqual([
      '/metadata/annotations/kubemacpool.io~1transaction-timestamp',
    ]);
  });
});
