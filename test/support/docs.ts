/**
 * The shell examples of the Markdown docs, so the docs cannot drift from what the code does.
 *
 * Every fenced shell block says in its info string whether it runs here (one of MARKERS after the language:
 * ```sh runnable). A runnable block is a transcript: a line starting with `$ ` is a command (continued while a line
 * ends with `\`), and the lines after it, up to the next command, are what it prints, stdout and stderr as they
 * interleave. `...` in the output stands for any text (a timestamp, an emulator's port). Every command must exit 0;
 * a transcript shows a failure with `; echo $?`, which puts the code in the output.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import MarkdownIt from 'markdown-it';

export const SHELL_LANGUAGES = ['sh', 'bash', 'shell', 'console'] as const;

/** What each marker means: the reason a block runs, or does not, in the tests. */
export const MARKERS = {
  runnable: 'run by test/integration/docs.test.ts against npm start, which checks exit codes and output',
  cloud: 'needs a Google Cloud project, Terraform or a Kubernetes cluster, which the tests do not have',
  suite: 'the install, start and test commands themselves, which the fresh-clone test and .ci/run run',
} as const;
export type Marker = keyof typeof MARKERS;

export interface ShellBlock {
  /** Relative to the repository root. */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly info: string;
  /** undefined when the info string names no marker. */
  readonly marker: Marker | undefined;
  readonly content: string;
}

export interface Step {
  readonly line: number;
  readonly command: string;
  readonly expected: string;
}

const isMarker = (word: string | undefined): word is Marker => word !== undefined && Object.hasOwn(MARKERS, word);

/** The fenced shell blocks of one Markdown text (nested ones, in list items, too). */
export function shellBlocks(file: string, markdown: string): ShellBlock[] {
  return new MarkdownIt()
    .parse(markdown, {})
    .filter((t) => t.type === 'fence' && (SHELL_LANGUAGES as readonly string[]).includes(t.info.split(/\s+/)[0]!))
    .map((t) => {
      const word = t.info.trim().split(/\s+/)[1];
      return {
        file,
        line: t.map![0] + 1,
        info: t.info.trim(),
        marker: isMarker(word) ? word : undefined,
        content: t.content,
      };
    });
}

/** The Markdown files of the repository, relative to root (dependencies, build output and state left out). */
export function markdownFiles(root: string): string[] {
  const skip = /(^|\/)(node_modules|dist|\.git|\.terraform|coverage)(\/|$)/;
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((f) => !skip.test(f))
    .sort();
}

/** The commands of a runnable block and the output each claims. Throws on a block that is not a transcript. */
export function transcript(block: Pick<ShellBlock, 'file' | 'line' | 'content'>): Step[] {
  const lines = block.content === '' ? [] : block.content.replace(/\n$/, '').split('\n');
  const steps: { line: number; command: string[]; expected: string[] }[] = [];
  let continued = false;
  for (const [i, text] of lines.entries()) {
    const line = block.line + 1 + i;
    const step = steps.at(-1);
    if (continued && step) {
      step.command.push(text);
    } else if (text.startsWith('$ ')) {
      steps.push({ line, command: [text.slice(2)], expected: [] });
    } else if (step) {
      step.expected.push(text);
    } else {
      throw new Error(
        `${block.file}:${line}: a runnable block starts with a command ("$ ..."), not ${JSON.stringify(text)}`,
      );
    }
    continued = (continued || text.startsWith('$ ')) && text.endsWith('\\');
  }
  if (steps.length === 0) throw new Error(`${block.file}:${block.line}: a runnable block has no command ("$ ...")`);
  return steps.map((s) => ({ line: s.line, command: s.command.join('\n'), expected: s.expected.join('\n') }));
}

/** The claimed output as a pattern: exact, but for `...` (any text) and trailing blanks. */
export function outputPattern(expected: string): RegExp {
  const pieces = expected
    .trimEnd()
    .split('...')
    .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${pieces.join('[\\s\\S]*?')}$`);
}

export function outputMatches(expected: string, actual: string): boolean {
  return outputPattern(expected).test(actual.trimEnd());
}

/** Record separator: cannot appear in the output of these commands, so it marks where each one ended. */
const END = '\x1e';

/**
 * One bash script that runs the steps in order, in one shell (so `export`, functions and `cd` carry over), with
 * stderr joined to stdout, and marks each step's end with its exit code.
 */
export function script(steps: readonly Step[], rewrite: (command: string) => string = (c) => c): string {
  return [
    'exec 2>&1',
    'set -o pipefail',
    ...steps.map((s) => `${rewrite(s.command)}\nprintf '${END}%d${END}' "$?"`),
  ].join('\n');
}

/** Splits the script's output into each step's output and exit code. */
export function results(output: string): { output: string; code: number }[] {
  const parts = output.split(END);
  const out: { output: string; code: number }[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) out.push({ output: parts[i]!, code: Number(parts[i + 1]) });
  return out;
}
