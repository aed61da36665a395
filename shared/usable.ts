/**
 * The pool as a set of usable MACs (C5, C6): the union of the configured ranges, minus the exclusions, minus every
 * multicast MAC, minus the universally administered MACs of a range whose two ends are both locally administered.
 *
 * The set is kept as sorted, disjoint intervals with a running count, so size, membership, the i-th usable MAC and
 * rank are a binary search: a range of 2^47 MACs costs what one of 256 costs. Every part of macpool that picks,
 * counts or scans MACs asks this module; none steps through a range by integer arithmetic of its own.
 */
import { z } from 'zod';
import { formatMac, isLocallyAdministered, type Mac } from './mac.js';
import { formatRange, type MacRange, validateRange } from './range.js';

/** The ranges that make up a pool, as validated from `config/kubeMacPoolConfiguration`. */
export interface PoolRanges {
  /** `rangeStart`-`rangeEnd`. */
  readonly range: MacRange;
  readonly additional: readonly MacRange[];
  readonly excluded: readonly MacRange[];
}

/** Why a MAC is not handed out automatically; `usable` when it is. */
export const MAC_STANDINGS = ['usable', 'outside', 'excluded', 'multicast', 'universal'] as const;
export type MacStanding = (typeof MAC_STANDINGS)[number];

/** How much of one configured range C5 takes away. */
export interface RangeUsage {
  readonly range: MacRange;
  readonly size: bigint;
  readonly multicast: bigint;
  /** Universally administered MACs dropped because both ends of the range are locally administered. */
  readonly universal: bigint;
  readonly localOnly: boolean;
}

const OCTET_SPAN = 1n << 40n; // MACs that share one first octet
const OCTET_MASK = OCTET_SPAN - 1n;

export class UsableSet {
  /** Sorted, disjoint, non-adjacent intervals of usable MACs. */
  readonly intervals: readonly MacRange[];
  readonly size: bigint;
  /** One line naming the ranges and exclusions; equal pools have equal keys. */
  readonly key: string;
  /** `before[i]`: usable MACs in the intervals ahead of interval i. */
  private readonly before: readonly bigint[];

  constructor(readonly ranges: PoolRanges) {
    const kept = [ranges.range, ...ranges.additional].flatMap(usablePart);
    this.intervals = subtract(merge(kept), merge(ranges.excluded));
    let total = 0n;
    this.before = this.intervals.map((r) => {
      const at = total;
      total += r.end - r.start + 1n;
      return at;
    });
    this.size = total;
    this.key = describeRanges(ranges);
  }

  /** Whether automatic allocation may hand out `mac`. */
  has(mac: Mac): boolean {
    return this.find(mac) >= 0;
  }

