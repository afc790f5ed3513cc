/**
 * X3: the seeded generator of the fuzz tests (test/fuzz-api,
 * test/fuzz-cli-files): the same numbers for the same seed everywhere, so
 * that a failure is replayed by setting SLS_FUZZ_SEED to the seed its
 * message names.
 */
import { createHash } from 'node:crypto';

export const SEED = Number(process.env.SLS_FUZZ_SEED ?? 20_261_207);

/** mulberry32, seeded from SEED and what is generated (one stream per name: a case added elsewhere changes none). */
export function seededRandom(what: string): () => number {
  let a = createHash('sha256').update(`${SEED}:${what}`).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
