import crypto from 'node:crypto';

import { AuthdError } from '@authd/client';

/** A new address and a password zxcvbn accepts. */
export function newAccount(label: string) {
  const id = crypto.randomBytes(4).toString('hex');
  return { email: `${label}-${id}@example.com`, password: `violet ${id} harbour tangerine`, name: `Test ${label}` };
}

/** For assert.rejects: the AuthdError with this status and code (and anything else to check). */
export function authdError(status: number, code: string, check?: (e: AuthdError) => void) {
  return (e: unknown) => {
    if (!(e instanceof AuthdError)) throw new Error(`expected an AuthdError, got ${String(e)}`);
    if (e.status !== status || e.code !== code) {
      throw new Error(`expected ${status} ${code}, got ${e.status} ${e.code}: ${e.message}`);
    }
    check?.(e);
    return true;
  };
}

/**
 * A Storage (localStorage / sessionStorage) that records every write: installed as the globals
 * before the client is used, it shows whether the client ever put anything there.
 */
export class RecordingStorage implements Storage {
  readonly writes: Array<[string, string]> = [];
  #data = new Map<string, string>();
  get length() {
    return this.#data.size;
  }
  clear() {
    this.#data.clear();
  }
  getItem(key: string) {
    return this.#data.get(key) ?? null;
  }
  key(index: number) {
    return [...this.#data.keys()][index] ?? null;
  }
  removeItem(key: string) {
    this.#data.delete(key);
  }
  setItem(key: string, value: string) {
    this.writes.push([key, value]);
    this.#data.set(key, value);
  }
}
