/**
 * Integration harness: the real function handler behind the real functions-framework HTTP server, talking
 * to the real Firestore emulator under a project id of its own (tests never see each other's data).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Firestore } from '@google-cloud/firestore';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { inject } from 'vitest';
import { createApp } from '../../functions/app.js';
import { Credentials } from '../../functions/auth.js';
import { fileBodyAsBytes, standInFront } from '../../functions/guard.js';
import type { ClusterToken } from '../../shared/env.js';
import type { Severity } from '../../shared/log.js';

export interface LogLine {
  severity: Severity;
  message: string;
  [key: string]: unknown;
}

export interface Harness {
  readonly url: string;
  readonly db: Firestore;
  readonly projectId: string;
  readonly logs: LogLine[];
  /** POSTs JSON (or a raw string/Buffer) and returns status and parsed JSON body. */
  post(
    path: string,
    body: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; text: string }>;
  get(path: string): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  tokens?: ClusterToken[];
  now?: () => Date;
  randomBelow?: (n: bigint) => bigint;
  budgetMs?: number;
  /** Share another harness's database (several "instances" of the function on one pool). */
  projectId?: string;
  /** Point the function at another Firestore endpoint (e.g. a dead port, to test F1). */
  firestoreHost?: string;
}

let registered = 0;

export function emulatorHost(): string {
  return inject('emulatorHost');
}

export function testDb(projectId: string, host = emulatorHost()): Firestore {
  return new Firestore({ projectId, host, ssl: false, customHeaders: { Authorization: 'Bearer owner' } });
}

export async function startFunction(options: HarnessOptions = {}): Promise<Harness> {
  const projectId = options.projectId ?? `test-${randomUUID().slice(0, 8)}`;
  const db = testDb(projectId, options.firestoreHost);
  const logs: LogLine[] = [];
  const name = `macpool-test-${++registered}`;
  ff.http(
    name,
    createApp({
      db,
      credentials: new Credentials(options.tokens ?? []),
      log: (severity, message, fields = {}) => logs.push({ severity, message, ...fields }),
      ...(options.now ? { now: options.now } : {}),
      ...(options.randomBelow ? { randomBelow: options.randomBelow } : {}),
      ...(options.budgetMs ? { budgetMs: options.budgetMs } : {}),
    }),
  );
  const server: Server = getTestServer(name);
  // As in production (guard.ts), bodies reach the handler as bytes and it parses the JSON; the guard's other
  // checks are left to the tests of the built function, so the handler's own are tested here.
  standInFront(server, (req) => {
    fileBodyAsBytes(req);
    return true;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    db,
    projectId,
    logs,
    async post(path, body, headers = {}) {
      const raw = typeof body === 'string' || Buffer.isBuffer(body);
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: raw ? (body as string) : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed, text };
    },
    async get(path) {
      const res = await fetch(url + path);
      return { status: res.status, body: await res.json().catch(() => undefined) };
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      // terminate() waits for calls still retrying against an unreachable host; do not let that stall a test.
      await Promise.race([db.terminate(), new Promise((resolve) => setTimeout(resolve, 500))]);
    },
  };
}

/** All claim documents of the harness's project, by MAC. */
export async function claims(db: Firestore): Promise<Map<string, Record<string, any>>> {
  const snap = await db.collection('macs').get();
  return new Map(snap.docs.map((d) => [d.id, d.data()]));
}

export async function activeClaims(db: Firestore): Promise<Map<string, Record<string, any>>> {
  return new Map([...(await claims(db))].filter(([, c]) => c.state !== 'released'));
}

/** Number of documents in the project (all collections, recursively). */
export async function documentCount(db: Firestore): Promise<number> {
  let count = 0;
  const walk = async (collections: FirebaseFirestore.CollectionReference[]) => {
    for (const c of collections) {
      const refs = await c.listDocuments();
      for (const ref of refs) {
        if ((await ref.get()).exists) count++;
        await walk(await ref.listCollections());
      }
    }
  };
  await walk(await db.listCollections());
  return count;
}

export async function setRange(db: Firestore, rangeStart: string, rangeEnd: string): Promise<void> {
  await db.doc('config/kubeMacPoolConfiguration').set({ rangeStart, rangeEnd });
}
