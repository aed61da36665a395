/**
 * R7 against the emulator: a reconcile that reads only the cells whose figures differ finds exactly what a full
 * read finds, for random divergences between the claims and a 2,000-VM inventory.
 */
import { randomUUID } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { clearProject } from '../../scripts/emulator.js';
import { claimData, type Write } from '../../shared/allocator.js';
import { type ClaimDoc, claimPath } from '../../shared/documents.js';
import { formatMac, type Mac } from '../../shared/mac.js';
import { parseInventory, prepareReconcile, reconcile } from '../../shared/reconcile.js';
import { Store } from '../../shared/store.js';
import { vm } from '../support/fixtures.js';
import { emulatorHost, testDb } from '../support/harness.js';

const N = 2_000;
const CLUSTER = 'east';
const T0 = Date.parse('2026-12-03T12:00:00Z');
const HOUR = 3_600_000;

interface Vm {
  name: string;
  namespace: string;
  uid: string;
  mac: string;
}

const list = (vms: readonly Vm[]) => ({
  apiVersion: 'v1',
  kind: 'List',
  items: vms.map((v) => vm(v.name, v.namespace, [{ name: 'default', mac: v.mac }], { uid: v.uid })),
});

function macs(count: number, seed: number): string[] {
  const out = new Set<string>();
  let x = BigInt(seed) * 7919n + 17n;
  while (out.size < count) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    out.add(formatMac((0x02_00_00_00_00_00n | ((x >> 24n) % (1n << 40n))) as Mac));
  }
  return [...out];
}

/** A claim document as an admission or a reconcile would have written it (fingerprint included). */
function claimDoc(mac: string, over: Partial<ClaimDoc> & { state: ClaimDoc['state'] }, at: Date) {
  return claimData({
    mac,
    state: over.state,
    owner: {
      cluster: over.cluster ?? CLUSTER,
      namespace: over.namespace ?? 'team-0',
      name: over.name ?? '',
      kind: 'vm',
    },
    iface: over.interface ?? 'default',
    origin: 'allocated',
    uid: over.uid,
    requestUid: `r-${mac}`,
    timestamp: undefined,
    createdAt: at,
    now: at,
    ...(over.state === 'released'
      ? { releasedAt: at, expireAt: new Date(at.getTime() + 600_000), releasedBy: over.releasedBy ?? 'DELETE' }
      : {}),
  });
}

