// Builds the browser extension: dist/extension/ (unpacked, loadable) and dist/extension.zip
// (for the Chrome Web Store or a managed install). Usage: npm run build:extension
// Only dist/extension and dist/extension.zip are replaced; the rest of dist/ is left alone.
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import yazl from 'yazl';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'extension');
const out = join(root, 'dist', 'extension');
const zipPath = join(root, 'dist', 'extension.zip');
/** The files beside the compiled scripts, as they are. */
const STATIC = ['_locales', 'options.html', 'popup.html', 'styles.css'];
const ICON_SIZES = [16, 32, 48, 128];
/** Every zip entry gets this time, so the same sources give the same zip. */
const ZIP_MTIME = new Date('2026-01-01T00:00:00Z');

// --- PNG icons (a database cylinder on a blue rounded square), drawn here: no binaries in git.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** An RGBA image (rows of size*4 bytes) as a PNG file. */
export function encodePng(size, rgba) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA, deflate, no filter method, no interlace
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y += 1) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const BLUE = [25, 103, 210];
const WHITE = [255, 255, 255];

/** The colour at (u, v) in the unit square, or null outside the icon. */
function iconAt(u, v) {
  const margin = 0.04;
  const radius = 0.2;
  const dx = Math.max(margin + radius - u, 0, u - (1 - margin - radius));
  const dy = Math.max(margin + radius - v, 0, v - (1 - margin - radius));
  if (u < margin || u > 1 - margin || v < margin || v > 1 - margin || Math.hypot(dx, dy) > radius)
    return null;
  const rx = 0.28;
  const ry = 0.09;
  const top = 0.27;
  const bottom = 0.73;
  const ellipse = (cy) => Math.sqrt(((u - 0.5) / rx) ** 2 + ((v - cy) / ry) ** 2);
  const inCylinder =
    (Math.abs(u - 0.5) <= rx && v >= top && v <= bottom) || ellipse(top) <= 1 || ellipse(bottom) <= 1;
  if (!inCylinder) return BLUE;
  // The top face's rim and two bands: the lower halves of ellipses.
  for (const cy of [top, 0.42, 0.57]) {
    if (v >= cy && Math.abs(ellipse(cy) - 1) < 0.22) return BLUE;
  }
  return WHITE;
}

export function drawIcon(size) {
  const samples = 4;
  const rgba = Buffer.alloc(size * size * 4);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let sy = 0; sy < samples; sy += 1) {
        for (let sx = 0; sx < samples; sx += 1) {
          const color = iconAt((x + (sx + 0.5) / samples) / size, (y + (sy + 0.5) / samples) / size);
          if (color === null) continue;
          r += color[0];
          g += color[1];
          b += color[2];
          a += 1;
        }
      }
      const i = (y * size + x) * 4;
      if (a > 0) rgba.set([Math.round(r / a), Math.round(g / a), Math.round(b / a)], i);
      rgba[i + 3] = Math.round((a / (samples * samples)) * 255);
    }
  }
  return encodePng(size, rgba);
}

// --- build

async function filesUnder(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

function writeZip(files) {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    for (const file of files) {
      zip.addFile(file, relative(out, file).split(sep).join('/'), { mtime: ZIP_MTIME, mode: 0o100644 });
    }
    zip.outputStream.pipe(createWriteStream(zipPath)).on('close', resolve).on('error', reject);
    zip.end();
  });
}

async function build() {
  await rm(out, { recursive: true, force: true });
  await rm(zipPath, { force: true });
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(source, 'tsconfig.json')],
    { stdio: 'inherit' },
  );
  if (tsc.status !== 0)
    throw new Error(`tsc -p extension/tsconfig.json failed (${tsc.status ?? tsc.signal})`);

  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  const manifest = JSON.parse(await readFile(join(source, 'manifest.json'), 'utf8'));
  manifest.version = pkg.version;
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  for (const name of STATIC) await cp(join(source, name), join(out, name), { recursive: true });
  await mkdir(join(out, 'icons'), { recursive: true });
  for (const size of ICON_SIZES) await writeFile(join(out, 'icons', `icon-${size}.png`), drawIcon(size));

  const files = await filesUnder(out);
  await writeZip(files);
  process.stderr.write(
    `extension: ${files.length} files in ${relative(root, out)}, ${relative(root, zipPath)}\n`,
  );
}

await build();
