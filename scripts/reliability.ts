/**
 * `npm run reliability`: the measured record of docs/reliability.md. Runs the fault, many-instance, hostile-input,
 * limit, auth and release tests longer than CI does (MACPOOL_RELIABILITY_SCALE: more requests, fuzz runs, fault cycles
 * and kills), collects what each case noted, and prints a markdown table that it also writes into
 * docs/reliability.md between its marker comments. The tests are the single definition of every case; CI runs the
 * same ones at scale 1.
 *
 *   node dist/scripts/reliability.js [--scale N] [--no-write]
 *
 * It needs the built dist/ (the instance and limit tests start it under the functions-framework CLI) and the
 * Firestore emulator (the tests start it themselves). Exits non-zero when a test failed; the table says which.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { format, resolveConfig } from 'prettier';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC = join(root, 'docs', 'reliability.md');
const BEGIN = '<!-- reliability:begin -->';
const END = '<!-- reliability:end -->';
const DEFAULT_SCALE = 10;

/** The test files of the record, and the table section a failure without a note of its own goes to. */
const FILES: Record<string, string> = {
  'test/integration/faults.test.ts': 'Faults',
  'test/integration/instances.test.ts': 'Instances',
  'test/integration/fuzz.test.ts': 'Hostile input',
  'test/integration/limits.test.ts': 'Limits',
  'test/integration/auth.test.ts': 'Auth',
  'test/integration/roles.test.ts': 'Auth',
  'test/unit/auth-timing.test.ts': 'Auth',
  'test/integration/release.test.ts': 'Releases',
  'test/integration/pods.test.ts': 'Releases',
};
const AREAS = ['Faults', 'Instances', 'Hostile input', 'Limits', 'Auth', 'Releases'];

interface Note {
  area: string;
  case: string;
  runs: string;
  outcome: string;
  test: string;
}

interface TestResult {
  file: string;
  name: string;
  status: string;
  failure: string | undefined;
}

async function main() {
  const { values } = parseArgs({
    options: { scale: { type: 'string', default: String(DEFAULT_SCALE) }, 'no-write': { type: 'boolean' } },
  });
  const scale = Number(values.scale);
  if (!Number.isFinite(scale) || scale < 1) throw new Error(`--scale must be a number >= 1, got ${values.scale}`);
  if (!existsSync(join(root, 'dist', 'functions', 'index.js'))) throw new Error('build first: npm run build');

  const work = mkdtempSync(join(tmpdir(), 'macpool-reliability-'));
  const notesFile = join(work, 'notes.jsonl');
  const resultsFile = join(work, 'results.json');
  const started = Date.now();
  try {
    const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
    const args = [vitest, 'run', ...Object.keys(FILES), '--reporter=default', '--reporter=json'];
    const code = await run(process.execPath, [...args, `--outputFile.json=${resultsFile}`], {
      MACPOOL_RELIABILITY_SCALE: String(scale),
      MACPOOL_RELIABILITY_RECORD: notesFile,
    });
    const notes = existsSync(notesFile)
      ? readFileSync(notesFile, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as Note)
      : [];
    const results = existsSync(resultsFile) ? testResults(JSON.parse(readFileSync(resultsFile, 'utf8'))) : [];
    const minutes = (Date.now() - started) / 60_000;
    const table = render(notes, results, scale, minutes);
    console.log(`\n${table}`);
    if (values['no-write'] !== true) {
      await writeDoc(table);
      console.log(`\nwritten to ${DOC}`);
    }
    const failed = results.filter((r) => r.status === 'failed');
    if (code !== 0 || failed.length > 0 || results.length === 0) process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function run(command: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => resolvePromise(code ?? 1));
  });
}

/** The per-test results of vitest's JSON reporter. */
function testResults(report: {
  testResults?: {
    name: string;
    assertionResults?: { ancestorTitles: string[]; title: string; status: string; failureMessages?: string[] }[];
  }[];
}): TestResult[] {
  return (report.testResults ?? []).flatMap((file) =>
    (file.assertionResults ?? []).map((a) => ({
      file: file.name.startsWith(root) ? file.name.slice(root.length + 1) : file.name,
      name: [...a.ancestorTitles, a.title].join(' > '),
      status: a.status,
      failure: a.failureMessages?.[0]?.split('\n')[0],
    })),
  );
}

/** The table: one row per noted case, and one per failed test, by section. */
function render(notes: Note[], results: TestResult[], scale: number, minutes: number): string {
  const status = new Map(results.map((r) => [r.name, r.status]));
  const rows: string[][] = [];
  for (const area of AREAS) {
    for (const n of notes.filter((x) => x.area === area)) {
      const result = status.get(n.test) === 'failed' ? '**fail**' : 'pass';
      rows.push([area, n.case, n.runs, n.outcome, result]);
    }
    const noted = new Set(notes.map((x) => x.test));
    for (const r of results.filter((x) => x.status === 'failed' && FILES[x.file] === area && !noted.has(x.name))) {
      const why = (r.failure ?? 'failed').replace(/^AssertionError: /, '').replace(/: expected .*$/, '');
      rows.push([area, r.name.split(' > ').at(-1)!, '1 run', why, '**fail**']);
    }
  }
  const passed = results.filter((r) => r.status === 'passed').length;
  const failed = results.filter((r) => r.status === 'failed').length;
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `Last run: ${new Date().toISOString().slice(0, 10)}, scale ${scale} (CI runs scale 1), ${minutes.toFixed(1)} min; ` +
      `${type()} ${availableParallelism()} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}; ` +
      `${passed} tests passed, ${failed} failed.`,
    '',
    '| area | case | runs | outcome | result |',
    '| ---- | ---- | ---- | ------- | ------ |',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** Replaces what lies between the markers of docs/reliability.md, formatted as `npm run lint` expects. */
async function writeDoc(table: string): Promise<void> {
  const doc = readFileSync(DOC, 'utf8');
  const from = doc.indexOf(BEGIN);
  const to = doc.indexOf(END);
  if (from < 0 || to < from) throw new Error(`${DOC} lacks the markers ${BEGIN} ... ${END}`);
  const text = `${doc.slice(0, from + BEGIN.length)}\n\n${table}\n\n${doc.slice(to)}`;
  const options = (await resolveConfig(DOC)) ?? {};
  writeFileSync(DOC, await format(text, { ...options, filepath: DOC }));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
