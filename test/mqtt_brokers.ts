/**
 * Real MQTT brokers for tests, on 127.0.0.1 and ports chosen at run time: Mosquitto (MQTT 5 and
 * 3.1.1; Debian package `mosquitto`, installed by .ci/run) in a child process, and aedes (MQTT
 * 3.1.1 only) in process. Both can be stopped and started again on the same port, to test a
 * broker that drops and comes back.
 */
import { createServer, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/** A running test broker. */
export interface TestBroker {
  url: string;
  port: number;
  /** Stops it (connections are cut, as in a crash). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const MOSQUITTO_PATHS = [
  "/usr/sbin/mosquitto",
  "/usr/bin/mosquitto",
  "/usr/local/sbin/mosquitto",
];

/** The mosquitto binary, or undefined when it is not installed. */
export function mosquittoPath(): string | undefined {
  for (const p of MOSQUITTO_PATHS) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // try the next
    }
  }
  return undefined;
}

async function waitForPort(port: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      if (Date.now() > until) {
        throw new Error(
          `broker did not listen on port ${port}: ${(e as Error).message}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * Starts mosquitto on a free port (throws if it is not installed: check {@link mosquittoPath}).
 * `acl`: the text of an ACL file (its rules before any `user` line apply to anonymous clients).
 * Sessions (persistent ones included) live in memory while the broker runs.
 */
export async function startMosquitto(
  opts: { acl?: string } = {},
): Promise<TestBroker> {
  const bin = mosquittoPath();
  if (!bin) {
    throw new Error("mosquitto is not installed (apt-get install mosquitto)");
  }
  const dir = await Deno.makeTempDir({ prefix: "bonsai-mosquitto-" });
  const port = freePort();
  const conf = `${dir}/mosquitto.conf`;
  let aclLine = "";
  if (opts.acl !== undefined) {
    await Deno.writeTextFile(`${dir}/acl`, opts.acl);
    // mosquitto reads the ACL after dropping root for its own user.
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(`${dir}/acl`, 0o644);
    aclLine = `acl_file ${dir}/acl\n`;
  }
  await Deno.writeTextFile(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nmessage_size_limit 0\n` +
      `max_queued_messages 10000\nset_tcp_nodelay true\n${aclLine}`,
  );
  let child: Deno.ChildProcess | undefined;
  const broker: TestBroker = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async start() {
      child = new Deno.Command(bin, {
        args: ["-c", conf],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitForPort(port);
    },
    async stop() {
      if (!child) return;
      const c = child;
      child = undefined;
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
      await c.status;
    },
  };
  await broker.start();
  return broker;
}

/**
 * Starts an in-process aedes broker (MQTT 3.1.1) on a free port. `refuseSubscriptions`: topic
 * filters the broker refuses (SUBACK 0x80), as an ACL would.
 */
export async function startAedes(
  opts: { refuseSubscriptions?: string[] } = {},
): Promise<TestBroker> {
  const port = freePort();
  let server: Server | undefined;
  let aedes: Aedes | undefined;
  let sockets = new Set<Socket>();
  const broker: TestBroker = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async start() {
      const refused = new Set(opts.refuseSubscriptions ?? []);
      aedes = await Aedes.createBroker({
        authorizeSubscribe: (_client, sub, done) => done(null, refused.has(sub.topic) ? null : sub),
      });
      const a = aedes;
      sockets = new Set();
      const s = createServer((socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        a.handle(socket);
      });
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
      });
    },
    async stop() {
      const s = server, a = aedes;
      server = undefined;
      aedes = undefined;
      if (!s || !a) return;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((r) => a.close(() => r()));
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
  await broker.start();
  return broker;
}

/** A proxy that can also freeze: connections stay open but nothing passes (a hung broker). */
export interface TestProxy extends TestBroker {
  freeze(): void;
  thaw(): void;
}

/**
 * A TCP proxy in front of a broker: stopping it cuts every connection through it (as a failing
 * network link would) while the broker and clients connected directly stay up.
 */
export async function startProxy(target: number): Promise<TestProxy> {
  const port = freePort();
  let listener: Deno.Listener | undefined;
  const conns = new Set<Deno.Conn>();
  let gate: Promise<void> | undefined;
  let open = () => {};
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        if (gate) await gate;
        const n = await from.read(buf);
        if (n === null) break;
        if (gate) await gate;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // cut
    }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch {
        // closed already
      }
    }
  };
  const serve = async (l: Deno.Listener) => {
    for await (const client of l) {
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: target });
      } catch {
        client.close();
        continue;
      }
      conns.add(client);
      conns.add(upstream);
      void pipe(client, upstream).finally(() => conns.delete(client));
      void pipe(upstream, client).finally(() => conns.delete(upstream));
    }
  };
  const proxy: TestProxy = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    freeze() {
      gate ??= new Promise<void>((r) => open = r);
    },
    thaw() {
      gate = undefined;
      open();
    },
    start() {
      listener = Deno.listen({ hostname: "127.0.0.1", port });
      void serve(listener).catch(() => {});
      return Promise.resolve();
    },
    async stop() {
      proxy.thaw();
      listener?.close();
      listener = undefined;
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed already
        }
      }
      conns.clear();
      await new Promise((r) => setTimeout(r, 10));
    },
  };
  await proxy.start();
  return proxy;
}
