// Copied from clients/typescript/dist/errors.js by `npm run update:example`: do not edit here.
/** A failed call: authd answered with an error (or something that is not authd's answer). */
export class AuthdError extends Error {
    name = 'AuthdError';
    /** The HTTP status (authd's `statusCode` repeats it; 0 for `session_unavailable`, which no request answered). */
    status;
    code;
    /** `X-Request-Id` of the answer: quote it when reporting a problem. */
    requestId;
    /** Per-field problems; empty unless `validation_failed` or `not_ready`. */
    details;
    /** authd's `timestamp` of the error (RFC 3339, UTC); null for an answer that is not authd's error shape. */
    timestamp;
    /** `Retry-After` in seconds, on 429 and 503 answers that carry it. */
    retryAfterSeconds;
    constructor(init) {
        super(init.message);
        this.status = init.status;
        this.code = init.code;
        this.requestId = init.requestId ?? null;
        this.details = init.details ?? [];
        this.retryAfterSeconds = init.retryAfterSeconds ?? null;
        this.timestamp = init.timestamp ?? null;
    }
    /** Builds the error from an answer that is not 2xx; reads (and so consumes) its body. */
    static async fromResponse(res) {
        const text = await res.text().catch(() => '');
        const body = parseErrorBody(text);
        const retryAfterSeconds = parseRetryAfter(res.headers.get('retry-after'));
        const requestId = body?.requestId ?? res.headers.get('x-request-id');
        if (!body) {
            return new AuthdError({
                status: res.status,
                code: 'unexpected_response',
                message: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}: not an authd error answer`,
                requestId,
                retryAfterSeconds,
            });
        }
        return new AuthdError({
            status: res.status,
            code: body.code,
            message: body.error,
            requestId,
            // Whatever a proxy in between made of the body, `details` is always a list.
            details: Array.isArray(body.details) ? body.details : [],
            retryAfterSeconds,
            timestamp: typeof body.timestamp === 'string' ? body.timestamp : null,
        });
    }
}
function parseErrorBody(text) {
    try {
        const body = JSON.parse(text);
        if (typeof body === 'object' && body !== null && 'code' in body && 'error' in body) {
            const { code, error } = body;
            if (typeof code === 'string' && typeof error === 'string')
                return body;
        }
    }
    catch {
        // not JSON: handled as unexpected_response
    }
    return null;
}
// RFC 9110's IMF-fixdate, the one HTTP-date form a sender may generate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;
/**
 * `Retry-After` in seconds: delta-seconds (digits only: what authd sends) or an IMF-fixdate HTTP
 * date (what a proxy in front of it may send). Null when absent or anything else (`1.5`, `-1`,
 * obsolete date forms): `Date.parse` alone would read `1.5` as a date in 2001, an immediate retry.
 */
export function parseRetryAfter(value) {
    if (value === null)
        return null;
    const trimmed = value.trim();
    if (/^\d+$/.test(trimmed))
        return Number(trimmed);
    if (!IMF_FIXDATE.test(trimmed))
        return null;
    const date = Date.parse(trimmed);
    if (Number.isNaN(date))
        return null;
    return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
