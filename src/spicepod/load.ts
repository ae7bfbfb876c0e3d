import { DEFAULT_MAX_CELLS, DEFAULT_MAX_RECORD_BYTES, MAX_CELLS_LIMIT, MAX_RECORD_BYTES_LIMIT, type DatasetLimits } from '../datasets/limits.js';
import { readFile, stat } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { LineCounter, isSeq, parseDocument, type Node } from 'yaml';
import { parseDuration } from '../duration.js';
import { ForecastdError } from '../errors.js';
import { parseTimestamp } from '../forecast/timestamps.js';
import {
  CSV_DEFAULTS,
  FILE_COMPRESSIONS,
  paramPrefix,
  type DelimitedTextOptions,
  type FileCompression,
  type FileFormat,
  type JsonOptions,
} from '../datasets/file-format.js';
import type { FillMissing, RefreshMode, TimeFormat } from '../datasets/types.js';
import type {
  AccelerationConfig,
  CombineRule,
  CompositeMember,
  DatasetConfig,
  EvaluationParams,
  DatasetFrom,
  ModelConfig,
  ModelFrom,
  ModelParams,
  RuntimeConfig,
  Spicepod,
  StickyRule,
} from './types.js';
import { YamlReader, type KeyPath, type MapEntry } from './yaml-reader.js';

export const SPICEPOD_FILE_NAMES = ['spicepod.yaml', 'spicepod.yml'] as const;

/** Spicepod versions read as the same format (Spice moved from v1beta1 to v1 without changing these keys). */
const SUPPORTED_VERSIONS = ['v1beta1', 'v1'] as const;

// Largest delay Node's timers accept; longer ones fire at once.
const MAX_TIMER_MS = 2_147_483_647;

// Dataset and model names appear in URLs (/v1/models/:name/predict) and metric labels.
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export const MODEL_PARAM_DEFAULTS: ModelParams = {
  version: null,
  lookback: null,
  fillMissing: 'none',
  intraOpThreads: 'auto',
  maxBatchSize: 64,
  maxConcurrentRuns: 0,
  maxQueueDelayMs: 0,
  maxQueueSize: 1024,
  timeoutMs: 30_000,
  cachePredictions: true,
  quantiles: null,
  quantileOutput: null,
  evaluation: { origins: 200, since: null, seasonLength: null },
};

/** file_format values and file extensions, and the format each means. */
const FILE_FORMATS: Readonly<Record<string, FileFormat>> = {
  csv: 'csv',
  tsv: 'tsv',
  parquet: 'parquet',
  pq: 'parquet',
  json: 'json',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
};

/** A compressed file's last extension (data.csv.gz): the compression, and the format from the one before. */
const COMPRESSION_SUFFIXES: Readonly<Record<string, FileCompression>> = {
  gz: 'GZIP',
  gzip: 'GZIP',
  bz2: 'BZIP2',
  xz: 'XZ',
  zst: 'ZSTD',
  zstd: 'ZSTD',
};

/** Spice's names for json_format; all but array mean one object per line. */
const JSON_FORMATS = ['jsonl', 'ndjson', 'ldjson', 'array'] as const;

/** Parameters of a file dataset, by format (Spice's file format reference). */
const FILE_PARAMS_COMMON = ['columns', 'file_format', 'file_compression_type', 'schema_infer_max_records', 'max_cells', 'max_record_bytes'];
const FILE_PARAMS: Readonly<Record<FileFormat, readonly string[]>> = {
  csv: ['csv_has_header', 'csv_quote', 'csv_escape', 'csv_delimiter', 'csv_schema_infer_max_records'],
  tsv: ['tsv_has_header', 'tsv_quote', 'tsv_escape', 'tsv_schema_infer_max_records'],
  json: ['json_format', 'flatten_json'],
  jsonl: [],
  parquet: [],
};

const PG_PARAMS = [
  'pg_host',
  'pg_port',
  'pg_db',
  'pg_user',
  'pg_pass',
  'pg_sslmode',
  'pg_sslrootcert',
  'pg_application_name',
  'pg_connection_string',
];

/**
 * Reads and validates a spicepod. PATH is a spicepod.yaml or a folder holding spicepod.yaml (or .yml).
 * Anything wrong with the pod itself throws ForecastdError('ERR_SPICEPOD') naming file:line:column and the
 * key; problems that only concern one entry (a non-ONNX model source) are recorded on the entry instead.
 */
export async function loadSpicepod(pathOrDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Spicepod> {
  const file = await findSpicepodFile(pathOrDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ForecastdError('ERR_SPICEPOD', `${displayName(file)}: cannot read the spicepod: ${errorText(err)}`, { cause: err });
  }
  return parseSpicepod(text, file, env);
}

/** Resolves PATH to the spicepod file: the file itself, or spicepod.yaml / spicepod.yml inside a folder. */
export async function findSpicepodFile(pathOrDir: string): Promise<string> {
  const absolute = nodePath.resolve(pathOrDir);
  let isDir: boolean;
  try {
    isDir = (await stat(absolute)).isDirectory();
  } catch (err) {
    throw new ForecastdError('ERR_SPICEPOD', `${pathOrDir}: cannot read the spicepod: ${errorText(err)}`, { cause: err });
  }
  if (!isDir) return absolute;
  for (const name of SPICEPOD_FILE_NAMES) {
    const candidate = nodePath.join(absolute, name);
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not this name; try the next
    }
  }
  throw new ForecastdError('ERR_SPICEPOD', `${pathOrDir}: the folder holds no ${SPICEPOD_FILE_NAMES.join(' or ')}`);
}

