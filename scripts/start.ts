/**
 * `npm start`: serves the function locally on PORT (default 8080). Uses FIRESTORE_EMULATOR_HOST when set,
 * real Firestore when GOOGLE_CLOUD_PROJECT is set, and otherwise starts the Firestore emulator itself and
 * stops it on exit.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from '../shared/env.js';
import { type RunningEmulator, startEmulator } from './emulator.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);

async function main() {
  const env = { ...process.env };
  let emulator: RunningEmulator | undefined;
  if (!env.FIRESTORE_EMULATOR_HOST && !env.GOOGLE_CLOUD_PROJECT) {
    // No Google metadata server off Google Cloud: skip the client's probe for one (and its warning).
    env.METADATA_SERVER_DETECTION ??= 'none';
    console.log('No FIRESTORE_EMULATOR_HOST or GOOGLE_CLOUD_PROJECT: starting the Firestore emulator...');
    emulator = await startEmulator();
    env.FIRESTORE_EMULATOR_HOST = emulator.host;
    console.log(`Firestore emulator on ${emulator.host} (stopped when this process exits)`);
  }
  const parsed = parseEnv(env); // fail here, with the reason, rather than inside the server
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

  const base = `http://localhost:${parsed.port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // With secrets configured, the cluster secret goes in the header (never in a URL path, S4).
  const auth = parsed.tokens.length > 0 ? `-H "Authorization: Bearer $TOKEN" ` : '';
  console.log(`
macpool is listening on ${base}
  POST ${base}/mutate-virtualmachines   (AdmissionReview v1 or v1beta1)
  GET  ${base}/healthz

Try it (allocates MACs for KubeVirt's multus example VM and prints the JSON Patch):
  curl -s -X POST -H 'Content-Type: application/json' ${auth}\\
    --data-binary @examples/create-vm-multus.json ${base}/mutate-virtualmachines \\
    | node -e 'const r=JSON.parse(require("fs").readFileSync(0)).response; console.log(r.allowed, Buffer.from(r.patch ?? "", "base64").toString())'
`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
