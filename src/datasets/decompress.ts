import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Duplex, PassThrough, Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream, WritableStream as WebWritableStream } from 'node:stream/web';
import * as zlib from 'node:zlib';
import { Decompress as ZstdStreamDecompressor } from 'fzstd';
import unbzip2Stream from 'unbzip2-stream';
import xzDecompress from 'xz-decompress';
import { ForecastdError } from '../errors.js';
import { SIGNATURE_LENGTH, signature, type FileCompression, type FileFormat } from './file-format.js';

/**
 * Opens a CSV, TSV or JSON file as a stream of its decompressed bytes (file_compression_type), after
 * checking its first bytes: a compressed file read as text, or text declared compressed, fails at once with
 * the parameter to set instead of as garbled cells. Every codec streams, so memory stays bounded by the
 * parser's needs, and all of them come from maintained libraries: gzip from Node's zlib, zstd from fzstd,
 * bzip2 from unbzip2-stream, xz from xz-decompress (wasm).
 */

const FORMAT_NAMES: Readonly<Record<FileFormat, string>> = {
  csv: 'CSV',
  tsv: 'TSV',
  json: 'JSON',
  jsonl: 'JSON lines',
  parquet: 'Parquet',
};

/** The first bytes of a file (fewer when it is shorter). */
export async function readHead(file: string, length = SIGNATURE_LENGTH): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const buffer = new Uint8Array(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Fails when the file's signature contradicts how it is about to be read. `origin` names it in messages. */
export function checkTextSignature(head: Uint8Array, origin: string, format: FileFormat, compression: FileCompression): void {
  const found = signature(head);
  const what = FORMAT_NAMES[format];
  if (compression === 'UNCOMPRESSED') {
    if (found === 'PARQUET') {
      throw new ForecastdError('ERR_DATASET', `${origin}: this is a Parquet file, not ${what}: set file_format: parquet`);
    }
    if (found !== null) {
      throw new ForecastdError('ERR_DATASET', `${origin}: the file is ${found}-compressed: set file_compression_type: ${found}`);
    }
    return;
  }
  if (found === compression) return;
  let advice: string;
  if (found === null) advice = `if it is plain ${what}, leave out file_compression_type (or set it to UNCOMPRESSED)`;
  else if (found === 'PARQUET') advice = 'it is a Parquet file: set file_format: parquet and leave out file_compression_type';
  else advice = `it is ${found}-compressed: set file_compression_type: ${found}`;
  throw new ForecastdError('ERR_DATASET', `${origin}: the file is not ${compression}-compressed (file_compression_type: ${compression}); ${advice}`);
}

/**
 * The file's bytes, decompressed. Errors of the file or the codec are emitted by the returned stream as
 * ERR_DATASET naming the file and file_compression_type.
 */
export async function openDecompressed(
  file: string,
  origin: string,
  format: FileFormat,
  compression: FileCompression,
  signal: AbortSignal,
  /** The last byte offset read (inclusive); default the whole file. */
  end?: number,
): Promise<Readable> {
  // The signature is read from the stream itself (and put back): the file is opened once, so a named pipe
  // or a file replaced meanwhile is read whole and consistently.
  const { bytes, stream: input } = await peek(createReadStream(file, end === undefined ? { signal } : { signal, end }), (head) => head.length >= SIGNATURE_LENGTH);
  checkTextSignature(bytes, origin, format, compression);
  if (compression === 'UNCOMPRESSED') return input;
  // input -> codec -> output: the reader sees errors of the file as they are and the codec's as ERR_DATASET.
  const codec = decompressor(compression);
  const output = new PassThrough();
  input.on('error', (err) => output.destroy(err));
  codec.on('error', (err) => {
    input.destroy();
    output.destroy(new ForecastdError('ERR_DATASET', `${origin}: the ${compression} data is corrupt or truncated (file_compression_type: ${compression}): ${err.message}`, { cause: err }));
  });
  output.on('close', () => {
    input.destroy();
    codec.destroy();
  });
  input.pipe(codec).pipe(output);
  return output;
}

function decompressor(compression: Exclude<FileCompression, 'UNCOMPRESSED'>): Duplex {
  switch (compression) {
    case 'GZIP':
      return zlib.createGunzip();
    case 'ZSTD':
      return zstdDecompressor();
    case 'BZIP2':
      return unbzip2Stream() as unknown as Duplex;
    case 'XZ': {
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
      const xz = new xzDecompress.XzReadableStream(readable);
      return Duplex.fromWeb({ readable: xz as unknown as WebReadableStream, writable: writable as unknown as WebWritableStream });
    }
  }
}

/**
 * zstd through fzstd's streaming decoder on every Node version. Node 22's own zlib zstd decoder is not used:
 * on a truncated stream it ends without an error (and without output), where a reader must fail.
 */
function zstdDecompressor(): Duplex {
  let decoder: ZstdStreamDecompressor | null = null;
  const transform: Transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        decoder?.push(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback) {
      try {
        decoder?.push(new Uint8Array(0), true);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  decoder = new ZstdStreamDecompressor((data) => {
    transform.push(Buffer.from(data));
  });
  return transform;
}

/**
 * Reads from the start of `stream` until `enough(bytes so far)` or its end, and gives the bytes back with a
 * stream that still yields everything from the first byte (the same stream when it had not ended).
 */
export async function peek(stream: Readable, enough: (head: Buffer) => boolean): Promise<{ bytes: Buffer; stream: Readable }> {
  const seen: Buffer[] = [];
  let bytes = Buffer.alloc(0);
  try {
    for (;;) {
      const chunk = stream.read() as Buffer | string | null;
      if (chunk !== null) {
        seen.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        bytes = Buffer.concat(seen);
        if (enough(bytes)) break;
        continue;
      }
      if (stream.readableEnded) break;
      await new Promise<void>((resolve, reject) => {
        const settle = (err?: Error): void => {
          stream.off('readable', onReadable);
          stream.off('end', onReadable);
          stream.off('error', settle);
          if (err === undefined) resolve();
          else reject(err);
        };
        const onReadable = (): void => settle();
        stream.once('readable', onReadable);
        stream.once('end', onReadable);
        stream.once('error', settle);
      });
    }
  } catch (err) {
    stream.destroy();
    throw err;
  }
  if (stream.readableEnded) return { bytes, stream: Readable.from(bytes.length > 0 ? [bytes] : []) };
  if (bytes.length > 0) stream.unshift(bytes);
  return { bytes, stream };
}
