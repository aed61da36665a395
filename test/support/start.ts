/**
 * `npm start` as a user runs it: the built scripts/start.js (or `npm start` itself) in a process group of its own,
 * its output collected, and the lines its banner says to paste into another shell.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../../scripts/emulator.js';
import { ROOT } from './process.js';

export const START_SCRIPT = join(ROOT, 'dist', 'scripts', 'start.js');
/** The banner, complete: up to the last line of the admission to try. */
export const BANNER = /npx macpool status\n[\s\S]*mutate-virtualmachines \\\n.*\n/;

export interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  output(): string;
  readonly exited: Promise<number | null>;
  /** Resolves once the output matches; rejects when the process exits first or the time is up. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM to the whole group (as Ctrl-C reaches every process of a terminal's job), then waits for the exit. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** The environment beyond PATH (nothing else is inherited, so no stray FIRESTORE_EMULATOR_HOST leaks in). */
  env?: Record<string, string>;
  cwd?: string;
  /** The command; default `node dist/scripts/start.js`. */
  command?: readonly string[];
  port?: number;
}

export async function start(options: StartOptions = {}): Promise<Started> {
  const port = options.port ?? (await freePort());
  const [command, ...args] = options.command ?? [process.execPath, START_SCRIPT];
  const child = spawn(command!, args, {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: String(port), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    port,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = output.match(pattern);
          if (match) return finish(() => resolve(match));
          if (done) finish(() => reject(new Error(`exited before printing ${pattern}:\n${output}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`))),
          timeoutMs,
        );
        const finish = (then: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          then();
        };
        listeners.add(check);
        void exited.then(check);
        check();
      });
    },
    async stop() {
      if (!done) {
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      return exited;
    },
  };
}

/** The banner's line to paste into another shell (`export FIRESTORE_EMULATOR_HOST=... GOOGLE_CLOUD_PROJECT=...`). */
export function pastedEnvironment(output: string): string {
  const line = output.split('\n').find((l) => /^ {2}(export|unset) /.test(l));
  if (line === undefined) throw new Error(`no export line in:\n${output}`);
  return line.trim();
}

/** Runs a shell script (lines pasted from the banner or the docs) and returns its exit code and output. */
export function bash(
  script: string,
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-c', script], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** The banner's "try an admission" command: the lines from `curl` to the end of the pipeline. */
export function tryCommand(output: string): string {
  const lines = output.split('\n');
  const first = lines.findIndex((l) => l.trimStart().startsWith('curl '));
  if (first < 0) throw new Error(`no curl command in:\n${output}`);
  const command: string[] = [];
  for (const line of lines.slice(first)) {
    command.push(line.trim());
    if (!line.endsWith('\\')) break;
  }
  return command.join('\n');
}
