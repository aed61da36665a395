/**
 * A fault-injecting TCP proxy for tests: the function talks to Firestore through it (gRPC over HTTP/2 is just
 * bytes here), and a test switches faults on and off while requests run. Only node:net; no dependency.
 *
 * Faults model what a network between a function instance and Firestore can do:
 * - `delay`: every chunk, in both directions, arrives `ms` later (order kept): a slow or congested path.
 * - `hang`: connections are accepted and bytes are held, not forwarded, until the fault clears; then they are
 *   delivered in order, as TCP does after a partition heals before its retransmissions give up.
 * - `drop`: every open connection is reset, and so is every new one while the fault lasts.
 * - `refuse`: open connections are reset and the port stops listening, so connects are refused.
 */
import { createServer, type Server, type Socket, connect } from 'node:net';

export const FAULT_KINDS = ['none', 'delay', 'hang', 'drop', 'refuse'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export type Fault =
  | { readonly kind: 'none' }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'hang' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'refuse' };

export interface ProxyStats {
  /** Connections accepted (refused ones are never seen). */
  accepted: number;
  /** Connections reset by a `drop` or `refuse` fault. */
  reset: number;
  /** Bytes delivered, both directions. */
  forwarded: number;
}

export interface FaultProxy {
  /** HOST:PORT to give the client instead of the target's. */
  readonly host: string;
  readonly stats: Readonly<ProxyStats>;
  fault(): Fault;
  /** Switches to `fault`; resolves once it is in force (e.g. the port is closed or listening again). */
  set(fault: Fault): Promise<void>;
  /** Resets every connection and stops listening. */
  close(): Promise<void>;
}

const NONE: Fault = { kind: 'none' };

/** One direction of a connection: delivers chunks to `to`, held back or delayed as the fault says. */
class Pipe {
  private held: Buffer[] = [];
  private last = 0;

  constructor(
    private readonly to: Socket,
    private readonly fault: () => Fault,
    private readonly stats: ProxyStats,
  ) {}

  push(chunk: Buffer): void {
    const fault = this.fault();
    if (fault.kind === 'hang' || this.held.length > 0) {
      this.held.push(chunk);
      return;
    }
    const now = Date.now();
    if (fault.kind === 'delay' || this.last > now) {
      // Each chunk arrives `ms` after it was sent, and never before one sent ahead of it (also once the delay
      // is lifted: a byte stream must stay in order).
      const at = Math.max(now + (fault.kind === 'delay' ? fault.ms : 0), this.last);
      this.last = at;
      setTimeout(() => this.deliver(chunk), at - now);
      return;
    }
    this.deliver(chunk);
  }

  /** Delivers what a `hang` held back. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.push(chunk);
  }

  private deliver(chunk: Buffer): void {
    if (this.to.destroyed) return;
    this.stats.forwarded += chunk.length;
    this.to.write(chunk);
  }
}

/** Starts a proxy on a free port of 127.0.0.1 (or `port`) forwarding to `target` (HOST:PORT). */
export async function startProxy(target: string, options: { port?: number } = {}): Promise<FaultProxy> {
  const [targetHost, targetPort] = splitHostPort(target);
  const stats: ProxyStats = { accepted: 0, reset: 0, forwarded: 0 };
  const connections = new Set<{ client: Socket; upstream: Socket; pipes: Pipe[] }>();
  let current: Fault = NONE;
  let server: Server | undefined;

  const resetAll = () => {
    for (const c of connections) {
      stats.reset++;
      c.client.resetAndDestroy();
      c.upstream.destroy();
    }
    connections.clear();
  };

  const onConnection = (client: Socket) => {
    stats.accepted++;
    if (current.kind === 'drop') {
      stats.reset++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const up = new Pipe(upstream, () => current, stats);
    const down = new Pipe(client, () => current, stats);
    const entry = { client, upstream, pipes: [up, down] };
    connections.add(entry);
    client.on('data', (chunk: Buffer) => up.push(chunk));
    upstream.on('data', (chunk: Buffer) => down.push(chunk));
    const end = () => {
      connections.delete(entry);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  };

  const listen = async (port: number) => {
    const s = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    server = s;
    return (s.address() as { port: number }).port;
  };
  const stopListening = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  const port = await listen(options.port ?? 0);
  return {
    host: `127.0.0.1:${port}`,
    stats,
    fault: () => current,
    async set(fault) {
      const previous = current;
      current = fault;
      if (fault.kind === 'drop' || fault.kind === 'refuse') resetAll();
      if (fault.kind === 'refuse') await stopListening();
      if (previous.kind === 'refuse' && fault.kind !== 'refuse') await listen(port);
      if (fault.kind !== 'hang') for (const c of connections) for (const p of c.pipes) p.release();
    },
    async close() {
      current = NONE;
      resetAll();
      await stopListening();
    },
  };
}

function splitHostPort(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port)) throw new Error(`expected HOST:PORT, got ${hostPort}`);
  return [hostPort.slice(0, i), port];
}
