// Starts a real authd for a test file (and for scripts/schema.ts), the way tests/browser/e2e.mjs
// does: target/debug/authd (AUTHD_BIN to change it) with cwd = the repository root so it reads
// config/, AUTHD_ENV=test (production rules, cheap argon2), embedded SQLite and mail files in a
// temp dir, random secrets, a free port. `stop()` kills it and deletes the temp dir.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The repository root: clients/typescript/build/test/support -> ../../../../.. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..');
export const AUTHD_BIN = path.resolve(REPO_ROOT, process.env.AUTHD_BIN || 'target/debug/authd');

export interface Authd {
  url: string;
  /** Where authd writes mails (`.eml` files): mail.file_dir. */
  outbox: string;
  /** The last lines of authd's log, for failure messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** `settings`: AUTHD__SECTION__KEY variables on top of the defaults below. */
export async function startAuthd(settings: Record<string, string> = {}): Promise<Authd> {
  if (!fs.existsSync(AUTHD_BIN)) {
    throw new Error(`authd binary ${AUTHD_BIN} is missing: cargo build (or set AUTHD_BIN)`);
  }
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'authd-client-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const outbox = path.join(tmp, 'outbox');
  // Only what is set here: nothing from the caller's shell that authd would read (DATABASE_URL
  // would switch to PostgreSQL, AUTHD_* could change anything), except AUTHD_CONFIG_DIR.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    const authdReads = /^(AUTHD_.*|NODE_ENV|DATABASE_URL|REDIS_URL|PORT|JWT_SECRET|FRONTEND_URL|RATE_LIMIT_.*|DB_POOL_SIZE|RUST_LOG)$/.test(key);
    if (value !== undefined && (key === 'AUTHD_CONFIG_DIR' || !authdReads)) env[key] = value;
  }
  Object.assign(env, {
    AUTHD_ENV: 'test',
    AUTHD__SERVER__HOST: '127.0.0.1',
    AUTHD__SERVER__PORT: String(port),
    AUTHD__SERVER__SHUTDOWN_TIMEOUT_SECONDS: '1',
    AUTHD__DATABASE__SQLITE_PATH: path.join(tmp, 'authd.db'),
    AUTHD__MAIL__FILE_DIR: outbox,
    AUTHD__TOKENS__JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    AUTHD__TOKENS__REFRESH_SECRET: crypto.randomBytes(32).toString('hex'),
    // High limits: the tests sign up and log in many times from 127.0.0.1.
    AUTHD__RATE_LIMIT__GENERAL_MAX: '10000',
    AUTHD__RATE_LIMIT__AUTH_MAX: '1000',
    AUTHD__LOG__LEVEL: 'info',
    // The base of the provider callback URLs: this authd (only used when providers are configured).
    AUTHD__OAUTH__CALLBACK_BASE_URL: url,
    ...settings,
  });
  const logPath = path.join(tmp, 'authd.log');
  const log = fs.openSync(logPath, 'a');
  const child = spawn(AUTHD_BIN, [], { cwd: REPO_ROOT, env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = `code ${code}, signal ${signal}`;
      resolve();
    }),
  );
  child.on('error', (e) => (exited = e.message));

  const logTail = (lines = 30) => {
    try {
      return fs.readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timedOut = await Promise.race([exit.then(() => false), sleep(5000, true, { ref: false })]);
        if (timedOut) child.kill('SIGKILL');
        await exit;
      }
      await fsp.rm(tmp, { recursive: true, force: true });
    })());
  // A test runner killed by its timeout must not leave authd running.
  process.once('exit', () => {
    if (!exited) child.kill('SIGKILL');
  });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      const tail = logTail();
      await stop();
      throw new Error(`authd exited at start (${exited}):\n${tail}`);
    }
    const ready = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) }).then(
      (res) => res.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      const tail = logTail();
      await stop();
      throw new Error(`authd was not ready within 30 s:\n${tail}`);
    }
    await sleep(50);
  }
  return { url, outbox, logTail, stop };
}
