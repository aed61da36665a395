import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import MarkdownIt from 'markdown-it';
import { describe, expect, it } from 'vitest';
import {
  MARKERS,
  markdownFiles,
  outputMatches,
  results,
  script,
  shellBlocks,
  SHELL_LANGUAGES,
  transcript,
} from '../support/docs.js';
import { ROOT } from '../support/process.js';

const blocks = markdownFiles(ROOT).flatMap((f) => shellBlocks(f, readFileSync(join(ROOT, f), 'utf8')));

describe('the shell blocks of the docs', () => {
  it('are found in the docs the administrator reads, nested ones included', () => {
    const files = new Set(blocks.map((b) => b.file));
    expect([...files]).toEqual(expect.arrayContaining(['README.md', 'examples/README.md', 'docs/deploy.md']));
    // docs/deploy.md's uninstall commands sit in a list item.
    expect(blocks.some((b) => b.file === 'docs/deploy.md' && b.content.includes('kubectl delete namespace'))).toBe(
      true,
    );
  });

  it.each(blocks.map((b) => ({ name: `${b.file}:${b.line}`, block: b })))(
    '$name says whether it runs here',
    ({ block }) => {
      const markers = Object.keys(MARKERS).join(', ');
      expect(
        block.marker,
        `${block.file}:${block.line}: write the info string as "${block.info.split(/\s+/)[0]} <marker>", ` +
          `one of ${markers}: ${Object.entries(MARKERS)
            .map(([m, why]) => `${m} (${why})`)
            .join('; ')}`,
      ).toBeDefined();
    },
  );

  it.each(blocks.filter((b) => b.marker === 'runnable').map((b) => ({ name: `${b.file}:${b.line}`, block: b })))(
    '$name (runnable) is a transcript of commands',
    ({ block }) => {
      expect(transcript(block).length).toBeGreaterThan(0);
    },
  );
});

describe('the Markdown of the docs', () => {
  // A wrapped line that starts with ">=" (a version range) renders as a block quote beginning "= ...".
  it.each(markdownFiles(ROOT))('%s has no block quote made by a wrapped comparison', (file) => {
    const tokens = new MarkdownIt().parse(readFileSync(join(ROOT, file), 'utf8'), {});
    const quoted = tokens
      .map((t, i) => ({ t, next: tokens.slice(i).find((n) => n.type === 'inline') }))
      .filter(({ t, next }) => t.type === 'blockquote_open' && /^[=<>]/.test(next?.content ?? ''))
      .map(({ t, next }) => `${file}:${t.map![0] + 1}: > ${next!.content.split('\n')[0]}`);
    expect(quoted).toEqual([]);
  });
});

describe('shellBlocks', () => {
  it('reads the language and the marker from the info string, and the line of the fence', () => {
    const md = [
      '# t',
      '',
      '```sh runnable',
      '$ echo hi',
      'hi',
      '```',
      '',
      '- item',
      '  ```bash cloud',
      '  gcloud x',
      '  ```',
      '',
      '```yaml',
      'a: 1',
      '```',
      '```sh',
      'x',
      '```',
      '```sh fast',
      'y',
      '```',
    ].join('\n');
    expect(shellBlocks('f.md', md)).toEqual([
      { file: 'f.md', line: 3, info: 'sh runnable', marker: 'runnable', content: '$ echo hi\nhi\n' },
      { file: 'f.md', line: 9, info: 'bash cloud', marker: 'cloud', content: 'gcloud x\n' },
      { file: 'f.md', line: 16, info: 'sh', marker: undefined, content: 'x\n' },
      { file: 'f.md', line: 19, info: 'sh fast', marker: undefined, content: 'y\n' },
    ]);
    expect(SHELL_LANGUAGES).toContain('console');
  });
});

