/**
 * The page the app runs in (views/authenticator.eta): its elements, its
 * language and its texts. The script has no text of its own (X2): every
 * text it shows comes from the translations the server rendered into the
 * page, in the `#app-text` data island.
 */
import { ApiError } from './api.js';

type Texts = { [key: string]: string | Texts };

let texts: Texts = {};

/** Reads the page's texts; call once at start. */
export function loadTexts(): void {
  const island = document.getElementById('app-text');
  texts = island?.textContent ? (JSON.parse(island.textContent) as Texts) : {};
}

/** The page's language (en, fr, zh-Hant). */
export function language(): string {
  return document.documentElement.lang || 'en';
}

/** A text of the page by its translation key (`authenticator.request.approve`), with {{placeholders}} filled in. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  let node: string | Texts | undefined = texts;
  for (const part of key.split('.')) node = typeof node === 'object' ? node[part] : undefined;
  if (typeof node !== 'string') return key;
  return node.replace(/\{\{(\w+)\}\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/** An element of the page by id, of the expected kind. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

export function input(id: string): HTMLInputElement {
  return byId<HTMLInputElement>(id);
}

export function show(element: HTMLElement, visible = true): void {
  element.hidden = !visible;
}

export function hide(element: HTMLElement): void {
  element.hidden = true;
}

/**
 * Shows a message in a live region: role=alert for errors, role=status for
 * notices. An empty text clears it (the region stays, empty, so that the
 * next message is announced).
 */
export function say(element: HTMLElement, message: string, kind: 'alert' | 'status' = 'alert'): void {
  element.setAttribute('role', kind);
  element.classList.toggle('alert', kind === 'alert' && message !== '');
  element.classList.toggle('notice', kind === 'status' && message !== '');
  element.textContent = message;
}

/** Moves the keyboard focus to an element (a heading with tabindex=-1 when a screen changes). */
export function focus(element: HTMLElement): void {
  element.focus({ preventScroll: false });
}

/** Dates and times in the page's language, in the phone's time zone. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const lang = language();
  return new Intl.DateTimeFormat(lang === 'zh-Hant' ? 'zh-TW' : lang, { dateStyle: 'medium', timeStyle: 'long' }).format(date);
}

/**
 * The message of a failed call for people: the server's own (already in the
 * page's language), with the attempts left when it says; ours when the
 * server could not be reached.
 */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    const message = error.body?.error?.message ?? t('authenticator.errors.unexpected');
    const left = error.body?.error?.attemptsLeft;
    // the two sentences joined as the language does (no space between Chinese sentences)
    return typeof left === 'number'
      ? t('authenticator.errors.withAttemptsLeft', { message, attempts: t('authenticator.request.attemptsLeft', { count: left }) })
      : message;
  }
  if (error instanceof TypeError || (error instanceof DOMException && error.name === 'NetworkError')) return t('authenticator.errors.network');
  return t('authenticator.errors.unexpected');
}

/** Whether the error is the server's answer with this code. */
export function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof ApiError && codes.includes(error.code);
}

/** Disables a form's controls while a call runs (no double submission), and marks it busy. */
export async function busy<T>(form: HTMLElement, work: () => Promise<T>): Promise<T> {
  const controls = [...form.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>('button, input, select')].filter((c) => !c.disabled);
  form.setAttribute('aria-busy', 'true');
  for (const control of controls) control.disabled = true;
  try {
    return await work();
  } finally {
    for (const control of controls) control.disabled = false;
    form.removeAttribute('aria-busy');
  }
}
