import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import { isSealedValue, type SealedValue } from './sealed-value';

/**
 * A declared field: property names separated by dots (`customer.email`), `*` for every property
 * or element at that level (`items.*.note`), or `$` for the whole value. A leading `$.` is allowed.
 */
export type FieldPath = readonly string[];

/** Parses a declared field (see FieldPath); throws InvalidOptionsError naming `option`. */
export function parseFieldPath(text: unknown, option: string): FieldPath {
  if (typeof text !== 'string' || text.trim() === '')
    throw new InvalidOptionsError(
      option,
      'must be a non-empty field path like "customer.email" or "$"',
    );
  if (text === '$') return [];
  const body = text.startsWith('$.') ? text.slice(2) : text;
  const segments = body.split('.');
  if (segments.some((s) => s === ''))
    throw new InvalidOptionsError(
      option,
      `"${text}" has an empty segment; write property names separated by single dots ("customer.email"), "*" for any, or "$" for the whole value`,
    );
  return segments;
}

/** RFC 6901 JSON pointer of a path of property names / indexes. */
export function jsonPointer(path: readonly (string | number)[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

type Container = { [key: string]: JsonValue } | JsonValue[];

interface Match {
  parent: Container | undefined;
  key: string | number | undefined;
  node: JsonValue;
  path: (string | number)[];
}

/**
 * Replaces every value `paths` select in a copy of `value` with `seal(value, pointer)`; the input
 * is not modified. Absent fields are skipped; values already sealed are neither sealed again nor
 * looked into. Shorter paths are applied first, so a field inside an already sealed object is not
 * sealed twice.
 */
export function sealAtPaths(
  value: JsonValue,
  paths: readonly FieldPath[],
  seal: (value: JsonValue, pointer: string) => SealedValue,
): { value: JsonValue; sealed: number } {
  let root = structuredClone(value);
  let sealed = 0;
  const ordered = [...paths].sort((a, b) => a.length - b.length);
  for (const path of ordered) {
    let matches: Match[] = [{ parent: undefined, key: undefined, node: root, path: [] }];
    for (const segment of path) {
      const next: Match[] = [];
      for (const m of matches) {
        const node = m.node;
        if (typeof node !== 'object' || node === null || isSealedValue(node)) continue;
        if (Array.isArray(node)) {
          if (segment === '*') node.forEach((child, i) => next.push(childMatch(node, i, child, m)));
          else if (/^\d+$/.test(segment) && Number(segment) < node.length)
            next.push(childMatch(node, Number(segment), node[Number(segment)]!, m));
        } else if (segment === '*') {
          for (const [k, child] of Object.entries(node)) next.push(childMatch(node, k, child, m));
        } else if (Object.prototype.hasOwnProperty.call(node, segment)) {
          next.push(childMatch(node, segment, node[segment]!, m));
        }
      }
      matches = next;
    }
    for (const m of matches) {
      if (isSealedValue(m.node)) continue;
      const envelope = seal(m.node, jsonPointer(m.path)) as unknown as JsonValue;
      sealed++;
      if (m.parent === undefined) root = envelope;
      else if (Array.isArray(m.parent)) m.parent[m.key as number] = envelope;
      else m.parent[m.key as string] = envelope;
    }
  }
  return { value: root, sealed };
}

function childMatch(parent: Container, key: string | number, node: JsonValue, m: Match): Match {
  return { parent, key, node, path: [...m.path, key] };
}

/** A sealed value found in a document, with where it is. */
export interface FoundSealed {
  sealed: SealedValue;
  path: (string | number)[];
  pointer: string;
}

/**
 * Every envelope in `value`, depth-first in document order, without looking inside envelopes.
 * Iterative: the value may come from a broker, and its depth must not decide the call stack.
 */
export function findSealed(value: JsonValue): FoundSealed[] {
  const found: FoundSealed[] = [];
  // Each entry links to its parent rather than copying its path: linear in the size of the value,
  // however deep (a path is built only for an envelope found).
  interface Entry {
    node: JsonValue;
    parent: Entry | undefined;
    key: string | number | undefined;
  }
  const pathOf = (entry: Entry): (string | number)[] => {
    const path: (string | number)[] = [];
    for (let e: Entry | undefined = entry; e?.parent; e = e.parent) path.push(e.key!);
    return path.reverse();
  };
  const stack: Entry[] = [{ node: value, parent: undefined, key: undefined }];
  while (stack.length) {
    const entry = stack.pop()!;
    const { node } = entry;
    if (typeof node !== 'object' || node === null) continue;
    if (isSealedValue(node)) {
      const path = pathOf(entry);
      found.push({ sealed: node, path, pointer: jsonPointer(path) });
      continue;
    }
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--)
        stack.push({ node: node[i]!, parent: entry, key: i });
    } else {
      const entries = Object.entries(node);
      for (let i = entries.length - 1; i >= 0; i--)
        stack.push({ node: entries[i]![1], parent: entry, key: entries[i]![0] });
    }
  }
  return found;
}

/** A copy of `value` with the value at each found path replaced (`found` from findSealed). */
export function replaceAt(
  value: JsonValue,
  replacements: readonly { path: readonly (string | number)[]; value: JsonValue }[],
): JsonValue {
  if (!replacements.length) return value;
  let root = structuredClone(value);
  for (const r of replacements) {
    if (r.path.length === 0) {
      root = r.value;
      continue;
    }
    let node = root as Container;
    for (const step of r.path.slice(0, -1))
      node = (node as Record<string, JsonValue>)[step] as Container;
    (node as Record<string, JsonValue>)[r.path[r.path.length - 1]!] = r.value;
  }
  return root;
}

/** The value at `path` (no wildcards) of `value`, or undefined when absent. */
export function valueAt(value: JsonValue, path: FieldPath): JsonValue | undefined {
  let node: JsonValue | undefined = value;
  for (const segment of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    if (Array.isArray(node)) node = /^\d+$/.test(segment) ? node[Number(segment)] : undefined;
    else node = Object.prototype.hasOwnProperty.call(node, segment) ? node[segment] : undefined;
  }
  return node;
}
