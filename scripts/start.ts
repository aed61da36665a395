/**
 * `npm start`: serves the function locally on PORT (default 8080). Uses FIRESTORE_EMULATOR_HOST when set,
 * real Firestore when GOOGLE_CLOUD_PROJECT is set, and otherwise starts the Firestore emulator itself and
 * stops it on exit. Once the function answers, it prints the lines that point the CLI at the same Firestore.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Env, firestoreProject, parseEnv, parsePort } from '../shared/env.js';
import { freePort, listenProblem, type RunningEmulator, startEmulator } from './emulator.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const HEALTHY_WITHIN_MS = 30_000;

/** A reason not to start, printed as one line. */
class StartError extends Error {
  override readonly name = 'StartError';
}

/** A port to suggest instead of a taken one: the first free one just above it, else any free one. */
async function freePortNear(port: number): Promise<number> {
  for (let p = port + 1; p <= Math.min(port + 20, 65535); p++) {
    if ((await listenProblem(p)) === undefined) return p;
  }
  return freePort();
}

async function checkPort(port: number): Promise<void> {
  const problem = await listenProblem(port);
  if (problem === undefined) return;
  const how = `choose another with PORT, for example: PORT=${await freePortNear(port)} npm start`;
  if (problem.code === 'EADDRINUSE') throw new StartError(`port ${port} is already in use by another process; ${how}`);
  if (problem.code === 'EACCES') throw new StartError(`port ${port} needs privileges this user lacks; ${how}`);
  throw new StartError(`cannot listen on port ${port} (${problem.code ?? problem.message}); ${how}`);
}

/** A value as one shell word. */
function shellWord(value: string): string {
  return /^[\w.:@%+,=/-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** What to paste into another shell so the CLI talks to the Firestore this function uses. */
function cliEnvironment(env: Env): string {
  const project = shellWord(firestoreProject(env) ?? '');
  return env.emulatorHost === undefined
    ? `unset FIRESTORE_EMULATOR_HOST; export GOOGLE_CLOUD_PROJECT=${project}`
    : `export FIRESTORE_EMULATOR_HOST=${shellWord(env.emulatorHost)} GOOGLE_CLOUD_PROJECT=${project}`;
}

function banner(env: Env): string {
  const base = `http://localhost:${env.port}`;
  const project = firestoreProject(env);
  const firestore =
    env.emulatorHost === undefined
      ? `Firestore of project ${project}`
      : `the Firestore emulator at ${env.emulatorHost}, project ${project}`;
  // With secrets configured, the cluster secret goes in the header (never in a URL path, S4).
  const auth = env.tokens.length > 0 ? `-H "Authorization: Bearer $TOKEN" ` : '';
  return `
macpool is serving on ${base} (${firestore})
  POST ${base}/mutate-virtualmachines   (AdmissionReview v1 or v1beta1)
  GET  ${base}/healthz

Point the macpool CLI at the same Firestore: paste these lines into another shell, here in the repository
  ${cliEnvironment(env)}
  npx macpool status

Try an admission (allocates MACs for KubeVirt's multus example VM and prints the JSON Patch, one op a line):
  curl -s -X POST -H 'Content-Type: application/json' ${auth}\\
    --data-binary @examples/create-vm-multus.json ${base}/mutate-virtualmachines \\
    | node -e 'const r=JSON.parse(require("fs").readFileSync(0)).response; console.log(r.allowed); for (const op of r.patch ? JSON.parse(Buffer.from(r.patch, "base64")) : []) console.log(JSON.stringify(op))'
${auth === '' ? '' : "  (set TOKEN to the cluster's secret in MACPOOL_TOKENS first)\n"}`;
}

async function main() {
  const env = { ...process.env };
  // Before anything else: a port another process holds would answer the health probe below for us.
  await checkPort(parsePort(env));
  let emulator: RunningEmulator | undefined;
  if (!env.FIRESTORE_EMULATOR_HOST && !env.GOOGLE_CLOUD_PROJECT) {
    // No Google metadata server off Google Cloud: skip the client's probe for one (and its warning).
    env.METADATA_SERVER_DETECTION ??= 'none';
    console.log('No FIRESTORE_EMULATOR_HOST or GOOGLE_CLOUD_PROJECT: starting the Firestore emulator...');
    emulator = await startEmulator();
    env.FIRESTORE_EMULATOR_HOST = emulator.host;
    console.log(`Firestore emulator on ${emulator.host} (stopped when this process exits)`);
  }
  let parsed: Env;
  try {
    parsed = parseEnv(env); // fail here, with the reason, rather than inside the server
  } catch (error) {
    await emulator?.stop();
    throw error;
  }
  const frameworkMain = join(dirname(require.resolve('@google-cloud/functions-framework')), 'main.js');
  const server = spawn(process.execPath, [frameworkMain, '--target=macpool', `--port=${parsed.port}`], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    server.kill('SIGTERM');
    await emulator?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  server.on('exit', (code) => void stop(code ?? 1));

  const deadline = Date.now() + HEALTHY_WITHIN_MS;
  while (!(await healthy(`http://localhost:${parsed.port}/healthz`))) {
    if (stopping) return;
    if (Date.now() > deadline) {
      console.error(`error: the function did not answer GET /healthz within ${HEALTHY_WITHIN_MS / 1000} s`);
      return stop(1);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!stopping) console.log(banner(parsed));
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5000) })).ok;
  } catch {
    return false; // not listening yet
  }
}

// StartError, EnvError and the emulator's start failures all carry a message meant for the user.
main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
