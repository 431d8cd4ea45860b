// A small JSON Schema checker for the subset protocol.schema.json uses ($ref, oneOf, anyOf,
// const, enum, type, properties, required, additionalProperties, items): enough to check
// every frame the tests see against the schema the Rust code exported.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const schema = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'protocol.schema.json'), 'utf8'));

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);

/** The problems of `value` against `s` (empty when it conforms). */
export function problems(value, s, path = '$') {
  if (s === true || s === undefined) return [];
  if (s === false) return [`${path}: nothing allowed`];
  const out = [];
  if (s.$ref) out.push(...problems(value, schema.$defs[s.$ref.replace('#/$defs/', '')], path));
  if (s.const !== undefined && value !== s.const) out.push(`${path}: ${JSON.stringify(value)} is not ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) out.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (s.type) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) out.push(`${path}: ${t} where ${types.join('|')} expected`);
  }
  for (const key of ['oneOf', 'anyOf']) {
    if (!s[key]) continue;
    const fits = s[key].filter((alt) => problems(value, alt, path).length === 0).length;
    if (key === 'oneOf' ? fits !== 1 : fits === 0) out.push(`${path}: matches ${fits} of the ${key} alternatives`);
  }
  if (typeOf(value) === 'object') {
    for (const r of s.required ?? []) if (!(r in value)) out.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(value)) {
      if (s.properties?.[k]) out.push(...problems(v, s.properties[k], `${path}.${k}`));
      else if (s.additionalProperties === false) out.push(`${path}: unknown field ${k}`);
    }
  }
  if (typeOf(value) === 'array' && s.items) value.forEach((v, i) => out.push(...problems(v, s.items, `${path}[${i}]`)));
  return out;
}

/** Problems of a server frame. Frames are open (new fields may appear), so this checks the
 *  fields the schema names and that the frame is one of the known types. */
export const serverFrameProblems = (frame) => problems(frame, { $ref: '#/$defs/ServerFrame' });
/** Problems of a client frame (closed: unknown fields are refused, as the server does). */
export const clientFrameProblems = (frame) => problems(frame, { $ref: '#/$defs/ClientFrame' });
