import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import type { PoolConfig } from 'pg';
import { ForecastdError } from '../errors.js';

/** Spice's values for `pg_sslmode`, with libpq's meanings. */
export type SslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly SslMode[] = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'];

/**
 * Where and how to connect, resolved from a dataset's params. The password stays inside this object: it is
 * never part of `endpoint`, and `redact` strips it from any text that leaves the module.
 */
export interface PostgresEndpoint {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | null;
  readonly sslMode: SslMode;
  /** Path of a PEM bundle of trusted roots (`pg_sslrootcert`), or null for the system roots. */
  readonly sslRootCert: string | null;
  readonly applicationName: string;
  /** "host:port/database (user NAME)", for messages. */
  readonly endpoint: string;
}

/** The connection keys a `pg_connection_string` may carry (libpq names). */
const CONNECTION_STRING_KEYS = new Set([
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'sslmode',
  'sslrootcert',
  'application_name',
  'connect_timeout',
]);

/**
 * Resolves Spice's connection params (`pg_host`, `pg_port`, `pg_db`, `pg_user`, `pg_pass`, `pg_sslmode`,
 * `pg_sslrootcert`, `pg_application_name`) or a `pg_connection_string`, which wins when present. Like Spice,
 * TLS defaults to `verify-full`: a server without TLS needs `pg_sslmode: disable` (or `prefer`).
 * Throws ERR_DATASET for a value that can never work (a bad port or sslmode, a malformed connection string).
 */
export function resolvePostgresEndpoint(params: Readonly<Record<string, string>>): PostgresEndpoint {
  const fromString = params.pg_connection_string !== undefined
    ? parseConnectionString(params.pg_connection_string)
    : new Map<string, string>();
  const pick = (stringKey: string, paramKey: string): string | undefined => {
    const fromConn = fromString.get(stringKey);
    if (fromConn !== undefined && fromConn !== '') return fromConn;
    // With a connection string, the individual params only fill what it leaves out (sslmode, mostly).
    const param = params[paramKey];
    return param !== undefined && param !== '' ? param : undefined;
  };

  const host = pick('host', 'pg_host') ?? fromString.get('hostaddr') ?? 'localhost';
  const portText = pick('port', 'pg_port') ?? '5432';
  const port = Number(portText);
  if (!/^\d+$/.test(portText.trim()) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ForecastdError('ERR_DATASET', `pg_port must be a TCP port number (1-65535), got "${portText}"`);
  }
  const user = pick('user', 'pg_user') ?? 'postgres';
  const database = pick('dbname', 'pg_db') ?? user;
  const password = pick('password', 'pg_pass') ?? null;
  const sslText = (pick('sslmode', 'pg_sslmode') ?? 'verify-full').toLowerCase();
  if (!(SSL_MODES as readonly string[]).includes(sslText)) {
    throw new ForecastdError(
      'ERR_DATASET',
      `pg_sslmode must be one of ${SSL_MODES.join(', ')}, got "${sslText}"`,
    );
  }
  const sslRootCert = pick('sslrootcert', 'pg_sslrootcert') ?? null;
  const applicationName = pick('application_name', 'pg_application_name') ?? 'forecastd';
  const where = host.startsWith('/') ? `${host} port ${port}` : `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    host,
    port,
    database,
    user,
    password,
    sslMode: sslText as SslMode,
    sslRootCert,
    applicationName,
    endpoint: `${where}/${database} (user ${user})`,
  };
}

/** Removes the password from text that may end up in a log line or an HTTP body. */
export function redact(text: string, endpoint: PostgresEndpoint): string {
  const password = endpoint.password;
  if (password === null || password === '') return text;
  let out = text.split(password).join('***');
  const encoded = encodeURIComponent(password);
  if (encoded !== password) out = out.split(encoded).join('***');
  return out;
}

/** The TLS options node-postgres takes for an sslmode; `prefer` starts with TLS and falls back (see postgres.ts). */
export async function tlsOptionsFor(
  endpoint: PostgresEndpoint,
  mode: SslMode = endpoint.sslMode,
): Promise<false | ConnectionOptions> {
  if (mode === 'disable') return false;
  let ca: string | undefined;
  if (endpoint.sslRootCert !== null) {
    try {
      ca = await readFile(endpoint.sslRootCert, 'utf8');
    } catch (err) {
      throw new ForecastdError(
        'ERR_DATASET',
        `cannot read pg_sslrootcert ${endpoint.sslRootCert}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  switch (mode) {
    case 'verify-full':
      return ca === undefined ? { rejectUnauthorized: true } : { rejectUnauthorized: true, ca };
    case 'verify-ca':
      // The chain must verify; the host name need not match (libpq's verify-ca).
      return { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }), checkServerIdentity: () => undefined };
    case 'require':
      // libpq: with a root certificate given, require behaves as verify-ca.
      return ca === undefined
        ? { rejectUnauthorized: false }
        : { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
    case 'prefer':
      return { rejectUnauthorized: false };
  }
}

