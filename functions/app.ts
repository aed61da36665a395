import type { Firestore } from '@google-cloud/firestore';
import { ConfigSource, NamespaceSource, RANGE_DOC_PATH } from '../shared/config.js';
import { jsonLogger, type Logger } from '../shared/log.js';
import { MacPool } from '../shared/pool.js';
import { Store } from '../shared/store.js';
import type { Credentials } from './auth.js';
import { createHandler } from './handler.js';

export interface AppOptions {
  readonly db: Firestore;
  /** The configured clusters' credentials (functions/auth.ts); none means open emulator development. */
  readonly credentials: Credentials;
  readonly log?: Logger;
  readonly now?: () => Date;
  readonly randomBelow?: (n: bigint) => bigint;
  readonly budgetMs?: number;
}

/** Wires the handler to a Firestore handle; the one place dependencies are chosen (tests inject theirs). */
export function createApp(options: AppOptions) {
  const log = options.log ?? jsonLogger();
  const store = new Store(options.db);
  const clock = options.now ? () => options.now!().getTime() : Date.now;
  const pool = new MacPool({
    store,
    config: new ConfigSource(store, log, clock),
    namespaces: new NamespaceSource(store, clock),
    ...(options.now ? { now: options.now } : {}),
    ...(options.randomBelow ? { randomBelow: options.randomBelow } : {}),
    ...(options.budgetMs ? { budgetMs: options.budgetMs } : {}),
  });
  return createHandler({
    credentials: options.credentials,
    pool,
    store,
    ...(options.now ? { now: options.now } : {}),
    log,
    ping: async () => {
      await store.get(RANGE_DOC_PATH);
    },
  });
}