describe('transcript', () => {
  const block = (content: string) => ({ file: 'f.md', line: 10, content });

  it('commands start with "$ ", go on while a line ends with a backslash; the lines after are their output', () => {
    expect(
      transcript(block('$ curl -s \\\n    http://x \\\n  | node -e 1\ntrue\n{"op":1}\n$ echo $?\n0\n$ true\n')),
    ).toEqual([
      { line: 11, command: 'curl -s \\\n    http://x \\\n  | node -e 1', expected: 'true\n{"op":1}' },
      { line: 16, command: 'echo $?', expected: '0' },
      { line: 18, command: 'true', expected: '' },
    ]);
  });

  it.each([
    {
      name: 'text before the first command',
      content: 'npm start\n',
      message: 'f.md:11: a runnable block starts with a command',
    },
    { name: 'no command at all', content: '', message: 'f.md:10: a runnable block has no command' },
  ])('refuses $name', ({ content, message }) => {
    expect(() => transcript(block(content))).toThrow(message);
  });
});

describe('outputMatches', () => {
  it.each([
    { name: 'the same text', expected: 'size  256\nfree  250', actual: 'size  256\nfree  250\n', matches: true },
    { name: 'a changed figure', expected: 'size  256\nfree  250', actual: 'size  256\nfree  249\n', matches: false },
    { name: 'a line missing', expected: 'a\nb', actual: 'a\n', matches: false },
    { name: 'a line more', expected: 'a', actual: 'a\nb\n', matches: false },
    {
      name: '... for a timestamp',
      expected: '"value":"...Z"',
      actual: '"value":"2026-12-02T17:14:32.5Z"',
      matches: true,
    },
    { name: '... for nothing', expected: 'a...b', actual: 'ab', matches: true },
    { name: '... across lines', expected: 'first\n...\nlast', actual: 'first\nx\ny\nlast', matches: true },
    { name: 'regex characters are literal', expected: 'a.b (c)', actual: 'axb (c)', matches: false },
    { name: 'nothing claimed, nothing printed', expected: '', actual: '', matches: true },
    { name: 'nothing claimed, something printed', expected: '', actual: 'x', matches: false },
  ])('$name', ({ expected, actual, matches }) => {
    expect(outputMatches(expected, actual)).toBe(matches);
  });
});

describe('script and results', () => {
  it('runs the steps in one shell, stderr with stdout, and gives each its output and exit code', () => {
    const steps = transcript({
      file: 'f.md',
      line: 1,
      content:
        '$ greet() { echo "hi $1"; echo warn >&2; }\n$ greet you\nhi you\nwarn\n$ false | true\n$ cat <<<a; exit 3\n',
    });
    const run = spawnSync('bash', ['-c', script(steps, (c) => c.replace('you', 'there'))], { encoding: 'utf8' });
    expect(results(run.stdout)).toEqual([
      { output: '', code: 0 },
      { output: 'hi there\nwarn\n', code: 0 },
      { output: '', code: 1 }, // pipefail: a failing command inside a pipeline counts
    ]);
    expect(run.status).toBe(3); // a step that ends the shell leaves no result: the caller sees one step missing
  });
});

describe("docs/deploy.md's one-cluster edit of terraform/examples/basic", () => {
  const example = join(ROOT, 'terraform/examples/basic');
  const deploy = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
  const paragraph = deploy.slice(deploy.indexOf('With one cluster, edit'), deploy.indexOf('What stays is this:'));
  /** Every file of the example that mentions the second cluster, and the lines that do. */
  const mentions = ['main.tf', 'outputs.tf', 'variables.tf', 'terraform.tfvars.example'].map((file) => ({
    file,
    lines: readFileSync(join(example, file), 'utf8')
      .split('\n')
      .filter((l) => /cluster[-_]b/.test(l)),
  }));

  it('finds the paragraph', () => {
    expect(paragraph.length).toBeGreaterThan(100);
  });

  it.each(mentions.filter((m) => m.lines.length > 0))('names $file, which mentions cluster-b', ({ file }) => {
    // terraform.tfvars is the copy of terraform.tfvars.example a user edits.
    expect(paragraph).toContain(`\`${file.replace('.example', '')}\``);
  });

  it('names the blocks and the output line that refer to cluster-b', () => {
    expect(paragraph).toContain('module.cluster_b.webhook_urls');
    expect(paragraph).toContain('cluster_b_context');
    expect(paragraph).toContain('module "cluster_b"');
  });
});
