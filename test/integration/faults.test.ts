/**
 * Firestore faults (F1, R3): a fault-injecting TCP proxy between the function and the real emulator, and an
 * emulator restarted mid-load with its data lost. Under a mixed load of CREATE, UPDATE and DELETE, every request
 * must be answered within 8 s, a request that needed a MAC must be denied `MAC pool unavailable` (never allowed
 * without it), service must resume by itself once the fault clears, and no MAC may be claimed twice or a claim
 * left half-written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, type RunningEmulator, startEmulator } from '../../scripts/emulator.js';
import { emulatorHost, type Harness, startFunction, testDb } from '../support/harness.js';
import {
  allowed,
  checkPool,
  denial,
  type Exchange,
  failOpenUids,
  Fleet,
  type Mix,
  percentile,
} from '../support/load.js';
import { count, note, SCALE, scaled } from '../support/record.js';
import { type Fault, type FaultProxy, startProxy } from '../support/proxy.js';

/** F1: the API server waits 10 s; the function must answer within 8. */
const ANSWER_WITHIN_MS = 8_000;
/** Longer than the function's 7 s Firestore budget, so requests sent during the fault meet it in full. */
const FAULT_MS = 8_000;
/** Service must be back this soon after the fault clears (the gRPC channel's reconnect backoff included). */
const RESUME_WITHIN_MS = 20_000;
const MIX: Mix = { create: 6, 'update-add': 2, 'update-remove': 1, delete: 1 };
const CONCURRENCY = 4;
/** A probe needing a MAC is sent this long into each fault, so it meets the fault for its whole budget. */
const PROBE_AFTER_MS = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(find: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined || Date.now() > deadline) return found;
    await sleep(50);
  }
}

/** The first answered request that needed a MAC, sent after `since`, and allowed: service is back. */
function resumed(fleet: Fleet, since: number): Exchange | undefined {
  return fleet.exchanges.find((e) => e.at >= since && e.needs > 0 && e.kind !== 'repeat' && allowed(e));
}

/** What every answer must satisfy, whatever the fault. */
function expectCleanAnswers(fleet: Fleet) {
  const unanswered = fleet.exchanges.filter((e) => e.error !== undefined || e.status !== 200);
  expect(unanswered.map((e) => `${e.kind} ${e.vm}: ${denial(e)}`)).toEqual([]);
  const slow = fleet.exchanges.filter((e) => e.ms >= ANSWER_WITHIN_MS);
  expect(slow.map((e) => `${e.kind} ${e.vm}: ${Math.round(e.ms)} ms`)).toEqual([]);
  // A denial is only ever the pool being unavailable (503), never a bug, and never for a DELETE.
  const wrongDenials = fleet.exchanges.filter(
    (e) =>
      !allowed(e) &&
      (e.kind === 'delete' ||
        e.body?.response?.status?.code !== 503 ||
        !String(e.body?.response?.status?.message).startsWith('MAC pool unavailable: ')),
  );
  expect(wrongDenials.map((e) => `${e.kind} ${e.vm}: ${denial(e)}`)).toEqual([]);
  // Allowed only with every MAC it needed, and no MAC handed to two VMs.
  expect(fleet.violations).toEqual([]);
}

/** Every probe denied because the pool was unavailable (a wrong answer shows as itself). */
function expectDenied(probes: readonly Exchange[]) {
  expect(probes.map((p) => (allowed(p) ? 'allowed' : denial(p)))).toEqual(
    probes.map(() => expect.stringMatching(/^MAC pool unavailable: /)),
  );
}

interface FaultCase {
  name: string;
  /** A fault, or `flap`: reset every connection every 700 ms. */
  fault: Fault | 'flap';
  /** Whether requests sent during the fault must (true) or must not (false) be denied. */
  denies: boolean | undefined;
}

const CASES: FaultCase[] = [
  { name: 'a slow network (every packet 300 ms late)', fault: { kind: 'delay', ms: 300 }, denies: false },
  { name: 'a network slower than the budget (packets 9 s late)', fault: { kind: 'delay', ms: 9_000 }, denies: true },
  { name: 'hung connections (bytes held until the fault clears)', fault: { kind: 'hang' }, denies: true },
  { name: 'dropped connections (every connection reset)', fault: { kind: 'drop' }, denies: true },
  { name: 'refused connections (port closed)', fault: { kind: 'refuse' }, denies: true },
  { name: 'a flapping link (connections reset every 700 ms)', fault: 'flap', denies: undefined },
];

