/**
 * Finding free MACs where random probing would mostly miss: dense pools. Two strategies, both reading
 * outside any transaction (a commit's preconditions catch whatever changed since), both walking the usable
 * set (usable.ts) one run of consecutive usable MACs at a time, so they never read or offer an unusable MAC:
 *
 * - `scanWindow`: any pool size; reads the claims in windows from a random offset until enough gaps are found.
 * - `FreeList`: small pools; one full scan shared by all requests of this instance for a few seconds, so a
 *   request costs no scan at all. Losers of a race drop the MAC from the list and take another.
 */
import { freeForAllocation, type Snapshot } from './allocator.js';
import type { ClaimDoc } from './documents.js';
import { formatMac, type Mac, parseMac } from './mac.js';
import type { MacRange } from './range.js';
import type { ScannedClaim, Store } from './store.js';
import type { UsableSet } from './usable.js';

export interface FreeScan {
  /** Free MACs, shuffled so concurrent requests spread over them. */
  readonly candidates: Mac[];
  /** Released claims among the candidates, whose versions guard their reuse. */
  readonly seen: Map<string, Snapshot<ClaimDoc>>;
  /** The whole range was read just now: fewer candidates than needed means the range is full. */
  readonly exhaustive: boolean;
  readonly coolingDown: number;
}

const PAGE = 256;
const WINDOW = 4_096n;

/** Scans windows of the pool from a random offset until `want` free MACs are found or the pool is covered. */
export async function scanWindow(
  store: Store,
  usable: UsableSet,
  want: number,
  now: Date,
  cooldownMs: number,
  randomBelow: (n: bigint) => bigint,
): Promise<FreeScan> {
  const size = usable.size;
  const free: Mac[] = [];
  const seen = new Map<string, Snapshot<ClaimDoc>>();
  let coolingDown = 0;
  let offset = size === 0n ? 0n : randomBelow(size);
  let covered = 0n;
  while (covered < size && free.length < want) {
    const { start: from, end: to } = usable.segment(offset, min(WINDOW, size - covered));
    const docs = await store.scan(from, to, PAGE);
    const spanEnd = docs.length === PAGE ? parseMac(docs[docs.length - 1]!.mac)! : to;
    const taken = new Set<bigint>();
    for (const d of docs) {
      const mac = parseMac(d.mac)!;
      taken.add(mac);
      if (d.released === undefined) continue;
      seen.set(d.mac, d.released);
      if (freeForAllocation(d.released, now, cooldownMs)) free.push(mac);
      else coolingDown++;
    }
    for (let a = from; a <= spanEnd && free.length < want; a++) if (!taken.has(a)) free.push(a as Mac);
    covered += spanEnd - from + 1n;
    offset += spanEnd - from + 1n;
  }
  return { candidates: shuffle(free, randomBelow), seen, exhaustive: covered >= size, coolingDown };
}

interface FullScan {
  readonly key: string;
  readonly at: number;
  /** Never-claimed MACs (null) and released claims (their snapshot). */
  readonly free: Map<string, Snapshot<ClaimDoc> | null>;
}

