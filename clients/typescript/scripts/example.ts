// examples/web has no build step and is served as static files, so it imports a copy of the
// built package: the ES modules that dist/index.js loads, in examples/web/vendor/authd-client/.
//
//   npm run update:example   copies them (after npm run build)
//   npm run check:example    fails when the copy differs from a fresh build (CI runs it)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = path.join(PACKAGE_DIR, 'dist');
const VENDOR = path.resolve(PACKAGE_DIR, '../../examples/web/vendor/authd-client');
const HEADER = (file: string) =>
  `// Copied from clients/typescript/dist/${file} by \`npm run update:example\`: do not edit here.\n`;

/** dist/index.js and the modules it imports at run time (type-only imports are gone from dist). */
function runtimeModules(): Map<string, string> {
  const modules = new Map<string, string>();
  const visit = (file: string) => {
    if (modules.has(file)) return;
    const source = fs.readFileSync(path.join(DIST, file), 'utf8');
    modules.set(file, HEADER(file) + source);
    for (const [, dependency] of source.matchAll(/^(?:import|export)\s[^;]*?from\s+'\.\/([\w-]+\.js)';/gm)) visit(dependency!);
  };
  visit('index.js');
  return modules;
}

const mode = process.argv[2];
const modules = runtimeModules();
const vendored = fs.existsSync(VENDOR) ? fs.readdirSync(VENDOR) : [];

if (mode === '--write') {
  fs.mkdirSync(VENDOR, { recursive: true });
  for (const file of vendored.filter((f) => !modules.has(f))) fs.rmSync(path.join(VENDOR, file));
  for (const [file, text] of modules) fs.writeFileSync(path.join(VENDOR, file), text);
  console.log(`copied ${[...modules.keys()].join(', ')} to ${path.relative(process.cwd(), VENDOR)}`);
} else if (mode === '--check') {
  const problems = [
    ...[...modules].filter(([file, text]) => !vendored.includes(file) || fs.readFileSync(path.join(VENDOR, file), 'utf8') !== text).map(([file]) => `${file} is missing or out of date`),
    ...vendored.filter((f) => !modules.has(f)).map((f) => `${f} is not part of the package any more`),
  ];
  if (problems.length) {
    console.error(`examples/web/vendor/authd-client differs from the built package:\n  ${problems.join('\n  ')}`);
    console.error('Run `npm run build && npm run update:example` in clients/typescript and commit examples/web/vendor.');
    process.exit(1);
  }
  console.log(`examples/web/vendor/authd-client matches dist/ (${[...modules.keys()].join(', ')})`);
} else {
  console.error('usage: node build/scripts/example.js --check | --write');
  process.exit(2);
}