describe('Firestore faults through a proxy (F1)', () => {
  const cycles = scaled(1);

  it.concurrent.each(CASES)(
    '$name: answered within 8 s, denied without a MAC, resumes by itself, claims intact',
    async ({ name, fault, denies }) => {
      const proxy = await startProxy(emulatorHost());
      const h = await startFunction({ firestoreHost: proxy.host });
      const db = testDb(h.projectId);
      const fleet = new Fleet([{ id: 'f', url: h.url, alive: true, inflight: 0 }]);
      let stop = false;
      const load = fleet.run({ mix: MIX, concurrency: CONCURRENCY, until: () => stop });
      const windows: { from: number; to: number }[] = [];
      const resumeMs: number[] = [];
      /** Each probe, and when its fault began to clear. */
      const probes: { probe: Exchange; cleared: number }[] = [];
      try {
        for (let cycle = 0; cycle < cycles; cycle++) {
          // Steady state first: connections open, configuration cached.
          const healthy = fleet.exchanges.length + 2 * CONCURRENCY;
          await waitFor(() => (fleet.exchanges.length >= healthy ? true : undefined), 30_000);
          const from = fleet.now();
          const applying = applyFault(proxy, fault, FAULT_MS, () => fleet.now());
          // One request needing a MAC sent inside the fault, whatever the mix is doing (which may be, by
          // chance, only DELETEs and removals just then).
          await sleep(PROBE_AFTER_MS);
          const probing = fleet.probe();
          const cleared = await applying;
          probes.push({ probe: await probing, cleared });
          const to = fleet.now();
          windows.push({ from, to });
          // Waits past the bound, so a failure says how long resuming really took.
          const back = await waitFor(() => resumed(fleet, to), 3 * RESUME_WITHIN_MS);
          resumeMs.push(back === undefined ? Infinity : back.at + back.ms - to);
          // Let late bytes (a delay still draining) and the requests they carry finish before the next cycle.
          await sleep(Math.max(2_000, fault !== 'flap' && fault.kind === 'delay' ? fault.ms + 1_000 : 0));
        }
      } finally {
        stop = true;
        await load;
      }
      try {
        expectCleanAnswers(fleet);
        expect(resumeMs.filter((ms) => ms > RESUME_WITHIN_MS).map(Math.round)).toEqual([]);
        const denied = fleet.exchanges.filter((e) => !allowed(e));
        if (denies === true) {
          // A request needing a MAC sent into the fault met it for its whole budget (the fault outlasts it), and
          // was answered before the fault began to clear.
          expectDenied(probes.map(({ probe }) => probe));
          expect(probes.filter(({ probe, cleared }) => probe.at + probe.ms >= cleared)).toEqual([]);
        }
        if (denies === false) expect(denied).toEqual([]);
        // After the last recovery everything is allowed again.
        const settled = fleet.exchanges.filter((e) => e.at > windows.at(-1)!.to + Math.max(...resumeMs) + 500);
        expect(settled.filter((e) => !allowed(e)).map(denial)).toEqual([]);

        const check = await checkPool(db, fleet, { cluster: 'default', failOpen: failOpenUids(h.logs) });
        expect(check.corrupt).toEqual([]);
        expect(check.duplicates).toEqual([]);
        expect(check.partial).toEqual([]);
        expect(check.unexplained).toEqual([]);
        const ms = fleet.exchanges.map((e) => e.ms);
        note({
          area: 'Faults',
          case: `Firestore behind ${name}, ${FAULT_MS / 1000} s, under load (${CONCURRENCY} concurrent)`,
          runs: `${count(cycles, cycles === 1 ? 'cycle' : 'cycles')}, ${count(fleet.exchanges.length, 'requests')}`,
          outcome:
            `${denied.length} denied \`MAC pool unavailable\`, 0 allowed without a MAC; slowest answer ` +
            `${Math.round(Math.max(...ms))} ms (p99 ${Math.round(percentile(ms, 99))} ms); resumed ` +
            `${Math.round(Math.max(...resumeMs))} ms after the fault cleared; ${check.claims} claims: 0 duplicate, ` +
            `0 half-written, ${check.orphans.length} left by denied or fail-open requests`,
        });
      } finally {
        await h.close();
        await db.terminate();
        await proxy.close();
      }
    },
    120_000 * SCALE,
  );
});