/** A per-instance list of the free MACs of a small range, refreshed by a full scan every `ttlMs`. */
export class FreeList {
  private scanned: FullScan | undefined;
  /** Full scans under way, by pool key: a scan of another pool (the configuration just changed) is no answer. */
  private readonly inflight = new Map<string, Promise<FullScan>>();
  /** MACs in a commit of this instance right now; not offered to its other requests meanwhile. */
  private readonly held = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
    private readonly ttlMs = 2_000,
  ) {}

  /**
   * Up to `want` free MACs. Serves the shared list while it is fresh and holds enough; otherwise (or when
   * the list ran dry) scans the whole range again, and then `exhaustive` is true unless MACs were held back
   * for this instance's commits in flight.
   */
  async take(
    usable: UsableSet,
    need: number,
    want: number,
    now: Date,
    cooldownMs: number,
    randomBelow: (n: bigint) => bigint,
  ): Promise<FreeScan> {
    const key = usable.key;
    let fresh = false;
    let list = this.scanned;
    if (
      list === undefined ||
      list.key !== key ||
      this.clock() - list.at > this.ttlMs ||
      count(list, now, cooldownMs) < need
    ) {
      list = await this.rescan(usable);
      fresh = true;
    }
    const free: Mac[] = [];
    const seen = new Map<string, Snapshot<ClaimDoc>>();
    let coolingDown = 0;
    let heldBack = 0;
    for (const [mac, snap] of list.free) {
      if (snap !== null) seen.set(mac, snap);
      if (!freeForAllocation(snap, now, cooldownMs)) coolingDown++;
      else if (this.held.has(mac)) heldBack++;
      else free.push(parseMac(mac)!);
    }
    // While MACs are held back for commits still out, "full" is not final: one of them may fail.
    const exhaustive = fresh && heldBack === 0;
    return { candidates: sample(free, want, randomBelow), seen, exhaustive, coolingDown };
  }

  /**
   * Holds MACs back from this instance's other requests while a commit claiming them is out, for at most
   * `maxMs` (a hung commit must not keep the range from ever being called full). Returns the release.
   */
  hold(macs: readonly string[], maxMs: number): () => void {
    for (const mac of macs) this.held.set(mac, (this.held.get(mac) ?? 0) + 1);
    let holding = true;
    const release = () => {
      if (!holding) return;
      holding = false;
      clearTimeout(expiry);
      for (const mac of macs) {
        const n = this.held.get(mac) ?? 0;
        if (n <= 1) this.held.delete(mac);
        else this.held.set(mac, n - 1);
      }
    };
    const expiry = setTimeout(release, maxMs);
    expiry.unref();
    return release;
  }

  /** Drops MACs that are taken now (claimed by this instance, or lost to another request). */
  forget(macs: Iterable<string>): void {
    for (const mac of macs) this.scanned?.free.delete(mac);
  }

  private rescan(usable: UsableSet): Promise<FullScan> {
    const key = usable.key;
    let scan = this.inflight.get(key);
    if (scan === undefined) {
      scan = this.fullScan(usable)
        .then((done) => {
          // A scan of the old pool that ends after one of the new pool must not replace it.
          if (this.scanned === undefined || done.at >= this.scanned.at) this.scanned = done;
          return done;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, scan);
    }
    return scan;
  }

  /**
   * Reads the whole (small) pool: intervals closer than `SCAN_GAP` apart share one query (a few unclaimed holes
   * cost nothing to read past, a query per interval does), and the queries run in parallel.
   */
  private async fullScan(usable: UsableSet): Promise<FullScan> {
    const at = this.clock();
    const parts = await Promise.all(spans(usable.intervals).map((span) => this.scanSpan(span)));
    return { key: usable.key, at, free: new Map(parts.flat()) };
  }

  private async scanSpan(span: MacRange[]): Promise<[string, Snapshot<ClaimDoc> | null][]> {
    const claimed = new Map<bigint, ScannedClaim>();
    const end = span[span.length - 1]!.end;
    for (let next = span[0]!.start; ;) {
      const docs = await this.store.scan(next, end, 1000);
      for (const d of docs) claimed.set(parseMac(d.mac)!, d);
      if (docs.length < 1000) break;
      next = (parseMac(docs[docs.length - 1]!.mac)! + 1n) as Mac;
    }
    const free: [string, Snapshot<ClaimDoc> | null][] = [];
    for (const r of span) {
      for (let a = r.start; a <= r.end; a++) {
        const d = claimed.get(a);
        if (d === undefined) free.push([formatMac(a as Mac), null]);
        else if (d.released !== undefined) free.push([d.mac, d.released]);
      }
    }
    return free;
  }
}

/** Intervals of a small pool read by one query when less than this many MACs lie between them. */
const SCAN_GAP = 1_024n;

/** Groups sorted intervals into runs whose gaps are below `SCAN_GAP`. */
function spans(intervals: readonly MacRange[]): MacRange[][] {
  const out: MacRange[][] = [];
  for (const r of intervals) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start - last[last.length - 1]!.end <= SCAN_GAP) last.push(r);
    else out.push([r]);
  }
  return out;
}

function count(list: FullScan, now: Date, cooldownMs: number): number {
  let n = 0;
  for (const snap of list.free.values()) if (freeForAllocation(snap, now, cooldownMs)) n++;
  return n;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/**
 * `count` of `items` picked uniformly at random, in random order: the first steps of a Fisher-Yates shuffle, so a
 * request that wants 16 of a list of thousands draws 16 random numbers, not thousands. Reorders `items`.
 */
export function sample<T>(items: T[], count: number, random: (n: bigint) => bigint): T[] {
  const n = Math.min(count, items.length);
  for (let i = 0; i < n; i++) {
    const j = i + Number(random(BigInt(items.length - i)));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items.slice(0, n);
}

export function shuffle<T>(items: T[], random: (n: bigint) => bigint): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Number(random(BigInt(i + 1)));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
