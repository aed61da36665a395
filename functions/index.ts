/**
 * Cloud Functions entry point: target `macpool`. Parses the environment once; a bad environment stops the
 * process before it serves anything.
 */
import * as ff from '@google-cloud/functions-framework';
import { Firestore } from '@google-cloud/firestore';
import { firestoreProject, parseEnv } from '../shared/env.js';
import { jsonLogger } from '../shared/log.js';
import { createApp } from './app.js';
import { Credentials } from './auth.js';
import { installRequestGuard } from './guard.js';

export const FUNCTION_TARGET = 'macpool';

// macpool exports no traces; without this the client wraps every call in (no-op) OpenTelemetry spans.
process.env.FIRESTORE_ENABLE_TRACING ??= 'off';

const env = parseEnv();
const log = jsonLogger();
if (env.tokens.length === 0) {
  log('WARNING', 'MACPOOL_TOKENS is not set: serving UNAUTHENTICATED requests as cluster "default" (emulator only)', {
    emulator: env.emulatorHost,
  });
}
// The framework reads every request body before the function runs; the guard refuses oversized, compressed,
// unauthenticated and slow requests from their headers, before that (guard.ts says how it attaches).
const credentials = new Credentials(env.tokens);
installRequestGuard({ credentials, log });
const projectId = firestoreProject(env);
const db = new Firestore(projectId === undefined ? {} : { projectId });
ff.http(FUNCTION_TARGET, createApp({ db, credentials, log }));
