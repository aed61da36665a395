import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePort } from '../../scripts/emulator.js';

export const ROOT = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
/** The functions-framework CLI, as Cloud Functions runs it. */
export const FRAMEWORK_MAIN = join(dirname(require.resolve('@google-cloud/functions-framework')), 'main.js');

export interface FunctionProcess {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts the built function (dist/) under the functions-framework CLI with the given environment. */
export async function spawnFunction(env: Record<string, string>, cwd = ROOT): Promise<FunctionProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [FRAMEWORK_MAIN, '--target=macpool', `--port=${port}`], {
    cwd,
    env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls until `url` answers 200 or the process exits; returns false when it exited first. */
export async function waitForHealthy(p: FunctionProcess, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void p.exited.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      if ((await fetch(`${p.url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) return true;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