/** node-postgres pool settings for an endpoint and a resolved TLS choice. */
export function poolConfigFor(endpoint: PostgresEndpoint, ssl: false | ConnectionOptions): PoolConfig {
  return {
    host: endpoint.host,
    port: endpoint.port,
    database: endpoint.database,
    user: endpoint.user,
    ...(endpoint.password === null ? {} : { password: endpoint.password }),
    ssl,
    application_name: endpoint.applicationName,
    // One connection loads, a second may serve a concurrent refresh; a dataset never needs more.
    max: 2,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 60_000,
    // Idle pooled connections must not keep a process alive that is otherwise done.
    allowExitOnIdle: true,
    keepAlive: true,
    statement_timeout: 300_000,
  };
}

/**
 * Parses a libpq connection string, either URI (`postgresql://user:pass@host:port/db?sslmode=...`) or
 * keyword/value (`host=... port=... dbname=...`), into its keywords.
 */
export function parseConnectionString(text: string): Map<string, string> {
  const trimmed = text.trim();
  const out = /^postgres(ql)?:\/\//i.test(trimmed) ? parseUri(trimmed) : parseKeywords(trimmed);
  for (const key of out.keys()) {
    if (!CONNECTION_STRING_KEYS.has(key)) {
      throw new ForecastdError(
        'ERR_DATASET',
        `pg_connection_string: unsupported option "${key}" (supported: ${[...CONNECTION_STRING_KEYS].join(', ')})`,
      );
    }
  }
  return out;
}

function parseUri(text: string): Map<string, string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Never echo the string: it may hold the password.
    throw new ForecastdError(
      'ERR_DATASET',
      'pg_connection_string is not a valid URI (postgresql://user:password@host:port/database?sslmode=...)',
    );
  }
  const out = new Map<string, string>();
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new ForecastdError('ERR_DATASET', 'pg_connection_string holds a malformed %-escape');
    }
  };
  if (url.hostname !== '') out.set('host', decode(url.hostname.replace(/^\[(.*)\]$/, '$1')));
  if (url.port !== '') out.set('port', url.port);
  if (url.username !== '') out.set('user', decode(url.username));
  if (url.password !== '') out.set('password', decode(url.password));
  const db = url.pathname.replace(/^\//, '');
  if (db !== '') out.set('dbname', decode(db));
  for (const [key, value] of url.searchParams) out.set(key, value);
  return out;
}

function parseKeywords(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const fail = (): never => {
    throw new ForecastdError(
      'ERR_DATASET',
      'pg_connection_string is neither a postgresql:// URI nor "key=value key=value" pairs',
    );
  };
  const skipSpace = (): void => {
    while (i < text.length && /\s/.test(text[i] as string)) i += 1;
  };
  skipSpace();
  if (i >= text.length) fail();
  while (i < text.length) {
    const keyStart = i;
    while (i < text.length && /[A-Za-z_]/.test(text[i] as string)) i += 1;
    const key = text.slice(keyStart, i);
    skipSpace();
    if (key === '' || text[i] !== '=') fail();
    i += 1;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      i += 1;
      let closed = false;
      while (i < text.length) {
        const ch = text[i] as string;
        if (ch === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (ch === "'") {
          i += 1;
          closed = true;
          break;
        } else {
          value += ch;
          i += 1;
        }
      }
      if (!closed) fail();
    } else {
      while (i < text.length && !/\s/.test(text[i] as string)) {
        const ch = text[i] as string;
        if (ch === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else {
          value += ch;
          i += 1;
        }
      }
    }
    out.set(key, value);
    skipSpace();
  }
  return out;
}
