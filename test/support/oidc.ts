/**
 * I1: what the OpenID tests drive the provider with: a small cookie-keeping
 * user agent over fetch (the provider needs a listening server and its own
 * cookies, which app.inject does not keep).
 */
/** A browser: keeps cookies (by name), follows nothing by itself. */
export class Browser {
  readonly jar = new Map<string, string>();
  constructor(private readonly base: string) {}

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<{ status: number; location: string | null; html: string }> {
    const target = new URL(url, this.base);
    const headers: Record<string, string> = { cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const name = pair!.slice(0, pair!.indexOf('=')).trim();
      const value = pair!.slice(pair!.indexOf('=') + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) <= Date.now()));
      if (value === '' || expired) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    const location = response.headers.get('location');
    return { status: response.status, location: location ? new URL(location, target).href : null, html: await response.text() };
  }
}
