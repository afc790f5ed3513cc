/**
 * Reading the server-rendered pages in tests without a browser, and a small
 * user agent that drives them through the real HTTP stack (Fastify inject).
 *
 * The pages are our own well-formed templates, so small regular expressions
 * are enough to read them.
 */
import { expect } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

// ---------------------------------------------------------------------------
// HTML helpers

export function decode(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&');
}

/** The text of an HTML fragment, tags removed, whitespace collapsed. */
export function text(fragment: string): string {
  return decode(fragment.replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

export function attributes(source: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const m of source.matchAll(/([A-Za-z_:][-\w:.]*)(?:\s*=\s*"([^"]*)")?/g)) result[m[1]!.toLowerCase()] = decode(m[2] ?? '');
  return result;
}

export interface Element {
  tag: string;
  attrs: Record<string, string>;
  /** The start tag as written. */
  open: string;
  /** What lies between the start tag and the first matching end tag (our templates do not nest same-name elements where we look). */
  inner: string;
}

export function elements(html: string, tag: string): Element[] {
  const found: Element[] = [];
  for (const m of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))) {
    const start = m.index + m[0].length;
    const end = html.toLowerCase().indexOf(`</${tag.toLowerCase()}>`, start);
    found.push({ tag: tag.toLowerCase(), attrs: attributes(m[1]!), open: m[0], inner: end < 0 ? '' : html.slice(start, end) });
  }
  return found;
}

export function byId(html: string, id: string): Element | undefined {
  for (const m of html.matchAll(new RegExp(`<(\\w+)\\b[^>]*\\sid="${id}"[^>]*>`, 'g'))) {
    return elements(html.slice(m.index), m[1]!)[0];
  }
  return undefined;
}

export function textById(html: string, id: string): string | undefined {
  const el = byId(html, id);
  return el ? text(el.inner) : undefined;
}

export function h1s(html: string): string[] {
  return elements(html, 'h1').map((e) => text(e.inner));
}

export function htmlLang(html: string): string | undefined {
  return elements(html, 'html')[0]?.attrs.lang;
}

/** The .alert box of a page: its error code, role and text. */
export function alertBox(html: string): { code: string | undefined; role: string | undefined; text: string } | null {
  const box = elements(html, 'div').find((d) => (d.attrs.class ?? '').split(/\s+/).includes('alert'));
  return box ? { code: box.attrs['data-code'], role: box.attrs.role, text: text(box.inner) } : null;
}

/** The form controls a person fills in (not hidden fields, not buttons), in document order. */
export function controls(html: string): Element[] {
  return [...html.matchAll(/<(input|select|textarea)\b[^>]*>/gi)]
    .map((m) => elements(html.slice(m.index), m[1]!)[0]!)
    .filter((c) => !['hidden', 'submit', 'button'].includes(c.attrs.type ?? ''));
}

/** A control's label: a <label for> its id, or a <label> around it. */
export function labelOf(html: string, control: Element): string | null {
  const all = elements(html, 'label');
  const explicit = control.attrs.id ? all.find((l) => l.attrs.for === control.attrs.id) : undefined;
  const label = explicit ?? all.find((l) => l.inner.includes(control.open));
  return label ? text(label.inner) : null;
}

/**
 * Every control a person fills in has a label with a text (a <label for>, or
 * one around it), and every button has a text. Returns the labels, in
 * document order.
 */
export function expectEveryControlLabelled(html: string): string[] {
  const found = controls(html).map((control) => {
    const label = labelOf(html, control);
    expect(label, `label of ${control.open}`).toBeTruthy();
    return label!;
  });
  for (const button of elements(html, 'button')) expect(text(button.inner), button.open).not.toBe('');
  return found;
}

export function forms(html: string): Element[] {
  return elements(html, 'form');
}

export function form(html: string, action: string): Element {
  const found = forms(html).find((f) => f.attrs.action === action);
  if (!found) throw new Error(`no form with action ${action}`);
  return found;
}

