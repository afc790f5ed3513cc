/**
 * A package loaded on its first use, not when the module naming it is
 * imported: every `sls` command builds the services, and most never print a
 * card, import a PSKC file, register a security key or send an e-mail, so
 * they do not pay for loading what those need (about half of a command's
 * start-up CPU). Node caches the module: later calls cost a property read.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function lazyPackage<T>(id: string): () => T {
  let loaded: T | undefined;
  return () => {
    loaded ??= require(id) as T;
    return loaded;
  };
}
