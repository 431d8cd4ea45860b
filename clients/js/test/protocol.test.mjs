// The library's frame types against the Rust protocol: the JSON Schema exported by
// parley-domain (protocol.schema.json, kept current by crates/parley-domain/tests/
// protocol_schema.rs) is what src/protocol.d.ts and src/protocol.js are generated from, so:
// - the committed generated files must be what the schema gives (else a drift: regenerate);
// - the declarations must compile, and reject frames the protocol does not have;
// - every example frame in docs/protocol.md, both directions, must fit the schema;
// - every frame the library builds must fit the schema.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, stale } from '../scripts/gen-protocol.mjs';
import { clientFrameProblems, schema, serverFrameProblems } from './schema-check.mjs';
import { CLIENT_FRAME_FIELDS, CLIENT_FRAME_TYPES, ERROR_CODES, SERVER_FRAME_TYPES, checkClientFrame, FrameError } from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(root, '..', '..');

test('the generated declarations and constants are current with protocol.schema.json', () => {
  assert.deepEqual(stale(), [], 'run: node clients/js/scripts/gen-protocol.mjs (after regenerating the schema)');
});

test('the run-time constants list every frame type and error code of the schema', () => {
  const defs = schema.$defs;
  assert.deepEqual([...CLIENT_FRAME_TYPES], defs.ClientFrame.oneOf.map((v) => v.properties.type.const));
  assert.deepEqual([...SERVER_FRAME_TYPES], defs.ServerFrame.oneOf.map((v) => v.properties.type.const));
  assert.deepEqual([...ERROR_CODES], defs.ErrorCode.oneOf.map((v) => v.const));
  for (const v of defs.ClientFrame.oneOf) {
    const fields = Object.keys(v.properties).filter((k) => k !== 'type' && k !== 'ref').sort();
    const spec = CLIENT_FRAME_FIELDS[v.properties.type.const];
    assert.deepEqual([...spec.required, ...spec.optional].sort(), fields, v.properties.type.const);
  }
});

test('a schema change that is not regenerated is caught', () => {
  // What happens when the Rust side adds a field and the generated files are not redone.
  const changed = structuredClone(schema);
  const send = changed.$defs.ClientFrame.oneOf.find((v) => v.properties.type.const === 'send');
  send.properties.priority = { type: 'integer' };
  const committed = readFileSync(join(root, 'src', 'protocol.d.ts'), 'utf8');
  assert.notEqual(generate(changed)['src/protocol.d.ts'], committed);
  assert.match(generate(changed)['src/protocol.js'], /"priority"/);
});

test('the declarations compile and refuse frames the protocol does not have (tsc)', () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});

/** The example frames of docs/protocol.md's Parley sections: [direction, frame]. */
function documentedFrames() {
  const doc = readFileSync(join(repo, 'docs', 'protocol.md'), 'utf8');
  const parley = doc.slice(0, doc.indexOf("## The Django tutorial's dialect"));
  const clientPart = parley.slice(parley.indexOf('## Client → server frames'), parley.indexOf('## Server → client frames'));
  const serverPart = parley.slice(parley.indexOf('## Server → client frames'));
  const blocks = (text) => [...text.matchAll(/```json\n([\s\S]*?)```/g)].flatMap((m) => m[1].trim().split('\n').map((l) => JSON.parse(l)));
  return [...blocks(clientPart).map((f) => ['client', f]), ...blocks(serverPart).map((f) => ['server', f])];
}

test('every example frame in docs/protocol.md fits the schema, both directions', () => {
  const frames = documentedFrames();
  const seen = { client: new Set(), server: new Set() };
  for (const [direction, frame] of frames) {
    const found = direction === 'client' ? clientFrameProblems(frame) : serverFrameProblems(frame);
    assert.deepEqual(found, [], `${direction} frame ${JSON.stringify(frame)}`);
    seen[direction].add(frame.type);
  }
  // The documentation shows an example of every frame type.
  assert.deepEqual([...seen.client].sort(), [...CLIENT_FRAME_TYPES].sort());
  assert.deepEqual([...seen.server].sort(), [...SERVER_FRAME_TYPES].sort());
});

test('the schema checker refuses frames the server would refuse', () => {
  assert.notDeepEqual(clientFrameProblems({ type: 'send', room: 'lobby', bdy: 'x' }), []);
  assert.notDeepEqual(clientFrameProblems({ type: 'shout' }), []);
  assert.notDeepEqual(serverFrameProblems({ type: 'message', id: 'x' }), []);
});

test('checkClientFrame refuses unknown types and fields and missing fields with typed errors', () => {
  const code = (frame) => {
    try {
      checkClientFrame(frame);
      return null;
    } catch (e) {
      assert.ok(e instanceof FrameError);
      return e.code;
    }
  };
  assert.equal(code({ type: 'send', room: 'lobby', body: 'hi', client_id: 'c1' }), null);
  assert.equal(code({ type: 'send', room: 'lobby', bdy: 'hi' }), 'missing_field');
  assert.equal(code({ type: 'send', room: 'lobby', body: 'hi', bdy: 'hi' }), 'unknown_field');
  assert.equal(code({ type: 'shout' }), 'unknown_type');
});
