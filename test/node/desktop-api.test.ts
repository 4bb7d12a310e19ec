// The desktop-only part of the API contract: checked at the IPC boundary like the rest.
import { describe, expect, it } from 'vitest';
import { isDesktopMethod, isMethod, parseDesktopParams } from '../../src/shared/api.js';

describe('the desktop-only requests', () => {
  it('are their own map: the services (and so `tidemark serve`) never see them', () => {
    expect(isDesktopMethod('dialog.open')).toBe(true);
    expect(isMethod('dialog.open')).toBe(false);
    expect(isDesktopMethod('jobs.list')).toBe(false);
    expect(isDesktopMethod('toString')).toBe(false);
  });

  it('check the dialog parameters and say what is wrong in one line', () => {
    expect(
      parseDesktopParams('dialog.open', { kind: 'folder', title: ' Archive folder ' }),
    ).toEqual({ ok: true, value: { kind: 'folder', title: 'Archive folder' } });
    const bad = parseDesktopParams('dialog.open', { kind: 'device', title: 'x' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error.code).toBe('usage');
      expect(bad.error.message).toMatch(/\(dialog\.open kind\)$/);
    }
    expect(parseDesktopParams('dialog.open', { kind: 'file', title: '' }).ok).toBe(false);
  });
});
