/**
 * The app's screens, all in one page and shown with the `hidden` attribute:
 * one main screen at a time (home, activation, challenge/response), and on
 * top of it the screens that something from the server opens (a push
 * request before a message). The keyboard focus moves to the heading of the
 * screen that appears, so that a screen reader announces it.
 */
import { byId } from './dom.js';

export type MainScreen = 'home' | 'activation' | 'offline';
export type Overlay = 'request' | 'message';

/** Overlays by priority: a push request (K3) waits for no one. */
const OVERLAYS: Overlay[] = ['request', 'message'];
const MAINS: MainScreen[] = ['home', 'activation', 'offline'];

let main: MainScreen = 'home';
const open = new Set<Overlay>();
let visible: string = 'home';

function heading(section: HTMLElement): HTMLElement | null {
  return section.querySelector<HTMLElement>('h2[tabindex="-1"]');
}

function render(): void {
  const overlay = OVERLAYS.find((name) => open.has(name));
  const target = overlay ?? main;
  for (const name of [...MAINS, ...OVERLAYS]) byId(name).hidden = name !== target;
  if (target !== visible) {
    visible = target;
    heading(byId(target))?.focus();
  }
}

export function showMain(name: MainScreen): void {
  main = name;
  render();
}

export function currentMain(): MainScreen {
  return main;
}

export function openOverlay(name: Overlay): void {
  open.add(name);
  render();
}

export function closeOverlay(name: Overlay): void {
  open.delete(name);
  render();
}

export function overlayOpen(name: Overlay): boolean {
  return open.has(name);
}
