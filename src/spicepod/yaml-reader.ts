import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Scalar } from 'yaml';
import { ForecastdError } from '../errors.js';

/**
 * Typed, position-aware access to a parsed spicepod.yaml. Every failure is fatal and names
 * file:line:column and the key path; every value read goes through ${env:NAME} substitution.
 */
export type KeyPath = readonly (string | number)[];

export function formatPath(path: KeyPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out === '' ? '(top level)' : out;
}

/** A YAML scalar's value after env substitution; `source` keeps plain scalars as written ("1.0", not 1). */
export type ScalarValue =
  | { readonly type: 'string'; readonly value: string; readonly source: string }
  | { readonly type: 'number'; readonly value: number; readonly source: string }
  | { readonly type: 'boolean'; readonly value: boolean; readonly source: string }
  | { readonly type: 'null'; readonly source: string };

export interface MapEntry {
  readonly key: string;
  readonly keyNode: Node;
  /** null for `key:` with nothing after it. */
  readonly value: Node | null;
}

// ${env:NAME}; ${secrets:NAME} too, which Spice resolves from the environment by default.
const ENV_REF = /\$\{\s*(?:env|secrets):\s*([^}\s]*)\s*\}/g;

export class YamlReader {
  readonly warnings: string[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    /** The file as shown in messages. */
    readonly file: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** "file:line:col" of a node (or of the file when there is none). */
  where(node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    if (offset === undefined) return this.file;
    const { line, col } = this.lineCounter.linePos(offset);
    return `${this.file}:${line}:${col}`;
  }

  fail(node: Node | null | undefined, path: KeyPath, message: string): never {
    throw new ForecastdError('ERR_SPICEPOD', `${this.where(node)}: ${formatPath(path)}: ${message}`);
  }

  warn(node: Node | null | undefined, path: KeyPath, message: string): void {
    this.warnings.push(`${this.where(node)}: ${formatPath(path)}: ${message}`);
  }

  resolve(node: unknown): Node | null {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return node.resolve(this.doc) ?? null;
    return node as Node;
  }

  /** The entries of a mapping; a missing or null node (`key:`) is an empty mapping when `optional`. */
  map(node: Node | null, path: KeyPath, what = 'a mapping'): Map<string, MapEntry> {
    if (!isMap(node)) this.fail(node, path, `expected ${what}, got ${this.describe(node)}`);
    const entries = new Map<string, MapEntry>();
    for (const pair of node.items) {
      const keyNode = this.resolve(pair.key);
      if (!isScalar(keyNode) || (typeof keyNode.value !== 'string' && typeof keyNode.value !== 'number')) {
        this.fail(keyNode ?? node, path, 'keys must be plain names');
      }
      const key = String(keyNode.value);
      entries.set(key, { key, keyNode, value: this.resolve(pair.value) });
    }
    return entries;
  }

  /** Warns about every key not in `known`. */
  checkKeys(entries: Map<string, MapEntry>, path: KeyPath, known: readonly string[], note = ''): void {
    for (const entry of entries.values()) {
      if (!known.includes(entry.key)) {
        this.warn(entry.keyNode, [...path, entry.key], `unknown key "${entry.key}" is ignored${note}`);
      }
    }
  }

  seq(node: Node | null, path: KeyPath, what = 'a list'): Node[] {
    if (!isSeq(node)) this.fail(node, path, `expected ${what}, got ${this.describe(node)}`);
    return node.items.map((item) => this.resolve(item) ?? this.fail(node, path, 'list items must not be empty'));
  }

  scalar(node: Node | null, path: KeyPath, what: string): ScalarValue {
    if (node === null) return { type: 'null', source: '' };
    if (!isScalar(node)) this.fail(node, path, `expected ${what}, got ${this.describe(node)}`);
    const value: unknown = node.value;
    const source = this.sourceOf(node);
    if (value === null || value === undefined) return { type: 'null', source };
    if (typeof value === 'string') {
      const substituted = this.substitute(value, node, path);
      return { type: 'string', value: substituted, source: substituted };
    }
    if (typeof value === 'number') return { type: 'number', value, source };
    if (typeof value === 'bigint') return { type: 'number', value: Number(value), source };
    if (typeof value === 'boolean') return { type: 'boolean', value, source };
    this.fail(node, path, `expected ${what}, got ${this.describe(node)}`);
  }

  /** A string (numbers and booleans as written, e.g. `version: 1.0` gives "1.0"); null when absent. */
  optionalString(node: Node | null, path: KeyPath, what = 'a string'): string | null {
    const s = this.scalar(node, path, what);
    return s.type === 'null' ? null : s.source;
  }

  requiredString(entries: Map<string, MapEntry>, key: string, parent: Node, path: KeyPath, what = 'a string'): string {
    const entry = entries.get(key);
    if (entry === undefined) this.fail(parent, path, `missing required key "${key}"`);
    const s = this.scalar(entry.value, [...path, key], what);
    if (s.type !== 'string' || s.value.trim() === '') {
      this.fail(entry.value ?? entry.keyNode, [...path, key], `expected ${what}, got ${this.describeValue(s)}`);
    }
    return s.value.trim();
  }

  /** An integer in [min, max]; integer strings ("64", e.g. from ${env:...}) are accepted. null when absent. */
  optionalInt(node: Node | null, path: KeyPath, min: number, max: number, what: string): number | null {
    const s = this.scalar(node, path, what);
    if (s.type === 'null') return null;
    let n = Number.NaN;
    if (s.type === 'number') n = s.value;
    else if (s.type === 'string' && /^\s*[+-]?\d+\s*$/.test(s.value)) n = Number(s.value);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.fail(node, path, `expected ${what}, got ${this.describeValue(s)}`);
    }
    return n;
  }

