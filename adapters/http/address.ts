/**
 * The `--http` listen address: `PORT`, `HOST:PORT` or `[IPV6]:PORT`. The host defaults to
 * 127.0.0.1 (this machine only): listening on every interface needs an explicit `0.0.0.0`.
 *
 * @module
 */

/** Host and port to listen on. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/** Parses a listen address; throws an Error naming the bad part. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^\s:[\]]*):)?(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`HTTP address must be PORT, HOST:PORT or [IPV6]:PORT, got '${text}'`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`HTTP port must be 0-65535, got ${port}`);
  let hostname = m[1] ?? "";
  if (hostname.startsWith("[")) hostname = hostname.slice(1, -1);
  return { hostname: hostname === "" ? "127.0.0.1" : hostname, port };
}
