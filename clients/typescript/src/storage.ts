/**
 * Where a non-browser client (`tokenTransport: "body"`) keeps its refresh token: supply one backed
 * by the platform's secure store (iOS Keychain / Android Keystore, e.g. expo-secure-store or
 * react-native-keychain) so a session survives an app restart. Methods may be sync or async.
 *
 * The client stores only the refresh token here, never the access token (that one stays in memory).
 */
export interface RefreshTokenStorage {
  get(): string | null | Promise<string | null>;
  set(token: string): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** The default: the refresh token lives as long as the client object (no restart survives it). */
export function memoryStorage(): RefreshTokenStorage {
  let token: string | null = null;
  return {
    get: () => token,
    set: (value) => {
      token = value;
    },
    clear: () => {
      token = null;
    },
  };
}
