import { execFileSync } from 'node:child_process';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/**
 * Fixtures written by other tools than forecastd's own code, generated in the tests: DuckDB (its Parquet,
 * CSV and JSON writers) and the command-line compressors gzip, bzip2, xz and zstd (Debian packages gzip,
 * bzip2, xz-utils and zstd; .ci/run installs them when missing).
 */

export class DuckDb {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
  ) {}

  static async open(): Promise<DuckDb> {
    const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
    return new DuckDb(instance, await instance.connect());
  }

  async run(sql: string): Promise<void> {
    await this.connection.run(sql);
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** SQL string literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export type CompressionTool = 'gzip' | 'bzip2' | 'xz' | 'zstd';

export const COMPRESSION_TOOLS: readonly { tool: CompressionTool; suffix: string; type: 'GZIP' | 'BZIP2' | 'XZ' | 'ZSTD' }[] = [
  { tool: 'gzip', suffix: 'gz', type: 'GZIP' },
  { tool: 'bzip2', suffix: 'bz2', type: 'BZIP2' },
  { tool: 'xz', suffix: 'xz', type: 'XZ' },
  { tool: 'zstd', suffix: 'zst', type: 'ZSTD' },
];

/** Compresses `file` with the command-line tool into `file.SUFFIX`, keeping the original; returns the new path. */
export function compressWith(tool: CompressionTool, file: string): string {
  const suffix = COMPRESSION_TOOLS.find((t) => t.tool === tool)?.suffix ?? tool;
  const out = `${file}.${suffix}`;
  // -k keeps the input, -f overwrites an earlier output, -q keeps zstd quiet.
  execFileSync(tool, tool === 'zstd' ? ['-q', '-k', '-f', file] : ['-k', '-f', file]);
  return out;
}
