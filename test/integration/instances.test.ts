/**
 * Many instances, one pool: several function processes (the built dist/ under the functions-framework CLI, as
 * Cloud Functions runs it) serve one emulator project under a mixed load of CREATE, UPDATE, DELETE, dry runs and
 * exact repeats, and one of them is killed (SIGKILL) mid-load and started again. The pool must come out with no
 * MAC on two VMs, every repeat answered as the first time, and a reconcile from the stored VMs must find nothing
 * to heal but what the requests that died with the process left.
 */
import { randomUUID } from 'node:crypto';
import { ROLES, roleCredential } from '../../shared/credentials.js';
import { afterAll, describe, expect, it } from 'vitest';
import { reconcileHeaders } from '../support/credentials.js';
import { emulatorHost, testDb } from '../support/harness.js';
import {
  allowed,
  checkPool,
  denial,
  type Endpoint,
  failOpenUids,
  Fleet,
  jsonLines,
  type Mix,
} from '../support/load.js';
import { type FunctionProcess, spawnFunction, waitForHealthy } from '../support/process.js';
import { count, note, SCALE, scaled } from '../support/record.js';

const INSTANCES = 3;
const CLUSTER = 'east';
const MIX: Mix = { create: 5, 'update-add': 2, 'update-remove': 1, delete: 1, 'dry-create': 1, 'dry-update': 1 };

describe('several function processes on one pool', () => {
  const projectId = `instances-${randomUUID().slice(0, 8)}`;
  const token = `t-${randomUUID()}`;
  const env = {
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    GOOGLE_CLOUD_PROJECT: projectId,
    MACPOOL_TOKENS: `${CLUSTER}=${token}`,
  };
  /** Every process started, the killed ones included (their output is checked too). */
  const processes: FunctionProcess[] = [];
  /** The process serving each endpoint now. */
  const serving = new Map<string, FunctionProcess>();
  const db = testDb(projectId);

  /** Starts a process for the endpoint and returns its URL once it answers. */
  const serve = async (id: string): Promise<string> => {
    const p = await spawnFunction(env);
    processes.push(p);
    expect(await waitForHealthy(p)).toBe(true);
    serving.set(id, p);
    return p.url;
  };

  afterAll(async () => {
    for (const p of processes) await p.stop('SIGKILL');
    await db.terminate();
  });

  it(
    'mixed load with processes killed and restarted: no duplicate MAC, repeats identical, reconcile heals only the dead',
    async () => {
      const endpoints: Endpoint[] = await Promise.all(
        Array.from({ length: INSTANCES }, async (_, i) => ({
          id: `p${i}`,
          url: await serve(`p${i}`),
          secret: token,
          alive: true,
          inflight: 0,
        })),
      );
      const fleet = new Fleet(endpoints);
      const ops = scaled(450);
      const kills = scaled(1);
      /** Operations at which an instance is killed, spread over the middle of the load. */
      const killAt = Array.from({ length: kills }, (_, k) => Math.floor((ops * (k + 1)) / (kills + 2)));
      const inFlightAtKill: number[] = [];
      const restarting = new Map<string, Promise<void>>();

      const killOne = async (k: number) => {
        const victim = endpoints[k % INSTANCES]!;
        await restarting.get(victim.id);
        // The victim must be busy, so requests die with it.
        const deadline = Date.now() + 5_000;
        while (victim.inflight === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
        victim.alive = false;
        inFlightAtKill.push(victim.inflight);
        await serving.get(victim.id)!.stop('SIGKILL');
        restarting.set(
          victim.id,
          serve(victim.id).then((url) => {
            victim.url = url;
            victim.alive = true;
          }),
        );
      };

      const started = performance.now();
      await fleet.run({
        mix: MIX,
        concurrency: 12,
        ops,
        repeatRate: 0.25,
        onOp: async (n) => {
          const k = killAt.indexOf(n);
          if (k >= 0) await killOne(k);
        },
      });
      await Promise.all(restarting.values());
      const elapsed = performance.now() - started;

      // Only requests in flight on the killed process may fail; every other answer is an allowed one.
      const failed = fleet.exchanges.filter((e) => e.error !== undefined);
      const deniedAnswers = fleet.exchanges.filter((e) => e.error === undefined && !allowed(e));
      expect(deniedAnswers.map((e) => `${e.kind} ${e.vm}: ${denial(e)}`)).toEqual([]);
      expect(fleet.violations).toEqual([]);
      expect(fleet.repeatMismatches).toEqual([]);
      expect(fleet.of('repeat').filter((e) => e.error === undefined).length).toBeGreaterThan(0);

      const logs = processes.flatMap((p) => jsonLines(p.output()));
      const check = await checkPool(db, fleet, { cluster: CLUSTER, failOpen: failOpenUids(logs) });
      expect(check.corrupt).toEqual([]);
      expect(check.duplicates).toEqual([]);
      expect(check.dryWrites).toEqual([]);
      expect(check.partial).toEqual([]);
      // Whatever does not match the stored VMs was left by a request that died with its process.
      expect(check.unexplained).toEqual([]);
      const diedUids = new Set(failed.map((e) => e.uid));
      const diedVms = new Set(failed.map((e) => e.vm));
      for (const line of [...check.missing, ...check.orphans]) {
        expect([...diedUids, ...diedVms].some((id) => line.includes(id))).toBe(true);
      }

      const reconcile = await fetch(`${endpoints[0]!.url}/reconcile`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...reconcileHeaders(token) },
        body: JSON.stringify(fleet.inventory()),
      });
      expect(reconcile.status).toBe(200);
      const report = await reconcile.json();
      expect(report.collisions).toEqual([]);
      expect(report.conflicts).toBe(0);
      // R3 heals only MACs the dead requests released (U6: or binds again a release a dead UPDATE or DELETE left
      // unconfirmed); R2 keeps (young) only the claims they left behind.
      expect(report.healed + report.rebound).toBe(check.healable);
      expect(report.released).toBe(0);
      expect(report.skippedYoung).toBe(check.releasable);
      const after = await checkPool(db, fleet, { cluster: CLUSTER });
      expect(after.missing).toEqual([]);
      expect(after.duplicates).toEqual([]);

      // S1: the token never reaches a log line, in any process.
      const credentials = [token, ...ROLES.map((role) => roleCredential(token, role))];
      for (const p of processes) for (const c of credentials) expect(p.output()).not.toContain(c);

      note({
        area: 'Instances',
        case:
          `${INSTANCES} processes (dist/ under the functions-framework CLI), one pool; mixed CREATE, UPDATE, ` +
          `DELETE, dry runs and exact repeats at concurrency 12; a process SIGKILLed mid-load and restarted`,
        runs:
          `${count(fleet.exchanges.length, 'requests')} (${fleet.of('repeat').length} repeats), ` +
          `${count(kills, kills === 1 ? 'kill' : 'kills')} (${inFlightAtKill.join(', ')} requests in flight), ` +
          `${(elapsed / 1000).toFixed(0)} s`,
        outcome:
          `${failed.length} requests died with their process, every other one allowed; ${fleet.live.size} VMs ` +
          `stored, 0 duplicate MACs; ${fleet.repeatMismatches.length} repeats answered differently; the ` +
          `reconcile healed ${report.healed}, bound ${report.rebound} again and kept ${report.skippedYoung} young ` +
          `claims, all from dead requests, 0 collisions; secret and role credentials in 0 log lines`,
      });
    },
    180_000 * SCALE,
  );
});
