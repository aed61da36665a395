/**
 * Fingerprints of claims, so a reconcile reads only what changed (R7).
 *
 * Every claim carries, written in the same write as the claim itself (no shared document: P1):
 * - `b1`, `b2`, `b3`: its cell, three levels of 32 buckets taken from a hash of the MAC (so 32,768 cells; the MAC is
 *   the document id, so a claim never moves between cells);
 * - `digest`: a 31-bit hash of what a reconcile checks of a bound claim: cluster, kind, namespace, name, uid,
 *   interface and MAC;
 * - `unsettled`: true for what a reconcile must always look at: pending claims, and releases not yet confirmed (U6).
 *
 * The inventory tells what the bound claims of a cluster should be: one per MAC a listed object carries, with that
 * object's digest. A reconcile compares, per cell, the count and the sum of digests of the cluster's bound claims
 * (Firestore `count()` and `sum()` aggregations, billed one read per up to 1,000 index entries) with the same figures
 * computed from the inventory, descends only into cells that differ, and reads the claims of those cells, plus the
 * unsettled claims. Cells that agree hold exactly the claims the inventory expects, so reading them would change
 * nothing. What a match can hide: a cell whose claims differ from the expected ones while count and digest sum both
 * agree; a difference in one claim changes the sum unless two 31-bit digests collide (2^-31), and several differences
 * cancel only by the same chance.
 */
import { createHash } from 'node:crypto';
import type { OwnerKind } from './documents.js';
import { OPT_LABELS } from './kubevirt.js';

/** Buckets per level, and levels: 32^3 = 32,768 cells. */
export const FANOUT = 32;
export const LEVELS = 3;
export const BUCKET_FIELDS = ['b1', 'b2', 'b3'] as const;
export const DIGEST_MAX = 2 ** 31;

export type Cell = readonly [number, number, number];

/** The cell of a MAC: 5 bits per level from SHA-256 of the canonical MAC. */
export function cellOf(mac: string): Cell {
  const h = createHash('sha256').update(`cell:${mac}`).digest();
  return [h[0]! & 31, h[1]! & 31, h[2]! & 31];
}

export interface DigestInput {
  readonly mac: string;
  readonly cluster: string;
  readonly kind: OwnerKind;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly interface: string;
}

/** The 31-bit digest of a bound claim's identity. */
export function claimDigest(c: DigestInput): number {
  const text = JSON.stringify([c.mac, c.cluster, c.kind, c.namespace, c.name, c.uid ?? '', c.interface]);
  return createHash('sha256').update(text).digest().readUInt32BE(0) & (DIGEST_MAX - 1);
}

/** The fingerprint fields of a claim document, for claimData to write with the claim. */
export function fingerprintFields(c: DigestInput, unsettled: boolean): Record<string, number | boolean> {
  const [b1, b2, b3] = cellOf(c.mac);
  return { b1, b2, b3, digest: claimDigest(c), unsettled };
}

/** Count and digest sum of a set of bound claims. */
export interface Figures {
  count: number;
  sum: number;
}

/**
 * Expected figures per cell prefix: `level` 1 keys on b1, 2 on b1/b2, 3 on b1/b2/b3. Built from the digests the
 * inventory implies.
 */
export class CellFigures {
  private readonly levels: Map<string, Figures>[] = [new Map(), new Map(), new Map()];

  add(mac: string, digest: number): void {
    const cell = cellOf(mac);
    for (let level = 1; level <= LEVELS; level++) {
      const key = cellKey(cell.slice(0, level));
      const figures = this.levels[level - 1]!.get(key) ?? { count: 0, sum: 0 };
      figures.count++;
      figures.sum += digest;
      this.levels[level - 1]!.set(key, figures);
    }
  }

  /** The expected figures of the cell prefix `prefix` (1 to 3 bucket numbers). */
  get(prefix: readonly number[]): Figures {
    return this.levels[prefix.length - 1]!.get(cellKey(prefix)) ?? { count: 0, sum: 0 };
  }
}

export function cellKey(prefix: readonly number[]): string {
  return prefix.join('/');
}

/** Whether a MAC lies in a cell prefix. */
export function inCell(mac: string, prefix: readonly number[]): boolean {
  const cell = cellOf(mac);
  return prefix.every((b, i) => cell[i] === b);
}

/** The digest of a namespace document: its name and the labels the pool reads (other labels do not count). */
export function namespaceDigest(namespace: string, labels: Readonly<Record<string, string>>): number {
  const relevant = OPT_LABELS.map((key) => [key, labels[key] ?? null]);
  const text = JSON.stringify([namespace, relevant]);
  return createHash('sha256').update(text).digest().readUInt32BE(0) & (DIGEST_MAX - 1);
}
