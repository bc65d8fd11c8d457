// A group's directory: GET /servers on the client port of any of its
// servers lists the group's servers with their load (docs/PROTOCOL.md). A
// Reconnector with a directory reads it before every connection and tries
// the least loaded server that is not draining first.

import { ConnectionError } from "./errors.js";

/** One server of a directory. */
export interface DirectoryServer {
  id: string;
  /** The server's WebSocket endpoint. */
  url: string;
  /** Clients it holds; -1: unknown. */
  players: number;
  /** The most it accepts; 0: no limit. */
  capacity: number;
  /** It takes no new clients. */
  draining: boolean;
}

/** A group's directory: its servers, least loaded first. */
export interface Directory {
  group: string;
  servers: DirectoryServer[];
  /** The load of some server could not be learned (its players is -1). */
  partial: boolean;
}

/** The error of a directory that cannot be read. */
export class DirectoryError extends ConnectionError {}

/** Orders servers: the share of capacity used, or players for one without a limit (past every share), unknown last. */
function load(s: DirectoryServer): number {
  if (s.players < 0) return Number.MAX_VALUE;
  if (s.capacity > 0) return s.players / s.capacity;
  return 1 + s.players;
}

/** The URLs of the servers that are not draining, least loaded first (the directory's order between equals). */
export function directoryURLs(d: Directory): string[] {
  return d.servers
    .filter((s) => !s.draining && typeof s.url === "string" && s.url !== "")
    .map((s, i) => ({ s, i }))
    .sort((a, b) => load(a.s) - load(b.s) || a.i - b.i)
    .map(({ s }) => s.url);
}

/** Whether u is an http(s) URL with a host. */
export function directoryProblem(u: string): string | null {
  let p: URL;
  try {
    p = new URL(u);
  } catch {
    return `bad directory URL ${JSON.stringify(u)}`;
  }
  if ((p.protocol !== "http:" && p.protocol !== "https:") || p.host === "") return `directory URL ${JSON.stringify(u)}: want http(s)://host:port/servers`;
  return null;
}

/**
 * Reads the directory at url (http(s)://host:port/servers) within
 * timeoutMs, with the global fetch. Rejects with a DirectoryError.
 */
export async function fetchDirectory(url: string, timeoutMs = 10_000): Promise<Directory> {
  const bad = directoryProblem(url);
  if (bad !== null) throw new DirectoryError(bad);
  const f = (globalThis as { fetch?: typeof fetch }).fetch;
  if (typeof f !== "function") throw new DirectoryError("no global fetch to read the directory with");
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const resp = await f(url, { signal: ctl.signal, headers: { Accept: "application/json" }, cache: "no-store" });
    if (!resp.ok) throw new DirectoryError(`directory ${url}: HTTP ${resp.status}`);
    const d = (await resp.json()) as Directory;
    if (d === null || typeof d !== "object" || !Array.isArray(d.servers)) throw new DirectoryError(`directory ${url}: no servers list`);
    return d;
  } catch (err) {
    if (err instanceof DirectoryError) throw err;
    throw new DirectoryError(`directory ${url}: ${err}`, 0, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
