/**
 * Runs every runnable shell block of the Markdown docs (test/support/docs.ts says how they are written) the way a
 * reader would: `npm start` in one shell (the built scripts/start.js, on the tests' emulator), the export line its
 * banner prints pasted into another, the commands from the repository root with `macpool` on PATH. Each block gets
 * a fresh function process and an empty pool (project macpool-dev, as npm start uses). The docs write the
 * function's address as http://localhost:8080; the function runs on a free port, and the URL is rewritten to it.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clearProject } from '../../scripts/emulator.js';
import { DEV_PROJECT } from '../../shared/env.js';
import { markdownFiles, outputMatches, results, script, shellBlocks, transcript } from '../support/docs.js';
import { emulatorHost } from '../support/harness.js';
import { ROOT } from '../support/process.js';
import { BANNER, bash, pastedEnvironment, start } from '../support/start.js';

const DOCS_URL = 'http://localhost:8080';

const runnable = markdownFiles(ROOT)
  .flatMap((f) => shellBlocks(f, readFileSync(join(ROOT, f), 'utf8')))
  .filter((b) => b.marker === 'runnable');

// `macpool` as an installed bin (npm link, npm install -g) puts it; the docs say `npx macpool` does the same here.
const bin = mkdtempSync(join(tmpdir(), 'macpool-docs-bin-'));
symlinkSync(join(ROOT, 'dist', 'cli', 'macpool.js'), join(bin, 'macpool'));

describe('the runnable examples of the docs', () => {
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  it('are in each doc a new administrator follows', () => {
    expect(new Set(runnable.map((b) => b.file))).toEqual(
      new Set(['README.md', 'examples/README.md', 'docs/deploy.md', 'docs/migrate-from-kubemacpool.md']),
    );
  });

  it.each(runnable.map((b) => ({ name: `${b.file}:${b.line}`, block: b })))(
    '$name prints what it claims',
    async ({ block }) => {
      const steps = transcript(block);
      await clearProject(emulatorHost(), DEV_PROJECT);
      const p = await start({ env: { FIRESTORE_EMULATOR_HOST: emulatorHost() } });
      let run: Awaited<ReturnType<typeof bash>>;
      try {
        await p.waitFor(BANNER);
        const pasted = pastedEnvironment(p.output());
        const local = (command: string) => command.replaceAll(DOCS_URL, `http://localhost:${p.port}`);
        run = await bash(`${pasted}\n${script(steps, local)}`, {
          env: { PATH: `${bin}:${process.env.PATH ?? ''}` },
          timeoutMs: 120_000,
        });
      } finally {
        await p.stop();
      }
      const outcomes = results(run.stdout);
      for (const [i, step] of steps.entries()) {
        const outcome = outcomes[i];
        const where = `${block.file}:${step.line}: $ ${step.command}`;
        expect(outcome, `${where}\nthe shell stopped before this command:\n${run.stdout}`).toBeDefined();
        expect(outcome!.code, `${where}\nexited ${outcome!.code}, printing:\n${outcome!.output}`).toBe(0);
        // On a mismatch, compare with the text as written, for a readable diff (`...` stands for any text).
        if (!outputMatches(step.expected, outcome!.output)) {
          expect(outcome!.output.trimEnd(), `${where}\nprinted something else than the docs say`).toBe(
            step.expected.trimEnd(),
          );
        }
      }
    },
    180_000,
  );
});