/** The writes a plan makes, comparable across runs: kind, path and data (versions left out). */
const comparable = (writes: readonly Write[]) =>
  writes
    .map((w) => ({ kind: w.kind, path: w.path, data: 'data' in w ? w.data : undefined }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

const divergence = fc.record({
  missingClaims: fc.integer({ min: 0, max: 6 }),
  stalePending: fc.integer({ min: 0, max: 6 }),
  youngPending: fc.integer({ min: 0, max: 3 }),
  deletedVms: fc.integer({ min: 0, max: 6 }),
  changedMacs: fc.integer({ min: 0, max: 6 }),
  collisions: fc.integer({ min: 0, max: 4 }),
  otherCluster: fc.integer({ min: 0, max: 4 }),
  unconfirmed: fc.integer({ min: 0, max: 3 }),
  editedClaims: fc.integer({ min: 0, max: 3 }),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

describe('R7: the cells path finds what a full read finds', () => {
  const dbs: Firestore[] = [];
  afterAll(async () => {
    await Promise.all(dbs.map((db) => db.terminate()));
  });

  /** A cluster whose claims match a 2,000-VM inventory, after a first (full) reconcile. */
  async function steady(
    seed: number,
  ): Promise<{ db: Firestore; project: string; store: Store; vms: Vm[]; spare: string[] }> {
    const project = `fingerprint-${randomUUID().slice(0, 8)}`;
    const db = testDb(project);
    dbs.push(db);
    const store = new Store(db);
    const all = macs(N + 200, seed);
    const vms = all
      .slice(0, N)
      .map((mac, i) => ({ name: `vm-${i}`, namespace: `team-${i % 20}`, uid: `uid-${i}`, mac }));
    const first = await reconcile(store, parseInventory(list(vms)), { cluster: CLUSTER, now: new Date(T0) });
    expect(first).toMatchObject({ readPath: 'full', healed: N, conflicts: 0 });
    return { db, project, store, vms, spare: all.slice(N) };
  }

  it(`random divergences between the claims and a ${N}-VM inventory: the same writes, collisions and guard figures`, async () => {
    await fc.assert(
      fc.asyncProperty(divergence, async (d) => {
        const { db, store, vms, spare } = await steady(d.seed);
        const at = new Date(T0 + 1_000);
        const pick = (() => {
          let i = d.seed % N;
          return () => (i = (i + 7919) % N);
        })();
        const spareMac = (() => {
          let i = 0;
          return () => spare[i++]!;
        })();
        const inventory = vms.map((v) => ({ ...v }));
        const writer = db.bulkWriter();
        for (let k = 0; k < d.missingClaims; k++) void writer.delete(db.doc(claimPath(vms[pick()]!.mac)));
        for (let k = 0; k < d.stalePending; k++) {
          const mac = spareMac();
          void writer.set(db.doc(claimPath(mac)), claimDoc(mac, { state: 'pending', name: `ghost-${k}` }, at));
        }
        for (let k = 0; k < d.youngPending; k++) {
          const v = vms[pick()]!;
          const young = new Date(T0 + HOUR - 1_000);
          void writer.set(
            db.doc(claimPath(v.mac)),
            claimDoc(v.mac, { state: 'pending', namespace: v.namespace, name: v.name }, young),
          );
        }
        for (let k = 0; k < d.otherCluster; k++) {
          const v = vms[pick()]!;
          void writer.set(
            db.doc(claimPath(v.mac)),
            claimDoc(v.mac, { state: 'bound', cluster: 'west', namespace: 'x', name: 'y', uid: 'u' }, at),
          );
        }
        for (let k = 0; k < d.unconfirmed; k++) {
          const v = vms[pick()]!;
          void writer.set(
            db.doc(claimPath(v.mac)),
            claimDoc(v.mac, { state: 'released', namespace: v.namespace, name: v.name, uid: v.uid }, at),
          );
        }
        for (let k = 0; k < d.editedClaims; k++) {
          const v = vms[pick()]!;
          const doc = claimDoc(
            v.mac,
            { state: 'bound', namespace: v.namespace, name: v.name, uid: v.uid, interface: 'eth9' },
            at,
          );
          void writer.set(db.doc(claimPath(v.mac)), doc);
        }
        await writer.close();
        const gone = new Set<number>();
        for (let k = 0; k < d.deletedVms; k++) gone.add(pick());
        for (let k = 0; k < d.changedMacs; k++) inventory[pick()]!.mac = spareMac();
        for (let k = 0; k < d.collisions; k++) inventory[pick()]!.mac = inventory[pick()]!.mac;
        const listed = parseInventory(list(inventory.filter((_, i) => !gone.has(i))));

        const now = new Date(T0 + HOUR);
        const [cells, full] = [
          await prepareReconcile(store, listed, { cluster: CLUSTER, now }),
          await prepareReconcile(store, listed, { cluster: CLUSTER, now, full: true }),
        ];
        expect(cells.read.path).toBe('cells');
        expect(full.read.path).toBe('full');
        expect(comparable(cells.plan.writes)).toEqual(comparable(full.plan.writes));
        expect(cells.plan.collisions).toEqual(full.plan.collisions);
        const counts = ({ plan }: typeof cells) => ({
          bound: plan.bound,
          released: plan.released,
          healed: plan.healed,
          skippedYoung: plan.skippedYoung,
          confirmed: plan.confirmed,
          rebound: plan.rebound,
          awaitingDeletion: plan.awaitingDeletion,
          youngReleases: plan.youngReleases,
          boundClaims: plan.boundClaims,
          releasingBound: plan.releasingBound,
        });
        expect(counts(cells)).toEqual(counts(full));
        // And it did not read the cluster to find them.
        expect(cells.store.meter.reads).toBeLessThan(full.store.meter.reads);
      }),
      // Each run seeds 2,000 claims; a failure is then shrunk, which reruns it many times.
      { numRuns: 5, endOnFailure: true },
    );
  }, 240_000);

  it('a steady state costs its cells figures, and a reconcile after Firestore lost its data restores every claim', async () => {
    const { project, store, vms } = await steady(42);
    const listed = parseInventory(list(vms));
    const calm = await reconcile(store, listed, { cluster: CLUSTER, now: new Date(T0 + 60_000) });
    expect(calm).toMatchObject({ readPath: 'cells', cellsRead: 0, unchanged: N, bound: 0, released: 0, healed: 0 });
    // 2 config documents and the marker, the namespace documents (none: the list has no namespaces), the unsettled
    // query, the 32 top cells.
    expect(calm.reads).toBe(3 + 1 + 1 + 32);
    // R3: the data is gone, and the marker with it: the next run reads everything and heals every claim.
    await clearProject(emulatorHost(), project);
    const healed = await reconcile(store, listed, { cluster: CLUSTER, now: new Date(T0 + 120_000) });
    expect(healed).toMatchObject({ readPath: 'full', healed: N, conflicts: 0 });
    const again = await reconcile(store, listed, { cluster: CLUSTER, now: new Date(T0 + 180_000) });
    expect(again).toMatchObject({ readPath: 'cells', unchanged: N, healed: 0 });
  });
});
