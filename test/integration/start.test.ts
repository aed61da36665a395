/**
 * `npm start` through its real entry point (the built scripts/start.js in a process of its own): the port check that
 * runs before anything else, and the banner whose lines, pasted into another shell, reach the same Firestore.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { freePort, listenProblem } from '../../scripts/emulator.js';
import { emulatorHost } from '../support/harness.js';
import { BANNER, bash, pastedEnvironment, start, tryCommand } from '../support/start.js';

/** Another program on the port, answering /healthz the way macpool would (the probe must not be fooled). */
async function squatter(port: number): Promise<Server> {
  const server = createHttpServer((_req, res) => res.end('{"status":"ok"}'));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe.concurrent('npm start: the port', () => {
  it('a port another process holds: one line saying so and how to choose another, before anything starts', async () => {
    const port = await freePort();
    const other = await squatter(port);
    try {
      // No FIRESTORE_EMULATOR_HOST or project: were the port not checked first, the emulator would start.
      const p = await start({ port, env: {} });
      expect(await p.exited).toBe(1);
      const lines = p.output().trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      const match = lines[0]!.match(
        /^error: port (\d+) is already in use by another process; choose another with PORT, for example: PORT=(\d+) npm start$/,
      );
      expect(match?.[1]).toBe(String(port));
      expect(await listenProblem(Number(match![2]))).toBeUndefined();
      expect(p.output()).not.toMatch(/emulator|serving|listening|EADDRINUSE|\n\s+at /);
    } finally {
      other.close();
    }
  });

  it.each([
    { name: 'not a number', value: '80a', message: 'error: environment variable PORT must be a port number' },
    { name: 'out of range', value: '70000', message: 'error: environment variable PORT must be between 1 and 65535' },
  ])('PORT $name: one line naming the variable and what is allowed', async ({ value, message }) => {
    const p = await start({ env: { PORT: value } });
    expect(await p.exited).toBe(1);
    expect(p.output()).toBe(`${message}\n`);
  });
});

describe.concurrent('npm start: the banner', () => {
  it('the pasted lines point the CLI at the Firestore the function uses; the admission to try works', async () => {
    const project = `start-${randomUUID().slice(0, 8)}`;
    const p = await start({ env: { FIRESTORE_EMULATOR_HOST: emulatorHost(), GOOGLE_CLOUD_PROJECT: project } });
    try {
      const [banner] = await p.waitFor(BANNER);
      expect(banner).not.toContain('$TOKEN');
      expect(p.output()).toContain(
        `macpool is serving on http://localhost:${p.port} (the Firestore emulator at ${emulatorHost()}, project ${project})`,
      );
      const pasted = pastedEnvironment(p.output());
      expect(pasted).toBe(`export FIRESTORE_EMULATOR_HOST=${emulatorHost()} GOOGLE_CLOUD_PROJECT=${project}`);

      const tried = await bash(tryCommand(p.output()));
      expect(tried).toMatchObject({ code: 0, stderr: '' });
      const [allowed, ...ops] = tried.stdout.trimEnd().split('\n');
      expect(allowed).toBe('true');
      expect(ops.map((op) => JSON.parse(op).path)).toEqual([
        '/metadata/annotations',
        '/metadata/annotations/kubemacpool.io~1transaction-timestamp',
        '/spec/template/spec/domain/devices/interfaces/0/macAddress',
        '/spec/template/spec/domain/devices/interfaces/1/macAddress',
      ]);

      // Exactly the two lines the banner prints, in a shell that has neither variable: the CLI sees the claims.
      const status = await bash(`${pasted}\nnpx macpool status`);
      expect(status.code).toBe(0);
      // The column is as wide as status's longest label: match the label and the value.
      expect(status.stdout.split('\n')[0]?.replace(/ +/, ' ')).toBe(
        `project ${project} on the Firestore emulator at ${emulatorHost()}`,
      );
      expect(status.stdout).toMatch(/\nclaimed +2 \(pending 2, bound 0\)\n/);
    } finally {
      await p.stop();
    }
  });

  it('with MACPOOL_TOKENS the admission to try carries the secret in its Authorization header', async () => {
    const token = randomUUID();
    const p = await start({
      env: {
        FIRESTORE_EMULATOR_HOST: emulatorHost(),
        GOOGLE_CLOUD_PROJECT: `start-${token.slice(0, 8)}`,
        MACPOOL_TOKENS: `default=${token}`,
      },
    });
    try {
      await p.waitFor(BANNER);
      const command = tryCommand(p.output());
      expect(command).toContain(`-H "Authorization: Bearer $TOKEN"`);
      expect(command).toContain(`http://localhost:${p.port}/mutate-virtualmachines`);
      expect(p.output()).toContain("(set TOKEN to the cluster's secret in MACPOOL_TOKENS first)");
      expect(p.output()).not.toContain(token);
      const tried = await bash(command, { env: { TOKEN: token } });
      expect(tried.stdout.split('\n')[0]).toBe('true');
    } finally {
      await p.stop();
    }
  });
});