  /** true/false; the strings "true"/"false" are accepted. null when absent. */
  optionalBool(node: Node | null, path: KeyPath): boolean | null {
    const s = this.scalar(node, path, 'true or false');
    if (s.type === 'null') return null;
    if (s.type === 'boolean') return s.value;
    if (s.type === 'string') {
      const lower = s.value.trim().toLowerCase();
      if (lower === 'true') return true;
      if (lower === 'false') return false;
    }
    this.fail(node, path, `expected true or false, got ${this.describeValue(s)}`);
  }

  /** One of `allowed` (case-insensitive); null when absent. */
  optionalEnum<T extends string>(node: Node | null, path: KeyPath, allowed: readonly T[]): T | null {
    const s = this.scalar(node, path, `one of ${allowed.join(', ')}`);
    if (s.type === 'null') return null;
    const text = s.source.trim().toLowerCase();
    const match = allowed.find((a) => a.toLowerCase() === text);
    if (match === undefined) this.fail(node, path, `expected one of ${allowed.join(', ')}, got ${this.describeValue(s)}`);
    return match;
  }

  /** A list of non-empty strings; a single comma-separated string is accepted too. */
  stringList(node: Node | null, path: KeyPath, what: string): string[] {
    return this.stringItems(node, path, what).map((item) => item.value);
  }

  /** As stringList, with the node of each item (the whole scalar for a comma-separated string). */
  stringItems(node: Node | null, path: KeyPath, what: string): { value: string; node: Node }[] {
    if (isScalar(node)) {
      const s = this.scalar(node, path, what);
      if (s.type === 'string') {
        return s.value
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
          .map((value) => ({ value, node }));
      }
    }
    return this.seq(node, path, what).map((item, i) => {
      const s = this.scalar(item, [...path, i], 'a string');
      if (s.type === 'null' || s.source.trim() === '') this.fail(item, [...path, i], 'expected a non-empty string');
      return { value: s.source.trim(), node: item };
    });
  }

  describe(node: Node | null): string {
    if (node === null) return 'nothing';
    if (isMap(node)) return 'a mapping';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) {
      const v: unknown = node.value;
      if (v === null) return 'null';
      if (typeof v === 'string') return JSON.stringify(v);
      return this.sourceOf(node) || String(v);
    }
    return 'an unsupported YAML node';
  }

  describeValue(s: ScalarValue): string {
    if (s.type === 'null') return 'nothing';
    if (s.type === 'string') return JSON.stringify(s.value);
    return s.source;
  }

  private sourceOf(node: Scalar): string {
    return typeof node.source === 'string' ? node.source : String(node.value);
  }

  private substitute(value: string, node: Node, path: KeyPath): string {
    if (!value.includes('${')) return value;
    return value.replace(ENV_REF, (ref: string, name: string) => {
      if (name === '') this.fail(node, path, `"${ref}" names no environment variable`);
      const found = this.env[name];
      if (found === undefined) {
        this.fail(node, path, `environment variable ${name} is not set (referenced as ${ref})`);
      }
      return found;
    });
  }
}
