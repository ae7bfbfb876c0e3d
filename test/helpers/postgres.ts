import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/**
 * The PostgreSQL server the tests use: 127.0.0.1:5432, database `test`, user `postgres`, no password
 * (trust auth), unless FORECASTD_TEST_PG_HOST / _PORT / _DB / _USER / _PASSWORD say otherwise.
 */
export const TEST_PG = {
  host: process.env.FORECASTD_TEST_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.FORECASTD_TEST_PG_PORT ?? '5432'),
  database: process.env.FORECASTD_TEST_PG_DB ?? 'test',
  user: process.env.FORECASTD_TEST_PG_USER ?? 'postgres',
  password: process.env.FORECASTD_TEST_PG_PASSWORD ?? null,
} as const;

export type PostgresProbe = { readonly available: true } | { readonly available: false; readonly reason: string };

/**
 * Checks that the test server answers. When it does not: under CI=true this throws, failing the test file
 * (CI must run these tests); elsewhere it prints a banner saying the tests are skipped and why, and the
 * caller skips them with `describe.skipIf(!probe.available)`.
 */
export async function probeTestPostgres(): Promise<PostgresProbe> {
  const client = new pg.Client({ ...clientConfig(), connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { available: true };
  } catch (err) {
    const where = `${TEST_PG.host}:${TEST_PG.port}/${TEST_PG.database} as ${TEST_PG.user}`;
    const reason = `no PostgreSQL at ${where}: ${describeError(err)}`;
    if (process.env.CI === 'true') {
      throw new Error(`${reason}. CI=true requires PostgreSQL for these tests (.ci/run starts it).`);
    }
    const line = '!'.repeat(100);
    console.warn(
      `\n${line}\n!! SKIPPED: PostgreSQL dataset tests.\n!! ${reason}\n` +
        '!! Start PostgreSQL (trust auth for 127.0.0.1) or set FORECASTD_TEST_PG_HOST/_PORT/_DB/_USER/_PASSWORD.\n' +
        `${line}\n`,
    );
    return { available: false, reason };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The dataset params that reach the test server (pg_sslmode disable: the test server runs without TLS). */
export function testPgParams(extra: Record<string, string> = {}): Record<string, string> {
  return {
    pg_host: TEST_PG.host,
    pg_port: String(TEST_PG.port),
    pg_db: TEST_PG.database,
    pg_user: TEST_PG.user,
    ...(TEST_PG.password === null ? {} : { pg_pass: TEST_PG.password }),
    pg_sslmode: 'disable',
    ...extra,
  };
}

/** An administrative connection with a schema of its own, dropped by `dispose`. */
export class TestDatabase {
  readonly schema: string;
  readonly #client: pg.Client;

  private constructor(client: pg.Client, schema: string) {
    this.#client = client;
    this.schema = schema;
  }

  static async open(): Promise<TestDatabase> {
    const client = new pg.Client(clientConfig());
    client.on('error', () => undefined);
    await client.connect();
    const schema = `forecastd_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    await client.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
    return new TestDatabase(client, schema);
  }

  /** `"schema"."name"` */
  table(name: string): string {
    return `${pg.escapeIdentifier(this.schema)}.${pg.escapeIdentifier(name)}`;
  }

  async query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<R[]> {
    const result = await this.#client.query<R>(sql, values);
    return result.rows;
  }

  /** Ends every server backend that runs under `applicationName`; returns how many there were. */
  async terminateBackends(applicationName: string): Promise<number> {
    const rows = await this.query<{ ok: boolean }>(
      'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [applicationName],
    );
    return rows.filter((r) => r.ok).length;
  }

  async backendCount(applicationName: string): Promise<number> {
    const rows = await this.query<{ n: string }>(
      'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async dispose(): Promise<void> {
    try {
      await this.#client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(this.schema)} CASCADE`);
    } finally {
      await this.#client.end();
    }
  }
}

export interface Co2Series {
  /** ISO strings as in the file. */
  readonly iso: readonly string[];
  readonly times: readonly number[];
  /** null where the file has no value. */
  readonly values: readonly (number | null)[];
}

/** The weekly Mauna Loa CO2 series in test/data (2284 rows, 59 of them without a value). */
export function readCo2Series(): Co2Series {
  const file = fileURLToPath(new URL('../data/co2_weekly.csv', import.meta.url));
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1);
  const iso: string[] = [];
  const times: number[] = [];
  const values: (number | null)[] = [];
  for (const line of lines) {
    const [ts = '', co2 = ''] = line.trim().split(',');
    iso.push(ts);
    times.push(Date.parse(ts));
    values.push(co2 === '' ? null : Number(co2));
  }
  return { iso, times, values };
}

/**
 * A TCP forwarder to the test server that can be stopped (the database becomes unreachable: refused
 * connections, open ones cut) and started again on the same port.
 */
export class TcpProxy {
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | null = null;
  #port = 0;

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    const server = net.createServer((inbound) => {
      const outbound = net.connect(TEST_PG.port, TEST_PG.host);
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
    this.#port = address.port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function clientConfig(): pg.ClientConfig {
  return {
    host: TEST_PG.host,
    port: TEST_PG.port,
    database: TEST_PG.database,
    user: TEST_PG.user,
    ...(TEST_PG.password === null ? {} : { password: TEST_PG.password }),
  };
}

function describeError(err: unknown): string {
  if (err instanceof AggregateError) return err.errors.map((e: unknown) => describeError(e)).join('; ');
  if (err instanceof Error) return err.message !== '' ? err.message : String((err as NodeJS.ErrnoException).code);
  return String(err);
}
