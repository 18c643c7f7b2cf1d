// Proves (--check) or makes (--write) the committed OpenAPI snapshot (openapi.json) match what
// target/debug/authd serves at GET /openapi.json: starts authd (embedded SQLite, as the tests do),
// fetches the document and compares. The types (src/schema.ts) are generated from the snapshot by
// `npm run build` (openapi-typescript), so they cannot drift from it and are not committed.
//
//   npm run check:schema    fails, with the first difference and the fix, when it is out of date
//   npm run update:schema   rewrites it and rebuilds

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startAuthd } from '../test/support/authd.js';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SNAPSHOT = path.join(PACKAGE_DIR, 'openapi.json');

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

if (mode === '--write') {
  fs.writeFileSync(SNAPSHOT, document);
  console.log(`wrote ${path.relative(PACKAGE_DIR, SNAPSHOT)}; \`npm run build\` regenerates src/schema.ts from it`);
} else {
  const committed = fs.existsSync(SNAPSHOT) ? fs.readFileSync(SNAPSHOT, 'utf8') : '';
  if (committed !== document) {
    console.error(`OUT OF DATE: ${path.relative(PACKAGE_DIR, SNAPSHOT)} differs from what authd serves, first at ${firstDifference(committed, document)}`);
    console.error(
      '\nThe OpenAPI document of target/debug/authd changed. Run `npm run update:schema` in clients/typescript,\n' +
        'review the diff (the client is typed from openapi.json), fix any compile error it causes, and commit.',
    );
    process.exitCode = 1;
  } else {
    console.log('openapi.json matches GET /openapi.json of target/debug/authd');
  }
}