/** Validates spicepod text; `file` is the absolute path it came from (relative paths resolve against its folder). */
export function parseSpicepod(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Spicepod {
  const absolute = nodePath.resolve(file);
  const shown = displayName(absolute);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError !== undefined) {
    const pos = firstError.linePos?.[0];
    const where = pos === undefined ? shown : `${shown}:${pos.line}:${pos.col}`;
    // The position is already in front; drop the library's own "at line N, column M:" and source excerpt.
    const message = (firstError.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ForecastdError('ERR_SPICEPOD', `${where}: invalid YAML: ${message}`);
  }
  const r = new YamlReader(doc, lineCounter, shown, env);
  const root = r.resolve(doc.contents);
  if (root === null) {
    throw new ForecastdError('ERR_SPICEPOD', `${shown}: the spicepod is empty; it needs at least version, kind and name`);
  }
  return new PodValidator(r, absolute).validate(root);
}

class PodValidator {
  private readonly dir: string;

  constructor(
    private readonly r: YamlReader,
    private readonly file: string,
  ) {
    this.dir = nodePath.dirname(file);
  }

  validate(root: Node): Spicepod {
    const r: YamlReader = this.r;
    const top = r.map(root, [], 'a mapping with version, kind, name, datasets and models');
    r.checkKeys(top, [], ['version', 'kind', 'name', 'runtime', 'datasets', 'models', 'description', 'metadata']);

    const version = r.requiredString(top, 'version', root, []);
    if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
      r.fail(top.get('version')?.value, ['version'], `expected ${SUPPORTED_VERSIONS.join(' or ')}, got ${JSON.stringify(version)}`);
    }
    const kind = r.requiredString(top, 'kind', root, []);
    if (kind !== 'Spicepod') r.fail(top.get('kind')?.value, ['kind'], `expected Spicepod, got ${JSON.stringify(kind)}`);
    const name = r.requiredString(top, 'name', root, []);

    const runtime = this.runtime(top.get('runtime'));
    const datasets = this.list(top.get('datasets'), 'datasets').map(([node, i]) => this.dataset(node, ['datasets', i]));
    this.checkUnique(datasets, top.get('datasets'), 'datasets', 'dataset');
    const datasetNames = new Set(datasets.map((d) => d.config.name));
    const parsed = this.list(top.get('models'), 'models').map(([node, i]) => this.model(node, ['models', i], datasetNames));
    this.checkUnique(parsed, top.get('models'), 'models', 'model');
    const models = this.composites(parsed, runtime);

    return {
      file: this.file,
      dir: this.dir,
      name,
      version,
      runtime,
      datasets: datasets.map((d) => d.config),
      models,
      warnings: r.warnings,
    };
  }

  private list(entry: MapEntry | undefined, key: string): [Node, number][] {
    if (entry === undefined || entry.value === null) return [];
    return this.r.seq(entry.value, [key], `a list of ${key}`).map((node, i) => [node, i]);
  }

  private checkUnique(entries: { config: { name: string }; node: Node }[], listEntry: MapEntry | undefined, key: string, what: string): void {
    const seen = new Map<string, number>();
    entries.forEach((entry, i) => {
      const first = seen.get(entry.config.name);
      if (first !== undefined) {
        this.r.fail(entry.node, [key, i, 'name'], `duplicate ${what} name "${entry.config.name}" (also ${key}[${first}], ${this.r.where(entries[first]?.node ?? listEntry?.value)})`);
      }
      seen.set(entry.config.name, i);
    });
  }

  private entryName(entries: Map<string, MapEntry>, node: Node, path: KeyPath): string {
    const name = this.r.requiredString(entries, 'name', node, path);
    if (!NAME_PATTERN.test(name)) {
      this.r.fail(entries.get('name')?.value, [...path, 'name'], `invalid name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-" (it appears in URLs)`);
    }
    return name;
  }

  private runtime(entry: MapEntry | undefined): RuntimeConfig {
    const r: YamlReader = this.r;
    if (entry === undefined || entry.value === null) return { auth: null };
    const runtime = r.map(entry.value, ['runtime']);
    r.checkKeys(runtime, ['runtime'], ['auth']);
    const authEntry = runtime.get('auth');
    if (authEntry === undefined || authEntry.value === null) return { auth: null };
    const auth = r.map(authEntry.value, ['runtime', 'auth']);
    r.checkKeys(auth, ['runtime', 'auth'], ['api-key']);
    const apiKeyEntry = auth.get('api-key');
    if (apiKeyEntry === undefined || apiKeyEntry.value === null) return { auth: null };
    const apiPath = ['runtime', 'auth', 'api-key'];
    const apiKey = r.map(apiKeyEntry.value, apiPath);
    r.checkKeys(apiKey, apiPath, ['enabled', 'keys']);
    // Writing an api-key section at all asks for authentication; only an explicit `enabled: false` turns it off.
    const enabled = r.optionalBool(apiKey.get('enabled')?.value ?? null, [...apiPath, 'enabled']) ?? true;
    if (!enabled) return { auth: null };
    const keysEntry = apiKey.get('keys');
    if (keysEntry === undefined || keysEntry.value === null) {
      r.fail(apiKeyEntry.value, apiPath, 'enabled needs at least one key in "keys"');
    }
    const keys = r.seq(keysEntry.value, [...apiPath, 'keys'], 'a list of API keys').map((node, i) => {
      const s = r.scalar(node, [...apiPath, 'keys', i], 'an API key');
      if (s.type === 'null' || s.source.trim() === '') r.fail(node, [...apiPath, 'keys', i], 'an API key must not be empty');
      return s.source.trim();
    });
    if (keys.length === 0) r.fail(keysEntry.value, [...apiPath, 'keys'], 'enabled needs at least one key');
    return { auth: { apiKeys: keys } };
  }

  private dataset(node: Node, path: KeyPath): { config: DatasetConfig; node: Node } {
    const r: YamlReader = this.r;
    const entries = r.map(node, path, 'a dataset mapping');
    r.checkKeys(entries, path, ['from', 'name', 'description', 'time_column', 'time_format', 'params', 'acceleration']);
    const name = this.entryName(entries, node, path);
    const from = r.requiredString(entries, 'from', node, path);
    const fromNode = entries.get('from')?.value ?? node;

    const paramsEntry = entries.get('params');
    const paramsPath = [...path, 'params'];
    const params = paramsEntry?.value ? r.map(paramsEntry.value, paramsPath) : new Map<string, MapEntry>();

    const source = this.datasetSource(from, fromNode, [...path, 'from'], params, paramsPath);
    const knownParams = source.kind === 'file' ? [...FILE_PARAMS_COMMON, ...FILE_PARAMS[source.format]] : ['columns', 'max_cells', ...PG_PARAMS];
    r.checkKeys(params, paramsPath, knownParams, source.kind === 'file' ? ` for a ${source.format} file dataset` : '');

    const timeColumn = r.optionalString(entries.get('time_column')?.value ?? null, [...path, 'time_column'])?.trim() || 'ts';
    const timeFormat = this.timeFormat(entries.get('time_format')?.value ?? null, [...path, 'time_format']);

    let columns: string[] | null = null;
    const columnsEntry = params.get('columns');
    if (columnsEntry !== undefined && columnsEntry.value !== null) {
      const columnsPath = [...paramsPath, 'columns'];
      columns = r.stringList(columnsEntry.value, columnsPath, 'a list of column names');
      if (columns.length === 0) r.fail(columnsEntry.value, columnsPath, 'expected at least one value column');
      const seen = new Set<string>();
      for (const column of columns) {
        if (column === timeColumn) r.fail(columnsEntry.value, columnsPath, `"${column}" is the time column; list only value columns`);
        if (seen.has(column)) r.fail(columnsEntry.value, columnsPath, `column "${column}" is listed twice`);
        seen.add(column);
      }
    }

    const limits: DatasetLimits = {
      maxCells: r.optionalInt(params.get('max_cells')?.value ?? null, [...paramsPath, 'max_cells'], 1, MAX_CELLS_LIMIT, `a whole number of cells from 1 to ${MAX_CELLS_LIMIT}`) ?? DEFAULT_MAX_CELLS,
      maxRecordBytes:
        r.optionalInt(params.get('max_record_bytes')?.value ?? null, [...paramsPath, 'max_record_bytes'], 1, MAX_RECORD_BYTES_LIMIT, `a whole number of bytes from 1 to ${MAX_RECORD_BYTES_LIMIT}`) ??
        DEFAULT_MAX_RECORD_BYTES,
    };

    const otherParams: Record<string, string> = {};
    for (const entry of params.values()) {
      if (entry.key === 'columns' || entry.key === 'max_cells' || entry.key === 'max_record_bytes') continue;
      const value = r.optionalString(entry.value, [...paramsPath, entry.key], 'a string, number or boolean');
      if (value !== null) otherParams[entry.key] = value;
    }

    const acceleration = this.acceleration(entries.get('acceleration'), [...path, 'acceleration']);
    return {
      node,
      config: { name, from, source, timeColumn, timeFormat, columns, params: otherParams, limits, acceleration },
    };
  }

  private timeFormat(node: Node | null, path: KeyPath): TimeFormat | null {
    // Spice's names for native timestamp columns mean "infer" here: native timestamps are always read as such.
    const format = this.r.optionalEnum(node, path, ['iso8601', 'unix_seconds', 'unix_millis', 'timestamp', 'timestamptz', 'date']);
    if (format === null || format === 'timestamp' || format === 'timestamptz' || format === 'date') return null;
    return format;
  }

  private datasetSource(from: string, node: Node, path: KeyPath, params: Map<string, MapEntry>, paramsPath: KeyPath): DatasetFrom {
    const r: YamlReader = this.r;
    if (from.startsWith('file:')) {
      const filePath = from.startsWith('file://') ? from.slice('file://'.length) : from.slice('file:'.length);
      if (filePath === '') r.fail(node, path, `"${from}" names no file`);
      return this.fileSource(nodePath.resolve(this.dir, filePath), filePath, node, path, params, paramsPath);
    }
    if (from.startsWith('postgres:')) {
      const target = from.slice('postgres:'.length).trim();
      const parts = target.split('.').map((p) => p.trim());
      if (target === '' || parts.length > 3 || parts.some((p) => p === '')) {
        r.fail(node, path, `expected postgres:TABLE, postgres:SCHEMA.TABLE or postgres:DATABASE.SCHEMA.TABLE, got ${JSON.stringify(from)}`);
      }
      if (parts.length === 1) return { kind: 'postgres', database: null, schema: null, table: parts[0] as string };
      if (parts.length === 2) return { kind: 'postgres', database: null, schema: parts[0] as string, table: parts[1] as string };
      // As in a three-part SQL name, the first part is the database; it is where the connection goes.
      const [database, schema, table] = parts as [string, string, string];
      const pgDb = params.get('pg_db');
      const pgDbValue = pgDb === undefined ? null : r.optionalString(pgDb.value, [...paramsPath, 'pg_db'], 'a string, number or boolean');
      if (pgDb !== undefined && pgDbValue !== null && pgDbValue !== database) {
        r.warn(pgDb.value, [...paramsPath, 'pg_db'], `ignored: "${from}" names the database "${database}"`);
      }
      return { kind: 'postgres', database, schema, table };
    }
    return r.fail(node, path, `unsupported dataset source ${JSON.stringify(from)}: use file:PATH (.csv, .tsv, .parquet, .json, .jsonl) or postgres:SCHEMA.TABLE`);
  }

  /** A file dataset's format, compression and dialect from its extension and params (Spice's names). */
  private fileSource(resolved: string, filePath: string, node: Node, path: KeyPath, params: Map<string, MapEntry>, paramsPath: KeyPath): DatasetFrom {
    const r: YamlReader = this.r;
    const at = (key: string): Node | null => params.get(key)?.value ?? null;
    let ext = nodePath.extname(filePath).slice(1).toLowerCase();
    const suffixCompression = COMPRESSION_SUFFIXES[ext];
    if (suffixCompression !== undefined) ext = nodePath.extname(filePath.slice(0, -(ext.length + 1))).slice(1).toLowerCase();

    const given = r.optionalEnum(at('file_format'), [...paramsPath, 'file_format'], ['csv', 'tsv', 'parquet', 'json', 'jsonl', 'ndjson']);
    const format = given === null ? FILE_FORMATS[ext] : FILE_FORMATS[given];
    if (format === undefined) {
      r.fail(
        node,
        path,
        `cannot tell the file format of "${filePath}" from its extension: use .csv, .tsv, .parquet, .json, .jsonl or .ndjson (compressed: .gz, .bz2, .xz, .zst), or set params.file_format`,
      );
    }

    const compressionPath = [...paramsPath, 'file_compression_type'];
    const declared = r.optionalEnum(at('file_compression_type'), compressionPath, FILE_COMPRESSIONS);
    let compression: FileCompression = declared ?? suffixCompression ?? 'UNCOMPRESSED';
    if (format === 'parquet' && compression !== 'UNCOMPRESSED') {
      if (declared !== null) {
        r.warn(at('file_compression_type'), compressionPath, 'ignored for Parquet, whose pages carry their own codec (every codec is read); it applies to csv, tsv and json files');
      }
      compression = 'UNCOMPRESSED';
    }
    for (const key of ['schema_infer_max_records', `${paramPrefix(format)}_schema_infer_max_records`]) {
      r.optionalInt(at(key), [...paramsPath, key], 1, Number.MAX_SAFE_INTEGER, 'a positive integer');
    }

    const delimited = format === 'csv' || format === 'tsv' ? this.delimited(format, at, paramsPath) : null;
    let json: JsonOptions | null = null;
    if (format === 'json') {
      const jsonFormat = r.optionalEnum(at('json_format'), [...paramsPath, 'json_format'], JSON_FORMATS);
      json = {
        layout: jsonFormat === null ? null : jsonFormat === 'array' ? 'array' : 'lines',
        flatten: r.optionalBool(at('flatten_json'), [...paramsPath, 'flatten_json']) ?? false,
      };
    }
    return { kind: 'file', path: resolved, format, compression, delimited, json };
  }

  /** csv_has_header, csv_quote, csv_escape, csv_delimiter (or tsv_*): one character each, as Spice takes them. */
  private delimited(format: 'csv' | 'tsv', at: (key: string) => Node | null, paramsPath: KeyPath): DelimitedTextOptions {
    const r: YamlReader = this.r;
    const prefix = paramPrefix(format);
    const char = (suffix: string): { value: string; node: Node | null; key: string } | null => {
      const key = `${prefix}_${suffix}`;
      const node = at(key);
      const value = r.optionalString(node, [...paramsPath, key], 'one character');
      if (value === null) return null;
      if ([...value].length !== 1) {
        const tab = value === '\\t' ? ': for a tab write "\\t" in double quotes' + (format === 'csv' ? ', or use file_format: tsv' : '') : '';
        r.fail(node, [...paramsPath, key], `expected one character, got ${JSON.stringify(value)}${tab}`);
      }
      if (value === '\n' || value === '\r') r.fail(node, [...paramsPath, key], 'a line break cannot be used here');
      return { value, node, key };
    };
    const hasHeader = r.optionalBool(at(`${prefix}_has_header`), [...paramsPath, `${prefix}_has_header`]) ?? true;
    const delimiter = format === 'csv' ? char('delimiter') : null;
    const quote = char('quote');
    const escape = char('escape');
    const options: DelimitedTextOptions = {
      hasHeader,
      delimiter: format === 'tsv' ? '\t' : (delimiter?.value ?? CSV_DEFAULTS.delimiter),
      quote: quote?.value ?? CSV_DEFAULTS.quote,
      escape: escape?.value ?? null,
    };
    const clash = (a: { value: string; node: Node | null; key: string } | null, what: string, other: string): void => {
      if (a !== null && a.value === other) r.fail(a.node, [...paramsPath, a.key], `${JSON.stringify(a.value)} is also the ${what}; use another character`);
    };
    clash(quote, 'delimiter', options.delimiter);
    clash(delimiter, 'quote', options.quote);
    clash(escape, 'delimiter', options.delimiter);
    return options;
  }

  private acceleration(entry: MapEntry | undefined, path: KeyPath): AccelerationConfig {
    const r: YamlReader = this.r;
    const none: AccelerationConfig = { refreshCheckIntervalMs: null, refreshMode: 'full', refreshAppendOverlapMs: null, retentionPeriodMs: null };
    if (entry === undefined || entry.value === null) return none;
    const acc = r.map(entry.value, path);
    r.checkKeys(acc, path, ['enabled', 'refresh_check_interval', 'refresh_mode', 'refresh_append_overlap', 'retention_period']);
    const enabled = r.optionalBool(acc.get('enabled')?.value ?? null, [...path, 'enabled']);
    if (enabled === false) {
      r.warn(acc.get('enabled')?.value, [...path, 'enabled'], 'datasets are always held in memory; "enabled: false" is ignored');
    }
    const refreshCheckIntervalMs = this.duration(acc.get('refresh_check_interval')?.value ?? null, [...path, 'refresh_check_interval'], MAX_TIMER_MS);
    const refreshMode: RefreshMode = r.optionalEnum(acc.get('refresh_mode')?.value ?? null, [...path, 'refresh_mode'], ['full', 'append']) ?? 'full';
    const overlapNode = acc.get('refresh_append_overlap')?.value ?? null;
    const overlapPath = [...path, 'refresh_append_overlap'];
    const overlapMs = this.duration(overlapNode, overlapPath, Number.MAX_SAFE_INTEGER, true);
    if (overlapMs !== null && refreshMode !== 'append') {
      r.warn(overlapNode, overlapPath, 'ignored: it applies only to refresh_mode: append');
    }
    // As in Spice, the overlap defaults to the refresh interval, so rows committed late within one interval
    // are picked up without configuration.
    const refreshAppendOverlapMs = refreshMode === 'append' ? (overlapMs ?? refreshCheckIntervalMs ?? 0) : null;
    const retentionPeriodMs = this.duration(acc.get('retention_period')?.value ?? null, [...path, 'retention_period'], Number.MAX_SAFE_INTEGER);
    return { refreshCheckIntervalMs, refreshMode, refreshAppendOverlapMs, retentionPeriodMs };
  }

  private duration(node: Node | null, path: KeyPath, max: number, zeroAllowed = false): number | null {
    const r: YamlReader = this.r;
    const s = r.scalar(node, path, 'a duration');
    if (s.type === 'null') return null;
    if (s.type !== 'string') {
      r.fail(node, path, `expected a duration with a unit (ms, s, m, h or d), e.g. "30s", got ${r.describeValue(s)}`);
    }
    let ms: number;
    try {
      ms = parseDuration(s.value);
    } catch (err) {
      r.fail(node, path, errorText(err));
    }
    if (ms < 0 || (ms === 0 && !zeroAllowed)) r.fail(node, path, `expected a duration above zero, got ${JSON.stringify(s.value)}`);
    if (ms > max) r.fail(node, path, `${JSON.stringify(s.value)} is too long (at most ${max} ms)`);
    return ms;
  }

  private model(node: Node, path: KeyPath, datasetNames: ReadonlySet<string>): ParsedModel {
    const r: YamlReader = this.r;
    const entries = r.map(node, path, 'a model mapping');
    r.checkKeys(entries, path, ['from', 'name', 'description', 'datasets', 'params']);
    const name = this.entryName(entries, node, path);
    const from = r.requiredString(entries, 'from', node, path);
    const fromNode = entries.get('from')?.value ?? node;
    const composite = compositeKind(from);
    if (composite !== null) return this.compositeModel(composite, name, from, fromNode, entries, node, path, datasetNames);
    const source = this.modelSource(from, fromNode, [...path, 'from']);

    const datasetsEntry = entries.get('datasets');
    let datasets: string[] = [];
    if (datasetsEntry !== undefined && datasetsEntry.value !== null) {
      const items = r.stringItems(datasetsEntry.value, [...path, 'datasets'], 'a list of dataset names');
      items.forEach((item, i) => {
        if (!datasetNames.has(item.value)) {
          const known = datasetNames.size === 0 ? 'the pod declares no datasets' : `known datasets: ${[...datasetNames].join(', ')}`;
          r.fail(item.node, [...path, 'datasets', i], `unknown dataset "${item.value}" (${known})`);
        }
      });
      datasets = items.map((item) => item.value);
      if (datasets.length > 1) {
        r.warn(datasetsEntry.value, [...path, 'datasets'], `the model lists ${datasets.length} datasets; only the first ("${datasets[0]}") is used`);
      }
    }
    // Without datasets a model serves only series that clients send (POST /v1/timeseries/forecast).

    const params = this.modelParams(entries.get('params'), [...path, 'params']);
    return { node, path, fromNode, datasetsNode: datasetsEntry?.value ?? null, stickyNode: null, config: { name, from, source, datasets, params } };
  }

  /** The datasets an entry lists (each must be in the pod); more than one gets a warning, as for a model. */
  private entryDatasets(entries: Map<string, MapEntry>, path: KeyPath, datasetNames: ReadonlySet<string>): string[] {
    const r: YamlReader = this.r;
    const datasetsEntry = entries.get('datasets');
    if (datasetsEntry === undefined || datasetsEntry.value === null) return [];
    const items = r.stringItems(datasetsEntry.value, [...path, 'datasets'], 'a list of dataset names');
    items.forEach((item, i) => {
      if (!datasetNames.has(item.value)) {
        const known = datasetNames.size === 0 ? 'the pod declares no datasets' : `known datasets: ${[...datasetNames].join(', ')}`;
        r.fail(item.node, [...path, 'datasets', i], `unknown dataset "${item.value}" (${known})`);
      }
    });
    const datasets = items.map((item) => item.value);
    if (datasets.length > 1) {
      r.warn(datasetsEntry.value, [...path, 'datasets'], `the entry lists ${datasets.length} datasets; only the first ("${datasets[0]}") is used`);
    }
    return datasets;
  }

  /**
   * An `ensemble:` or `variants:` entry (SPEC "Ensembles and variants"): its member list and params. Whether
   * the members exist, share a dataset and form no cycle is checked once every entry is read (composites()).
   */
  private compositeModel(
    kind: 'ensemble' | 'variants',
    name: string,
    from: string,
    fromNode: Node,
    entries: Map<string, MapEntry>,
    node: Node,
    path: KeyPath,
    datasetNames: ReadonlySet<string>,
  ): ParsedModel {
    const r: YamlReader = this.r;
    const fromPath = [...path, 'from'];
    const list = from.slice(kind.length + 1);
    const items = list.split(',').map((item) => item.trim());
    const usage = kind === 'ensemble' ? 'ensemble:MODEL,MODEL,...' : 'variants:MODEL=WEIGHT,MODEL=WEIGHT,... (integer weights, 0 allowed)';
    if (items.some((item) => item === '')) r.fail(fromNode, fromPath, `"${from}" has an empty member; expected ${usage}`);
    const seen = new Set<string>();
    const members: { name: string; weight: number }[] = items.map((item) => {
      let memberName = item;
      let weight = 1;
      if (kind === 'variants') {
        const match = /^([^=\s]+)\s*=\s*(\d+)$/.exec(item);
        if (match === null) r.fail(fromNode, fromPath, `member "${item}" of "${from}" needs an integer weight: expected ${usage}`);
        memberName = match[1] as string;
        weight = Number(match[2]);
        if (!Number.isSafeInteger(weight)) r.fail(fromNode, fromPath, `the weight of member "${memberName}" is too large`);
      }
      if (!NAME_PATTERN.test(memberName)) r.fail(fromNode, fromPath, `member "${memberName}" of "${from}" is not a model name; expected ${usage}`);
      if (memberName === name) r.fail(fromNode, fromPath, `${kind} ${name} names itself as a member (a cycle)`);
      if (seen.has(memberName)) r.fail(fromNode, fromPath, `member "${memberName}" is listed twice in "${from}"`);
      seen.add(memberName);
      return { name: memberName, weight };
    });
    if (kind === 'variants' && members.every((m) => m.weight === 0)) {
      r.fail(fromNode, fromPath, `every weight in "${from}" is 0: at least one member must be drawn`);
    }
    const datasets = this.entryDatasets(entries, path, datasetNames);

    const paramsPath = [...path, 'params'];
    const paramsEntry = entries.get('params');
    const p = paramsEntry?.value ? r.map(paramsEntry.value, paramsPath) : new Map<string, MapEntry>();
    const at = (key: string): Node | null => p.get(key)?.value ?? null;
    const version = r.optionalString(at('version'), [...paramsPath, 'version'], 'a version string')?.trim() || null;
    const params: ModelParams = { ...MODEL_PARAM_DEFAULTS, version };
    if (kind === 'variants') {
      r.checkKeys(p, paramsPath, ['version', 'sticky'], ' for a variants entry');
      const sticky = this.sticky(at('sticky'), [...paramsPath, 'sticky']);
      return {
        node,
        path,
        fromNode,
        datasetsNode: entries.get('datasets')?.value ?? null,
        stickyNode: sticky.kind === 'api_key' ? at('sticky') : null,
        config: { name, from, source: { kind: 'variants', members, sticky }, datasets, params },
      };
    }
    r.checkKeys(p, paramsPath, ['version', 'combine', 'weights', 'cache_predictions', 'evaluation'], ' for an ensemble');
    const combine: CombineRule = r.optionalEnum(at('combine'), [...paramsPath, 'combine'], ['mean', 'median', 'weighted']) ?? 'mean';
    const weightsNode = at('weights');
    const weightsText = weightsNode !== null && !isSeq(weightsNode) ? r.optionalString(weightsNode, [...paramsPath, 'weights'], 'a list of weights or inverse_mae') : null;
    const inverseMae = weightsText?.trim() === 'inverse_mae';
    if (weightsText !== null && !inverseMae) {
      r.fail(weightsNode, [...paramsPath, 'weights'], `expected a list of ${members.length} weights (one per member) or inverse_mae, got ${JSON.stringify(weightsText)}`);
    }
    if (inverseMae && combine !== 'weighted') {
      r.fail(weightsNode, [...paramsPath, 'weights'], `weights: inverse_mae needs combine: weighted (combine is ${combine})`);
    }
    const weights = inverseMae
      ? new Array<number>(members.length).fill(1 / members.length)
      : this.ensembleWeights(combine, weightsNode, [...paramsPath, 'weights'], members.length, at('combine'));
    const shares: CompositeMember[] = members.map((m, i) => ({ name: m.name, weight: weights[i] as number }));
    return {
      node,
      path,
      fromNode,
      datasetsNode: entries.get('datasets')?.value ?? null,
      stickyNode: null,
      config: {
        name,
        from,
        source: { kind: 'ensemble', members: shares, combine, weightsFrom: inverseMae ? 'inverse_mae' : 'pod' },
        datasets,
        params: {
          ...params,
          cachePredictions: r.optionalBool(at('cache_predictions'), [...paramsPath, 'cache_predictions']) ?? MODEL_PARAM_DEFAULTS.cachePredictions,
          // An ensemble is evaluated like a model.
          evaluation: this.evaluationParams(p.get('evaluation'), [...paramsPath, 'evaluation']),
        },
      },
    };
  }

  /** params.sticky: none | api_key | header:NAME. */
  private sticky(node: Node | null, path: KeyPath): StickyRule {
    const r: YamlReader = this.r;
    const value = r.optionalString(node, path, 'none, api_key or header:NAME')?.trim() ?? null;
    if (value === null || value === 'none') return { kind: 'none' };
    if (value === 'api_key') return { kind: 'api_key' };
    if (value.startsWith('header:')) {
      const header = value.slice('header:'.length).trim().toLowerCase();
      // An HTTP header name is a token (RFC 9110).
      if (/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(header)) return { kind: 'header', name: header };
      r.fail(node, path, `"${value}" does not name a header: expected header:NAME, e.g. header:X-User-Id`);
    }
    return r.fail(node, path, `expected none, api_key or header:NAME, got ${JSON.stringify(value)}`);
  }

  /** Each member's share of an ensemble: equal unless combine is weighted, then params.weights normalised. */
  private ensembleWeights(combine: CombineRule, node: Node | null, path: KeyPath, count: number, combineNode: Node | null): number[] {
    const r: YamlReader = this.r;
    if (combine !== 'weighted') {
      if (node !== null) r.warn(node, path, `ignored: weights apply only to combine: weighted (combine is ${combine})`);
      return new Array<number>(count).fill(1 / count);
    }
    if (node === null) r.fail(combineNode, path, `combine: weighted needs params.weights: one number per member (${count})`);
    const items = r.seq(node, path, `a list of ${count} weights, one per member`);
    if (items.length !== count) {
      r.fail(node, path, `${items.length} weight${items.length === 1 ? '' : 's'} for ${count} members: give one per member, in the order of "from"`);
    }
    const weights = items.map((item, i) => {
      const s = r.scalar(item, [...path, i], 'a non-negative number');
      const value = s.type === 'number' ? s.value : s.type === 'string' && s.value.trim() !== '' ? Number(s.value) : Number.NaN;
      if (!Number.isFinite(value) || value < 0) r.fail(item, [...path, i], `expected a non-negative number, got ${r.describeValue(s)}`);
      return value;
    });
    const total = weights.reduce((a, b) => a + b, 0);
    if (total <= 0) r.fail(node, path, 'the weights add up to 0: at least one must be above 0');
    return weights.map((w) => w / total);
  }

  /**
   * The pod-level rules of ensembles and variants: every member is a model of the pod, a variants entry is
   * no ensemble's member, no entry reaches itself through its members, every member reads the same dataset
   * (an entry's `datasets` may be omitted and is then that one), and `sticky: api_key` needs auth.
   */
  private composites(models: readonly ParsedModel[], runtime: RuntimeConfig): ModelConfig[] {
    const r: YamlReader = this.r;
    const byName = new Map(models.map((m) => [m.config.name, m]));
    const memberPath = (m: ParsedModel): KeyPath => [...m.path, 'from'];
    for (const m of models) {
      const source = m.config.source;
      if (source.kind !== 'ensemble' && source.kind !== 'variants') continue;
      for (const member of source.members) {
        const target = byName.get(member.name);
        if (target === undefined) {
          r.fail(m.fromNode, memberPath(m), `unknown member "${member.name}" (models of the pod: ${[...byName.keys()].join(', ')})`);
        }
        if (source.kind === 'ensemble' && target.config.source.kind === 'variants') {
          r.fail(m.fromNode, memberPath(m), `member "${member.name}" is a variants entry, which cannot be an ensemble member`);
        }
        if (source.kind === 'variants' && target.config.source.kind === 'variants') {
          r.fail(m.fromNode, memberPath(m), `member "${member.name}" is a variants entry; a variants entry draws models and ensembles, so list its members here instead`);
        }
      }
      if (source.kind === 'variants' && source.sticky.kind === 'api_key' && runtime.auth === null) {
        r.fail(m.stickyNode, [...m.path, 'params', 'sticky'], 'sticky: api_key needs runtime.auth.api-key enabled (without auth requests carry no key)');
      }
    }
    // Cycles: a depth-first walk over member edges.
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (m: ParsedModel, trail: string[]): void => {
      const name = m.config.name;
      if (state.get(name) === 'done') return;
      if (state.get(name) === 'visiting') {
        const cycle = [...trail.slice(trail.indexOf(name)), name].join(' -> ');
        r.fail(m.fromNode, memberPath(m), `members form a cycle: ${cycle}`);
      }
      state.set(name, 'visiting');
      const source = m.config.source;
      if (source.kind === 'ensemble' || source.kind === 'variants') {
        for (const member of source.members) visit(byName.get(member.name) as ParsedModel, [...trail, name]);
      }
      state.set(name, 'done');
    };
    for (const m of models) visit(m, []);
    // The dataset of each entry: a model's first; a composite's is its members' common one.
    const datasetOf = new Map<string, string | null>();
    const resolve = (m: ParsedModel): string | null => {
      const known = datasetOf.get(m.config.name);
      if (known !== undefined) return known;
      const source = m.config.source;
      let dataset: string | null = m.config.datasets[0] ?? null;
      if (source.kind === 'ensemble' || source.kind === 'variants') {
        let common: { dataset: string; member: string } | null = null;
        for (const member of source.members) {
          const memberDataset = resolve(byName.get(member.name) as ParsedModel);
          if (memberDataset === null) {
            r.fail(m.fromNode, memberPath(m), `member "${member.name}" has no dataset; every member of ${m.config.name} must read the same dataset`);
          }
          if (common !== null && common.dataset !== memberDataset) {
            r.fail(
              m.fromNode,
              memberPath(m),
              `members without a common dataset: "${common.member}" reads ${common.dataset}, "${member.name}" reads ${memberDataset}`,
            );
          }
          common ??= { dataset: memberDataset, member: member.name };
        }
        if (dataset !== null && common !== null && dataset !== common.dataset) {
          r.fail(m.datasetsNode, [...m.path, 'datasets'], `${m.config.name} lists dataset ${dataset}, but its members read ${common.dataset}`);
        }
        dataset = common?.dataset ?? null;
      }
      datasetOf.set(m.config.name, dataset);
      return dataset;
    };
    return models.map((m) => {
      const source = m.config.source;
      if (source.kind !== 'ensemble' && source.kind !== 'variants') return m.config;
      const dataset = resolve(m);
      return m.config.datasets.length > 0 || dataset === null ? m.config : { ...m.config, datasets: [dataset] };
    });
  }

  private modelSource(from: string, node: Node, path: KeyPath): ModelFrom {
    let filePath: string | null = null;
    if (from.startsWith('file://')) filePath = from.slice('file://'.length);
    else if (from.startsWith('file:')) filePath = from.slice('file:'.length);
    else if (nodePath.isAbsolute(from)) filePath = from;
    if (filePath !== null) {
      if (filePath === '') this.r.fail(node, path, `"${from}" names no file`);
      if (!filePath.toLowerCase().endsWith('.onnx')) {
        return { kind: 'unsupported', reason: `"${from}" is not an ONNX model: forecastd serves .onnx files` };
      }
      return { kind: 'onnx', path: nodePath.resolve(this.dir, filePath) };
    }
    const provider = /^[A-Za-z0-9_-]+/.exec(from)?.[0] ?? from;
    return {
      kind: 'unsupported',
      reason: `model source "${from}" (${provider}) is not supported: forecastd serves ONNX forecasting models from file:PATH.onnx, file://PATH.onnx or an absolute path`,
    };
  }

  /** `auto` (chosen per model from measured runs) or a positive number of threads that pins it. */
  private intraOpThreads(node: Node | null, path: KeyPath): number | 'auto' | null {
    if (node !== null && this.r.optionalString(node, path, 'auto or a positive integer')?.trim() === 'auto') return 'auto';
    return this.r.optionalInt(node, path, 1, 1024, 'auto or a positive integer');
  }

  private modelParams(entry: MapEntry | undefined, path: KeyPath): ModelParams {
    const r: YamlReader = this.r;
    if (entry === undefined || entry.value === null) return MODEL_PARAM_DEFAULTS;
    const p = r.map(entry.value, path);
    r.checkKeys(p, path, [
      'version',
      'lookback',
      'fill_missing',
      'intra_op_threads',
      'max_batch_size',
      'max_concurrent_runs',
      'max_queue_delay_ms',
      'max_queue_size',
      'timeout_ms',
      'cache_predictions',
      'quantiles',
      'quantile_output',
      'evaluation',
    ]);
    const at = (key: string): Node | null => p.get(key)?.value ?? null;
    const int = (key: string, min: number, max: number, what: string, fallback: number): number =>
      r.optionalInt(at(key), [...path, key], min, max, what) ?? fallback;
    const d = MODEL_PARAM_DEFAULTS;
    const version = r.optionalString(at('version'), [...path, 'version'], 'a version string')?.trim() || null;
    const fillMissing: FillMissing = r.optionalEnum(at('fill_missing'), [...path, 'fill_missing'], ['none', 'previous', 'linear']) ?? d.fillMissing;
    return {
      version,
      lookback: r.optionalInt(at('lookback'), [...path, 'lookback'], 1, 100_000_000, 'a positive integer'),
      fillMissing,
      intraOpThreads: this.intraOpThreads(at('intra_op_threads'), [...path, 'intra_op_threads']) ?? d.intraOpThreads,
      maxBatchSize: int('max_batch_size', 1, 1_000_000, 'a positive integer', d.maxBatchSize),
      maxConcurrentRuns: int('max_concurrent_runs', 0, 1024, 'a non-negative integer (0 = one per CPU available to the process)', d.maxConcurrentRuns),
      maxQueueDelayMs: int('max_queue_delay_ms', 0, MAX_TIMER_MS, 'a non-negative integer of milliseconds', d.maxQueueDelayMs),
      maxQueueSize: int('max_queue_size', 1, 100_000_000, 'a positive integer', d.maxQueueSize),
      timeoutMs: int('timeout_ms', 1, MAX_TIMER_MS, 'a positive integer of milliseconds', d.timeoutMs),
      cachePredictions: r.optionalBool(at('cache_predictions'), [...path, 'cache_predictions']) ?? d.cachePredictions,
      ...this.quantileParams(p, path),
      evaluation: this.evaluationParams(p.get('evaluation'), [...path, 'evaluation']),
    };
  }

  /** params.evaluation: origins, since, season_length (SPEC "Evaluation"). */
  private evaluationParams(entry: MapEntry | undefined, path: KeyPath): EvaluationParams {
    const r: YamlReader = this.r;
    const d = MODEL_PARAM_DEFAULTS.evaluation;
    if (entry === undefined || entry.value === null) return d;
    const p = r.map(entry.value, path);
    r.checkKeys(p, path, ['origins', 'since', 'season_length']);
    const at = (key: string): Node | null => p.get(key)?.value ?? null;
    const origins = r.optionalInt(at('origins'), [...path, 'origins'], 0, 10_000_000, 'a non-negative integer (0 turns evaluation off)') ?? d.origins;
    const seasonLength = r.optionalInt(at('season_length'), [...path, 'season_length'], 1, 1_000_000, 'a positive integer') ?? d.seasonLength;
    let since: number | null = d.since;
    const sinceNode = at('since');
    const sinceText = r.optionalString(sinceNode, [...path, 'since'], 'an ISO 8601 date or time, e.g. 1993-04-03');
    if (sinceText !== null) {
      const parsed = parseTimestamp(sinceText);
      if (parsed === null) {
        r.fail(sinceNode, [...path, 'since'], `expected an ISO 8601 date or time, e.g. 1993-04-03, got "${sinceText}"`);
      }
      since = parsed.ms;
    }
    return { origins, since, seasonLength };
  }

  /** params.quantiles (levels strictly increasing in (0, 1)) and params.quantile_output: both or neither. */
  private quantileParams(p: Map<string, MapEntry>, path: KeyPath): { quantiles: readonly number[] | null; quantileOutput: string | null } {
    const r: YamlReader = this.r;
    const levelsEntry = p.get('quantiles');
    const outputEntry = p.get('quantile_output');
    const outputPath = [...path, 'quantile_output'];
    const output = r.optionalString(outputEntry?.value ?? null, outputPath, 'the name of a model output')?.trim() || null;
    let levels: number[] | null = null;
    if (levelsEntry !== undefined && levelsEntry.value !== null) {
      const levelsPath = [...path, 'quantiles'];
      const items = r.seq(levelsEntry.value, levelsPath, 'a list of quantile levels, e.g. [0.1, 0.5, 0.9]');
      levels = items.map((item, i) => {
        const s = r.scalar(item, [...levelsPath, i], 'a number between 0 and 1');
        const value = s.type === 'number' ? s.value : s.type === 'string' && s.value.trim() !== '' ? Number(s.value) : Number.NaN;
        if (!Number.isFinite(value) || value <= 0 || value >= 1) {
          r.fail(item, [...levelsPath, i], `expected a quantile level between 0 and 1 (exclusive), got ${r.describeValue(s)}`);
        }
        return value;
      });
      if (levels.length === 0) r.fail(levelsEntry.value, levelsPath, 'expected at least one quantile level');
      for (let i = 1; i < levels.length; i++) {
        if (!((levels[i] as number) > (levels[i - 1] as number))) {
          r.fail(items[i] ?? levelsEntry.value, [...levelsPath, i], `quantile levels must be strictly increasing: ${levels[i]} follows ${levels[i - 1]}`);
        }
      }
    }
    if (levels !== null && output === null) {
      r.fail(levelsEntry?.value ?? null, [...path, 'quantiles'], 'params.quantiles needs params.quantile_output: the name of the output holding them');
    }
    if (levels === null && output !== null) {
      r.fail(outputEntry?.value ?? null, outputPath, 'params.quantile_output needs params.quantiles: the levels of that output, e.g. [0.1, 0.5, 0.9]');
    }
    return { quantiles: levels, quantileOutput: output };
  }
}

/** A model entry as read, with the nodes its pod-level checks point at. */
interface ParsedModel {
  readonly config: ModelConfig;
  readonly node: Node;
  readonly path: KeyPath;
  readonly fromNode: Node;
  readonly datasetsNode: Node | null;
  /** params.sticky of a variants entry that says api_key (its auth check points here). */
  readonly stickyNode: Node | null;
}

/** `ensemble:` or `variants:` at the start of a model's `from`; null for any other source. */
function compositeKind(from: string): 'ensemble' | 'variants' | null {
  if (from.startsWith('ensemble:')) return 'ensemble';
  if (from.startsWith('variants:')) return 'variants';
  return null;
}

/** The path as shown in messages: relative to the working folder when inside it. */
function displayName(file: string): string {
  const rel = nodePath.relative(process.cwd(), file);
  return rel !== '' && !rel.startsWith('..') && !nodePath.isAbsolute(rel) ? rel : file;
}

function errorText(err: unknown): string {
  if (err instanceof ForecastdError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
