// Writes public/favicon.ico (16, 32 and 48 px, PNG inside ICO) from public/authenticator-icon.svg: node scripts/favicon.mjs
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { readFileSync, writeFileSync } from 'node:fs';
const svg = readFileSync('public/authenticator-icon.svg');
const img = await loadImage(svg);
const pngs = [16, 32, 48].map((size) => {
  const c = createCanvas(size, size);
  c.getContext('2d').drawImage(img, 0, 0, size, size);
  return { size, png: c.toBuffer('image/png') };
});
const header = Buffer.alloc(6);
header.writeUInt16LE(0, 0);
header.writeUInt16LE(1, 2);
header.writeUInt16LE(pngs.length, 4);
let offset = 6 + 16 * pngs.length;
const dirs = pngs.map(({ size, png }) => {
  const d = Buffer.alloc(16);
  d.writeUInt8(size, 0);
  d.writeUInt8(size, 1);
  d.writeUInt8(0, 2);
  d.writeUInt8(0, 3);
  d.writeUInt16LE(1, 4);
  d.writeUInt16LE(32, 6);
  d.writeUInt32LE(png.length, 8);
  d.writeUInt32LE(offset, 12);
  offset += png.length;
  return d;
});
writeFileSync('public/favicon.ico', Buffer.concat([header, ...dirs, ...pngs.map((p) => p.png)]));
console.log('ok', offset);
