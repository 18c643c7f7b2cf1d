// Proves (--check) or makes (--write) the committed OpenAPI snapshot (openapi.json) and the types
// generated from it (src/schema.ts) match what target/debug/authd serves at GET /openapi.json:
// starts authd (embedded SQLite, as the tests do), fetches the document, regenerates the types
// with openapi-typescript into a temp dir, and compares both files.
//
//   npm run check:schema    fails, with a diff summary and the fix, when either is out of date
//   npm run update:schema   rewrites both

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startAuthd } from '../test/support/authd.js';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SNAPSHOT = path.join(PACKAGE_DIR, 'openapi.json');
const SCHEMA = path.join(PACKAGE_DIR, 'src', 'schema.ts');
const GENERATOR = path.join(PACKAGE_DIR, 'node_modules', 'openapi-typescript', 'bin', 'cli.js');
// Request bodies: a field with a default is optional (the generator's default would make
// `tokenTransport` required). Free-form objects (passkey credentials) are Record<string, unknown>.
const GENERATOR_FLAGS = ['--default-non-nullable', 'false', '--empty-objects-unknown'];

const mode = process.argv[2];
if (mode !== '--check' && mode !== '--write') {
  console.error('usage: node build/scripts/schema.js --check | --write');
  process.exit(2);
}

/** The first differing line, to say where without printing 3000 lines. */
function firstDifference(a: string, b: string): string {
  const left = a.split('\n');
  const right = b.split('\n');
  for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
    if (left[i] !== right[i]) return `line ${i + 1}:\n  committed: ${left[i] ?? '(end of file)'}\n  authd:     ${right[i] ?? '(end of file)'}`;
  }
  return '(identical)';
}

const authd = await startAuthd();
let document: string;
try {
  const res = await fetch(`${authd.url}/openapi.json`);
  if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}`);
  // Pretty-printed, so the snapshot's history shows which parts of the API changed.
  document = `${JSON.stringify(await res.json(), null, 2)}\n`;
} finally {
  await authd.stop();
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'authd-schema-'));
try {
  const fetched = path.join(tmp, 'openapi.json');
  const generated = path.join(tmp, 'schema.ts');
  fs.writeFileSync(fetched, document);
  execFileSync(process.execPath, [GENERATOR, fetched, '-o', generated, ...GENERATOR_FLAGS], { stdio: 'pipe' });
  const types = fs.readFileSync(generated, 'utf8');

  if (mode === '--write') {
    fs.writeFileSync(SNAPSHOT, document);
    fs.writeFileSync(SCHEMA, types);
    console.log(`wrote ${path.relative(PACKAGE_DIR, SNAPSHOT)} and ${path.relative(PACKAGE_DIR, SCHEMA)}`);
  } else {
    const expected: Array<[file: string, fresh: string]> = [
      [SNAPSHOT, document],
      [SCHEMA, types],
    ];
    const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
    const stale = expected.filter(([file, fresh]) => read(file) !== fresh);
    if (stale.length) {
      for (const [file, fresh] of stale) {
        console.error(`OUT OF DATE: ${path.relative(PACKAGE_DIR, file)} differs from what authd serves, first at ${firstDifference(read(file), fresh)}`);
      }
      console.error(
        '\nThe OpenAPI document of target/debug/authd changed. Run `npm run update:schema` in clients/typescript,\n' +
          'review the diff (src/schema.ts is what the client is typed with), fix any compile error it causes, and commit.',
      );
      process.exitCode = 1; // not process.exit(): the temp dir is removed below first
    } else {
      console.log('openapi.json and src/schema.ts match GET /openapi.json of target/debug/authd');
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