export function hasForm(html: string, action: string): boolean {
  return forms(html).some((f) => f.attrs.action === action);
}

export function csrfOf(formElement: Element): string {
  const input = elements(formElement.inner, 'input').find((i) => i.attrs.name === '_csrf');
  if (!input?.attrs.value) throw new Error('the form has no _csrf field');
  return input.attrs.value;
}

export function hiddenValue(formElement: Element, name: string): string | undefined {
  return elements(formElement.inner, 'input').find((i) => i.attrs.name === name && i.attrs.type === 'hidden')?.attrs.value;
}

/** The rows of a table (by id) as cell texts. */
export function rows(html: string, id: string): string[][] {
  const table = byId(html, id);
  if (!table) return [];
  const body = elements(table.inner, 'tbody')[0]?.inner ?? '';
  return elements(body, 'tr').map((tr) => elements(tr.inner, 'td').map((td) => text(td.inner)));
}

/** The options of a select (by id): value and text. */
export function options(html: string, id: string): [string | undefined, string][] {
  const select = byId(html, id);
  if (!select) throw new Error(`no element with id ${id}`);
  return elements(select.inner, 'option').map((o) => [o.attrs.value, text(o.inner)]);
}

export function languageLinks(html: string): { href: string; hreflang: string | undefined; lang: string | undefined; current: boolean; label: string }[] {
  const nav = elements(html, 'nav')[0];
  if (!nav) return [];
  return elements(nav.inner, 'a').map((a) => ({
    href: a.attrs.href ?? '',
    hreflang: a.attrs.hreflang,
    lang: a.attrs.lang,
    current: a.attrs['aria-current'] === 'true',
    label: text(a.inner),
  }));
}

// ---------------------------------------------------------------------------
// A user agent over Fastify inject: keeps cookies, follows nothing by itself.

export interface Page {
  status: number;
  html: string;
  location: string | undefined;
  headers: LightMyRequestResponse['headers'];
  setCookies: string[];
  raw: LightMyRequestResponse;
}

interface RawCookie {
  name: string;
  value: string;
  maxAge?: number;
  expires?: Date;
}

export function cookieHeader(page: Page, name: string): string | undefined {
  return page.setCookies.find((c) => c.startsWith(`${name}=`));
}

export class Agent {
  readonly jar = new Map<string, string>();

  /** `headers` go with every request (e.g. Accept-Language). */
  constructor(
    private readonly app: FastifyInstance,
    private readonly headers: Record<string, string> = {},
  ) {}

  private keep(raw: LightMyRequestResponse): Page {
    for (const c of raw.cookies as RawCookie[]) {
      const gone = c.value === '' || c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now());
      if (gone) this.jar.delete(c.name);
      else this.jar.set(c.name, c.value);
    }
    const setCookie = raw.headers['set-cookie'];
    return {
      status: raw.statusCode,
      html: raw.body,
      location: raw.headers.location === undefined ? undefined : String(raw.headers.location),
      headers: raw.headers,
      setCookies: setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [String(setCookie)],
      raw,
    };
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.keep(await this.app.inject({ method: 'GET', url, cookies: Object.fromEntries(this.jar), headers: { ...this.headers, ...headers } }));
  }

  async post(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    const raw = await this.app.inject({
      method: 'POST',
      url,
      payload: new URLSearchParams(fields).toString(),
      cookies: Object.fromEntries(this.jar),
      headers: { ...this.headers, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
    return this.keep(raw);
  }

  /** Submits the form of `page` whose action is `action` with its CSRF token and hidden fields, as a browser would. */
  submit(page: Page, action: string, fields: Record<string, string> = {}): Promise<Page> {
    const f = form(page.html, action);
    const hidden = Object.fromEntries(
      elements(f.inner, 'input')
        .filter((i) => i.attrs.type === 'hidden' && i.attrs.name)
        .map((i) => [i.attrs.name!, i.attrs.value ?? '']),
    );
    return this.post(action, { ...hidden, _csrf: csrfOf(f), ...fields });
  }
}
