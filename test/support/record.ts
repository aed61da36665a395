/**
 * The reliability record: hardening tests note what they tried and what came of it, and `scripts/reliability.ts`
 * runs them longer (MACPOOL_RELIABILITY_SCALE) and turns the notes into the table of docs/reliability.md. In CI
 * neither variable is set: scale 1, and nothing is written.
 */
import { appendFileSync } from 'node:fs';
import { expect } from 'vitest';

/** How much longer than CI to run: more requests, more fuzz runs, more fault cycles. */
export const SCALE = scaleFromEnv(process.env.MACPOOL_RELIABILITY_SCALE);
const RECORD_FILE = process.env.MACPOOL_RELIABILITY_RECORD;

export interface Note {
  /** Table section: Faults, Instances, Hostile input, Limits, Auth, Releases. */
  readonly area: string;
  /** What was tried, in a few words. */
  readonly case: string;
  /** How many times: requests, fuzz runs, fault cycles... with the unit, e.g. "1,204 requests". */
  readonly runs: string;
  /** What came of it, measured. */
  readonly outcome: string;
}

/** Notes a case for the reliability table (a no-op unless the reliability script runs the tests). */
export function note(n: Note): void {
  if (RECORD_FILE === undefined) return;
  const test = expect.getState().currentTestName ?? '';
  appendFileSync(RECORD_FILE, JSON.stringify({ ...n, test, scale: SCALE }) + '\n');
}

/** `n` scaled, rounded up. */
export function scaled(n: number): number {
  return Math.ceil(n * SCALE);
}

export function count(n: number, unit: string): string {
  return `${n.toLocaleString('en-US')} ${unit}`;
}

function scaleFromEnv(text: string | undefined): number {
  if (text === undefined || text === '') return 1;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 1) throw new Error(`MACPOOL_RELIABILITY_SCALE must be a number >= 1, got ${text}`);
  return n;
}
