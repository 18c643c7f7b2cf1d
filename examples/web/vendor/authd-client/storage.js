// Copied from clients/typescript/dist/storage.js by `npm run update:example`: do not edit here.
/** The default: the refresh token lives as long as the client object (no restart survives it). */
export function memoryStorage() {
    let token = null;
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
