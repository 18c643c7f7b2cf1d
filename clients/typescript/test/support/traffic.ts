// A wrapped fetch for the tests: records every request the client makes (to count refreshes and
// time retries) and, with `cookieJar`, plays the browser's part for authd's HttpOnly refresh
// cookie: Node's fetch keeps no cookies. Like a browser calling another origin, the jar stores
// and sends cookies only for requests made with `credentials: 'include'`, and only on the
// cookie's Path, so the client under test must do what a page must.

export interface Exchange {
  method: string;
  path: string;
  requestHeaders: Headers;
  requestBody: unknown;
  credentials: RequestCredentials | undefined;
  /** performance.now() when the request was sent and when its answer arrived. */
  sentAt: number;
  answeredAt: number;
  status: number;
  responseHeaders: Headers;
  /** The answer's JSON (read from a clone), or null. */
  responseBody: unknown;
}

export interface Traffic {
  fetch: typeof fetch;
  exchanges: Exchange[];
  /** Exchanges since `mark()`, optionally only `METHOD /path`. */
  since(mark: number, route?: string): Exchange[];
  mark(): number;
  /** The jar's cookies (name -> value), when there is a jar. */
  cookies: Map<string, { value: string; path: string }>;
  /** Rewrites requests before they leave (to simulate what authd cannot be made to do). */
  tamper: ((path: string, headers: Headers) => void) | null;
}

export function recordTraffic({ cookieJar = false } = {}): Traffic {
  const exchanges: Exchange[] = [];
  const cookies = new Map<string, { value: string; path: string }>();
  const traffic: Traffic = {
    exchanges,
    cookies,
    tamper: null,
    mark: () => exchanges.length,
    since: (mark, route) => exchanges.slice(mark).filter((e) => !route || `${e.method} ${e.path}` === route),
    fetch: async (input, init = {}) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const headers = new Headers(init.headers);
      const include = init.credentials === 'include';
      if (cookieJar && include) {
        const sent = [...cookies].filter(([, c]) => url.pathname.startsWith(c.path)).map(([name, c]) => `${name}=${c.value}`);
        if (sent.length) headers.set('cookie', sent.join('; '));
      }
      traffic.tamper?.(url.pathname, headers);
      const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body ?? null;
      const sentAt = performance.now();
      const res = await fetch(url, { ...init, headers });
      const answeredAt = performance.now();
      if (cookieJar && include) {
        for (const line of res.headers.getSetCookie()) {
          const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
          const name = pair.slice(0, pair.indexOf('='));
          const value = pair.slice(pair.indexOf('=') + 1);
          const cookiePath = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
          const expired = value === '' || attributes.some((a) => /^max-age=0$/i.test(a));
          if (expired) cookies.delete(name);
          else cookies.set(name, { value, path: cookiePath });
        }
      }
      const responseBody = await res
        .clone()
        .json()
        .catch(() => null);
      exchanges.push({
        method: init.method ?? 'GET',
        path: url.pathname,
        requestHeaders: headers,
        requestBody: body,
        credentials: init.credentials,
        sentAt,
        answeredAt,
        status: res.status,
        responseHeaders: res.headers,
        responseBody,
      });
      return res;
    },
  };
  return traffic;
}

/** `METHOD /path status` of each exchange, for assertion messages. */
export const show = (exchanges: Exchange[]) => exchanges.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ');
