/**
 * How a `file:` dataset's bytes are laid out: the format, the file-level compression and the dialect of
 * delimited text and JSON. Names and defaults follow Spice's file format parameters (csv_*, tsv_*,
 * json_format, file_compression_type); the spicepod maps its params into these types.
 */

export type FileFormat = 'csv' | 'tsv' | 'parquet' | 'json' | 'jsonl';

/** Whole-file compression of CSV, TSV and JSON files (Parquet compresses its pages itself). */
export type FileCompression = 'UNCOMPRESSED' | 'GZIP' | 'BZIP2' | 'XZ' | 'ZSTD';

export const FILE_COMPRESSIONS: readonly FileCompression[] = ['UNCOMPRESSED', 'GZIP', 'BZIP2', 'XZ', 'ZSTD'];

/** CSV and TSV: each field one character, as Spice takes them. */
export interface DelimitedTextOptions {
  /** Default true; false names the columns column_1, column_2, ... (as DataFusion does). */
  readonly hasHeader: boolean;
  /** Default "," for CSV; always a tab for TSV. */
  readonly delimiter: string;
  /** Default '"'. */
  readonly quote: string;
  /** Default none: a quote inside a quoted field is written twice. */
  readonly escape: string | null;
}

/** `json_format`: line-delimited objects, or one top-level array of objects. */
export type JsonLayout = 'lines' | 'array';

export interface JsonOptions {
  /** null: told apart by the first character of the file ("[" is an array). */
  readonly layout: JsonLayout | null;
  /** `flatten_json`: nested objects become columns named with "." (address.city). */
  readonly flatten: boolean;
}

export const CSV_DEFAULTS: DelimitedTextOptions = { hasHeader: true, delimiter: ',', quote: '"', escape: null };
export const TSV_DEFAULTS: DelimitedTextOptions = { ...CSV_DEFAULTS, delimiter: '\t' };
export const JSON_DEFAULTS: JsonOptions = { layout: null, flatten: false };

/** The prefix of the parameters of a delimited format, for messages that name them (csv_delimiter). */
export function paramPrefix(format: FileFormat): string {
  return format === 'tsv' ? 'tsv' : 'csv';
}

/** What a file's first bytes say it is, when they say anything: a compressed stream or a Parquet file. */
export type FileSignature = Exclude<FileCompression, 'UNCOMPRESSED'> | 'PARQUET';

const SIGNATURES: readonly { readonly kind: FileSignature; readonly bytes: readonly number[] }[] = [
  { kind: 'GZIP', bytes: [0x1f, 0x8b] },
  { kind: 'XZ', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { kind: 'ZSTD', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { kind: 'PARQUET', bytes: [0x50, 0x41, 0x52, 0x31] }, // "PAR1"
];

/** Bytes a file needs to be told apart by signature(). */
export const SIGNATURE_LENGTH = 10;

/** The kind of file its first bytes announce (the formats' magic numbers), or null for anything else. */
export function signature(head: Uint8Array): FileSignature | null {
  for (const { kind, bytes } of SIGNATURES) {
    if (head.length >= bytes.length && bytes.every((b, i) => head[i] === b)) return kind;
  }
  // "BZh", a block size 1-9, then the magic of the first block (pi) or of the end of an empty stream (sqrt pi).
  const bzip2 = head.length >= 10 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68 && head[3]! >= 0x31 && head[3]! <= 0x39;
  if (bzip2) {
    const block = Buffer.from(head.subarray(4, 10)).toString('hex');
    if (block === '314159265359' || block === '177245385090') return 'BZIP2';
  }
  return null;
}
