/**
 * Starts and stops the real Cloud Firestore emulator (tests, `npm start`, `npm run bench`). The emulator's
 * script starts java as a child, so it runs in its own process group and the whole group is stopped.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

export interface RunningEmulator {
  /** HOST:PORT, the value for FIRESTORE_EMULATOR_HOST. */
  readonly host: string;
  readonly pid: number;
  stop(): Promise<void>;
}

const EMULATOR_DIR = join('platform', 'cloud-firestore-emulator');
const SCRIPT = 'cloud_firestore_emulator';

/** The emulator command: its own script from the Cloud SDK when found, otherwise `gcloud emulators firestore`. */
export function emulatorCommand(port: number): { command: string; args: string[] } {
  const host = '127.0.0.1';
  const roots = [
    process.env.CLOUDSDK_ROOT_DIR,
    '/usr/lib/google-cloud-sdk',
    '/usr/share/google-cloud-sdk',
    '/opt/google-cloud-sdk',
  ];
  try {
    const gcloud = execFileSync('sh', ['-c', 'command -v gcloud'], { encoding: 'utf8' }).trim();
    if (gcloud) roots.push(dirname(dirname(realpathSync(gcloud))));
  } catch {
    // no gcloud on PATH; the fixed locations may still have the SDK
  }
  for (const root of roots) {
    const script = root && join(root, EMULATOR_DIR, SCRIPT);
    if (script && existsSync(script)) return { command: script, args: ['start', `--host=${host}`, `--port=${port}`] };
  }
  return { command: 'gcloud', args: ['emulators', 'firestore', 'start', `--host-port=${host}:${port}`, '--quiet'] };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Why a server could not listen on `port` on every address (as the functions-framework listens); undefined if it can. */
export function listenProblem(port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error));
    probe.listen(port, () => probe.close(() => resolve(undefined)));
  });
}

/** Starts an emulator on a free (or given) port and waits until it answers. */
export async function startEmulator(options: { port?: number; timeoutMs?: number } = {}): Promise<RunningEmulator> {
  const port = options.port ?? (await freePort());
  const { command, args } = emulatorCommand(port);
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const host = `127.0.0.1:${port}`;
  const stop = stopper(child);
  const exitHook = () => killGroup(child, 'SIGKILL');
  process.once('exit', exitHook);
  try {
    await waitUntilUp(host, child, options.timeoutMs ?? 60_000, () => output);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    host,
    pid: child.pid!,
    stop: async () => {
      process.off('exit', exitHook);
      await stop();
    },
  };
}

async function waitUntilUp(host: string, child: ChildProcess, timeoutMs: number, output: () => string) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`Firestore emulator exited during start:\n${output()}`);
    try {
      const res = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`Firestore emulator did not answer on ${host} within ${timeoutMs / 1000} s:\n${output()}`);
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    // java may outlive its parent script for a moment; make sure the group is gone.
    killGroup(child, 'SIGKILL');
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Deletes every document of one project in the emulator. */
export async function clearProject(host: string, projectId: string): Promise<void> {
  const res = await fetch(`http://${host}/emulator/v1/projects/${projectId}/databases/(default)/documents`, {
    method: 'DELETE',
  });
  if (!res.ok) throw new Error(`clearing emulator project ${projectId} failed: HTTP ${res.status}`);
}
