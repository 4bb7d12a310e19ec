// The tray icon, drawn in code: a tide line in the status colour. No image files to ship per
// platform and per colour; nativeImage takes raw BGRA pixels.
import { nativeImage, type NativeImage } from 'electron';

export type TrayStatus = 'ok' | 'running' | 'secondary-missing' | 'error';

/** Calm, busy, waiting, attention (UI.md, "The tray"). */
const COLOURS: Record<TrayStatus, [number, number, number]> = {
  ok: [0x1a, 0x7f, 0x37],
  running: [0x1f, 0x6f, 0xeb],
  'secondary-missing': [0xc2, 0x8a, 0x00],
  error: [0xd1, 0x24, 0x2f],
};

const SIZE = 32;

export function trayIcon(status: TrayStatus): NativeImage {
  const [r, g, b] = COLOURS[status];
  const pixels = Buffer.alloc(SIZE * SIZE * 4);
  for (let x = 0; x < SIZE; x++) {
    // Two waves across the icon, 3.5 px thick.
    const centre = SIZE / 2 + Math.sin((x / SIZE) * 4 * Math.PI) * (SIZE / 6);
    for (let y = 0; y < SIZE; y++) {
      const coverage = Math.max(0, Math.min(1, 2.25 - Math.abs(y - centre)));
      if (coverage === 0) continue;
      const i = (y * SIZE + x) * 4;
      pixels[i] = b;
      pixels[i + 1] = g;
      pixels[i + 2] = r;
      pixels[i + 3] = Math.round(coverage * 255);
    }
  }
  return nativeImage.createFromBitmap(pixels, { width: SIZE, height: SIZE });
}