  /** The usable MAC at position `index`, taken modulo the size (the pool must not be empty). */
  at(index: bigint): Mac {
    if (this.size === 0n) throw new RangeError('the pool has no usable MAC');
    const i = ((index % this.size) + this.size) % this.size;
    let lo = 0;
    let hi = this.intervals.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.before[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return (this.intervals[lo]!.start + (i - this.before[lo]!)) as Mac;
  }

  /** The position of `mac` among the usable MACs, or undefined when it is not usable. `at(rank(m)) === m`. */
  rank(mac: Mac): bigint | undefined {
    const i = this.find(mac);
    return i < 0 ? undefined : this.before[i]! + (mac - this.intervals[i]!.start);
  }

  /**
   * The run of consecutive usable MACs that starts at position `index` (modulo the size), at most `limit` long:
   * one interval of MACs, all usable, so a scan of it reads nothing but the pool. Walking the whole pool from any
   * offset is a loop of `segment(offset)`, `offset += length`.
   */
  segment(index: bigint, limit: bigint): MacRange {
    const start = this.at(index);
    const interval = this.intervals[this.find(start)]!;
    const room = interval.end - start + 1n;
    return { start, end: (start + (limit < room ? limit : room) - 1n) as Mac };
  }

  /** Why `mac` is or is not usable; a MAC excluded and multicast alike is reported as multicast. */
  standing(mac: Mac): MacStanding {
    if (this.has(mac)) return 'usable';
    const within = [this.ranges.range, ...this.ranges.additional].filter((r) => mac >= r.start && mac <= r.end);
    if (within.length === 0) return 'outside';
    if ((mac & (1n << 40n)) !== 0n) return 'multicast';
    if (within.every((r) => localOnly(r) && !isLocallyAdministered(mac))) return 'universal';
    return 'excluded';
  }

  /** Index of the interval holding `mac`, or -1. */
  private find(mac: Mac): number {
    let lo = 0;
    let hi = this.intervals.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.intervals[mid]!;
      if (mac < r.start) hi = mid - 1;
      else if (mac > r.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }
}

/** C5: a range whose two ends are locally administered hands out only locally administered MACs. */
export function localOnly(range: MacRange): boolean {
  return isLocallyAdministered(range.start) && isLocallyAdministered(range.end);
}

/** What C5 makes of the MACs of one first octet in a range: usable, or dropped and why. */
function octetStanding(octet: bigint, local: boolean): 'usable' | 'multicast' | 'universal' {
  if ((octet & 1n) === 1n) return 'multicast';
  return local && (octet & 2n) === 0n ? 'universal' : 'usable';
}

/** The range cut at first-octet boundaries, each piece with what C5 makes of it. */
function octetPieces(range: MacRange): { piece: MacRange; standing: ReturnType<typeof octetStanding> }[] {
  const local = localOnly(range);
  const out: { piece: MacRange; standing: ReturnType<typeof octetStanding> }[] = [];
  for (let octet = range.start >> 40n; octet <= range.end >> 40n; octet++) {
    const lo = octet << 40n;
    const start = range.start > lo ? range.start : lo;
    const end = range.end < (lo | OCTET_MASK) ? range.end : lo | OCTET_MASK;
    out.push({ piece: { start: start as Mac, end: end as Mac }, standing: octetStanding(octet, local) });
  }
  return out;
}

/** The usable intervals of one range: one per first octet that is unicast (and local, where C5 says so). */
function usablePart(range: MacRange): MacRange[] {
  return octetPieces(range).flatMap((p) => (p.standing === 'usable' ? [p.piece] : []));
}

/** How many MACs of `range` C5 removes, and why (for warnings and `macpool status`). */
export function rangeUsage(range: MacRange): RangeUsage {
  const dropped = { usable: 0n, multicast: 0n, universal: 0n };
  for (const p of octetPieces(range)) dropped[p.standing] += p.piece.end - p.piece.start + 1n;
  const { multicast, universal } = dropped;
  return { range, size: range.end - range.start + 1n, multicast, universal, localOnly: localOnly(range) };
}

/** Sorted union of intervals, with overlapping and adjacent ones joined. */
export function merge(ranges: readonly MacRange[]): MacRange[] {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: { start: Mac; end: Mac }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end + 1n) {
      if (r.end > last.end) last.end = r.end;
    } else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** `keep` minus `drop`, both sorted and disjoint. */
function subtract(keep: readonly MacRange[], drop: readonly MacRange[]): MacRange[] {
  const out: MacRange[] = [];
  let j = 0;
  for (const k of keep) {
    let start = k.start;
    while (j < drop.length && drop[j]!.end < start) j++;
    for (let d = j; d < drop.length && drop[d]!.start <= k.end; d++) {
      if (drop[d]!.start > start) out.push({ start, end: (drop[d]!.start - 1n) as Mac });
      if (drop[d]!.end >= k.end) {
        start = (k.end + 1n) as Mac;
        break;
      }
      start = (drop[d]!.end + 1n) as Mac;
    }
    if (start <= k.end) out.push({ start, end: k.end });
  }
  return out;
}

/** `02:00:00:00:00:00-02:ff:ff:ff:ff:ff + 0a:...-0a:... minus 02:00:00:00:00:10-02:00:00:00:00:1f`. */
export function describeRanges(ranges: PoolRanges): string {
  const parts = [ranges.range, ...ranges.additional].map(formatRange).join(' + ');
  if (ranges.excluded.length === 0) return parts;
  return `${parts} minus ${ranges.excluded.map((r) => (r.start === r.end ? formatMac(r.start) : formatRange(r))).join(', ')}`;
}

/** The lists of `config/kubeMacPoolConfiguration` beside `rangeStart` and `rangeEnd` (C6). */
export const RANGE_LISTS = ['additionalRanges', 'excludedRanges'] as const;
export type RangeList = (typeof RANGE_LISTS)[number];
/** Entries per list: far more than any pool needs, and the document stays small. */
export const MAX_LIST_ENTRIES = 256;

const ListSchema = z
  .array(z.looseObject({ rangeStart: z.unknown().optional(), rangeEnd: z.unknown().optional() }))
  .max(MAX_LIST_ENTRIES);

/** The fields of `config/kubeMacPoolConfiguration` that make up the pool, as stored. */
export interface PoolFields {
  readonly rangeStart?: unknown;
  readonly rangeEnd?: unknown;
  readonly additionalRanges?: unknown;
  readonly excludedRanges?: unknown;
}

export type PoolResult = { ok: true; usable: UsableSet; warnings: string[] } | { ok: false; message: string };

/**
 * Validates the pool fields of `config/kubeMacPoolConfiguration` (C1 for every range, C6 for the lists) and builds
 * the usable set. One malformed entry makes the whole document invalid (C3 then keeps the last valid pool).
 */
export function validatePool(fields: PoolFields): PoolResult {
  const main = validateRange(fields.rangeStart, fields.rangeEnd);
  if (!main.ok) return { ok: false, message: main.message };
  const warnings = [...main.warnings];
  const lists: Record<RangeList, MacRange[]> = { additionalRanges: [], excludedRanges: [] };
  for (const list of RANGE_LISTS) {
    const value = fields[list];
    if (value === undefined || value === null) continue;
    const parsed = ListSchema.safeParse(value);
    if (!parsed.success) {
      return {
        ok: false,
        message:
          `${list} must be a list of at most ${MAX_LIST_ENTRIES} maps {rangeStart, rangeEnd} ` +
          '(one MAC: rangeStart equal to rangeEnd)',
      };
    }
    for (const [i, entry] of parsed.data.entries()) {
      const r = validateRange(entry.rangeStart, entry.rangeEnd, `${list}[${i}].`);
      if (!r.ok) return { ok: false, message: r.message };
      // An exclusion only takes MACs away: whether it lies in the local space does not matter.
      if (list === 'additionalRanges') warnings.push(...r.warnings);
      lists[list].push(r.range);
    }
  }
  const usable = new UsableSet({
    range: main.range,
    additional: lists.additionalRanges,
    excluded: lists.excludedRanges,
  });
  for (const range of [usable.ranges.range, ...usable.ranges.additional]) warnings.push(...usageWarnings(range));
  if (usable.size === 0n) {
    warnings.push(`the pool ${usable.key} has no usable MAC: every allocation is denied as "the range is full"`);
  }
  return { ok: true, usable, warnings };
}

/** What C5 takes out of a range, in words, for the log line and `macpool config`/`status` (none when nothing). */
export function usageWarnings(range: MacRange): string[] {
  const u = rangeUsage(range);
  const out: string[] = [];
  const of = `${u.size} MACs of range ${formatRange(range)}`;
  if (u.multicast > 0n) {
    out.push(`${u.multicast} of the ${of} are multicast (odd first octet) and are never handed out`);
  }
  if (u.universal > 0n) {
    out.push(
      `${u.universal} of the ${of} are universally administered (second least significant bit of the first octet ` +
        'clear) and are never handed out: both ends are locally administered, so the pool keeps to the local space',
    );
  }
  return out;
}