/** Holds `fault` for `ms`, then clears it; returns `now()` just before it began to clear. */
async function applyFault(proxy: FaultProxy, fault: Fault | 'flap', ms: number, now: () => number): Promise<number> {
  if (fault !== 'flap') {
    await proxy.set(fault);
    await sleep(ms);
  } else {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await proxy.set({ kind: 'drop' });
      await sleep(50);
      await proxy.set({ kind: 'none' });
      await sleep(650);
    }
  }
  const clearing = now();
  await proxy.set({ kind: 'none' });
  return clearing;
}

describe('the emulator restarted mid-load, its data lost (R3)', () => {
  let emulator: RunningEmulator | undefined;
  let h: Harness | undefined;
  afterAll(async () => {
    await h?.close();
    await emulator?.stop();
  });

  it(
    'requests fail cleanly while it is down, and a reconcile from the VM inventory restores every claim',
    async () => {
      const port = await freePort();
      emulator = await startEmulator({ port });
      h = await startFunction({ firestoreHost: emulator.host });
      const fleet = new Fleet([{ id: 'r', url: h.url, alive: true, inflight: 0 }]);
      let stop = false;
      const load = fleet.run({ mix: MIX, concurrency: CONCURRENCY, until: () => stop });
      const cycles = scaled(1);
      const resumeMs: number[] = [];
      const downMs: number[] = [];
      let frozenMacs = 0;
      const probes: Exchange[] = [];
      try {
        for (let cycle = 0; cycle < cycles; cycle++) {
          await waitFor(() => (fleet.live.size >= 20 * (cycle + 1) ? true : undefined), 30_000);
          // The VMs stored so far stay untouched, so only a reconcile can bring their claims back.
          frozenMacs += fleet.freeze();
          const down = fleet.now();
          await emulator.stop();
          const probing = sleep(PROBE_AFTER_MS).then(() => fleet.probe());
          await sleep(FAULT_MS); // down longer than the budget, so requests meet the outage in full
          probes.push(await probing);
          emulator = await startEmulator({ port });
          const up = fleet.now();
          downMs.push(up - down);
          const back = await waitFor(() => resumed(fleet, up), RESUME_WITHIN_MS);
          resumeMs.push(back === undefined ? Infinity : back.at + back.ms - up);
          await sleep(2_000);
        }
      } finally {
        stop = true;
        await load;
      }
      expectCleanAnswers(fleet);
      expect(resumeMs.every((ms) => ms <= RESUME_WITHIN_MS)).toBe(true);
      const denied = fleet.exchanges.filter((e) => !allowed(e));
      // A CREATE sent while the emulator was down is denied before it comes back.
      expectDenied(probes);

      const db = testDb(h.projectId, emulator.host);
      try {
        const before = await checkPool(db, fleet, { cluster: 'default', failOpen: failOpenUids(h.logs) });
        // The claims of the VMs stored before a restart are gone (some may have been written again since by a
        // request that was denied during the outage and whose work went on: those record its uid).
        expect(frozenMacs).toBeGreaterThan(0);
        expect(before.healable).toBeGreaterThan(0);
        expect(before.duplicates).toEqual([]);
        expect(before.corrupt).toEqual([]);

        const res = await h.post('/reconcile', fleet.inventory());
        expect(res.status).toBe(200);
        expect(res.body.collisions).toEqual([]);
        expect(res.body.healed).toBe(before.healable);

        const after = await checkPool(db, fleet, { cluster: 'default', failOpen: failOpenUids(h.logs) });
        expect(after.missing).toEqual([]);
        expect(after.duplicates).toEqual([]);
        expect(after.corrupt).toEqual([]);
        note({
          area: 'Faults',
          case: 'Emulator stopped mid-load (all data lost) and restarted on the same port; then a reconcile',
          runs: `${count(cycles, cycles === 1 ? 'restart' : 'restarts')}, ${count(fleet.exchanges.length, 'requests')}`,
          outcome:
            `down ${(Math.max(...downMs) / 1000).toFixed(1)} s; ${denied.length} denied \`MAC pool unavailable\` ` +
            `(slowest answer ${Math.round(Math.max(...fleet.exchanges.map((e) => e.ms)))} ms); resumed ` +
            `${Math.round(Math.max(...resumeMs))} ms after the restart; the reconcile healed ${res.body.healed} ` +
            `claims of ${fleet.live.size} stored VMs, 0 missing after, 0 collisions`,
        });
      } finally {
        await db.terminate();
      }
    },
    180_000 * SCALE,
  );
});
