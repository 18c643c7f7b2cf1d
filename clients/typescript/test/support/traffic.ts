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
  /**
   * A top-level navigation, as a browser makes it when a page sets `location` (to a provider's
   * start URL): GETs `url` and follows redirects by hand while they stay on `follow` (authd and
   * the provider), sending the jar's cookies to `cookieOrigin` (authd) and keeping the ones it
   * sets, whatever `credentials` say (a navigation always carries cookies). Answers the first
   * Location outside `follow` (the page the round trip returns to) and every hop.
   */
  navigate(url: string, options: { cookieOrigin: string; follow: string[] }): Promise<Navigation>;
}

export interface Hop {
  url: string;
  status: number;
  location: string | null;
  /** The Cookie header sent, and the Set-Cookie lines answered. */
  sentCookies: string;
  setCookies: string[];
}
export interface Navigation {
  /** Where the browser ends up: the first Location off the followed origins. */
  url: string;
  hops: Hop[];
}

/** RFC 6265 path-match: `/auth` matches `/auth` and `/auth/refresh`, not `/authorize`. */
function pathMatches(cookiePath: string, requestPath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

export function recordTraffic({ cookieJar = false } = {}): Traffic {
  const exchanges: Exchange[] = [];
  const cookies = new Map<string, { value: string; path: string }>();
  const cookieHeader = (url: URL) =>
    [...cookies]
      .filter(([, c]) => pathMatches(c.path, url.pathname))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  const keepCookies = (res: Response) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      const cookiePath = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const expired = value === '' || attributes.some((a) => /^max-age=0$/i.test(a));
      if (expired) cookies.delete(name);
      else cookies.set(name, { value, path: cookiePath });
    }
  };
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
        const sent = cookieHeader(url);
        if (sent) headers.set('cookie', sent);
      }
      traffic.tamper?.(url.pathname, headers);
      const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body ?? null;
      const sentAt = performance.now();
      const res = await fetch(url, { ...init, headers });
      const answeredAt = performance.now();
      if (cookieJar && include) keepCookies(res);
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
    navigate: async (start, { cookieOrigin, follow }) => {
      const hops: Hop[] = [];
      let url = new URL(start);
      for (;;) {
        if (!follow.includes(url.origin)) return { url: url.href, hops };
        if (hops.length >= 10) throw new Error(`more than 10 redirects: ${hops.map((h) => h.url).join(' -> ')}`);
        const sentCookies = url.origin === cookieOrigin && cookieJar ? cookieHeader(url) : '';
        const res = await fetch(url, { redirect: 'manual', headers: sentCookies ? { cookie: sentCookies } : {} });
        if (url.origin === cookieOrigin && cookieJar) keepCookies(res);
        const location = res.headers.get('location');
        hops.push({ url: url.href, status: res.status, location, sentCookies, setCookies: res.headers.getSetCookie() });
        await res.body?.cancel();
        if (res.status < 300 || res.status >= 400 || !location) {
          throw new Error(`the navigation stopped at ${url.href} with ${res.status}: ${hops.map((h) => `${h.status} ${h.url}`).join(' -> ')}`);
        }
        url = new URL(location, url);
      }
    },
  };
  return traffic;
}

/** `METHOD /path status` of each exchange, for assertion messages. */
export const show = (exchanges: Exchange[]) => exchanges.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ');
