import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkChoice } from '../../src/main/services/drives.js';
import { isWithin, liesWithin, realPath } from '../../src/main/services/path-within.js';
import { tempDir } from '../helpers/tmp.js';

// The refusals that keep a backup off the data it protects, on real folders and symlinks.

describe('a path inside another', () => {
  it('is seen as spelled, through `..` names, and through symlinks', async () => {
    const dir = tempDir();
    const home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, '..backup'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'elsewhere'));
    fs.symlinkSync(home, path.join(dir, 'link-to-home'));

    expect(isWithin(home, path.join(home, '..backup'))).toBe(true);
    expect(isWithin(home, path.join(home, 'a', '..', '..', 'elsewhere'))).toBe(false);
    expect(isWithin(home, path.join(dir, 'home2'))).toBe(false);
    expect(isWithin(home, home)).toBe(true);

    const viaLink = path.join(dir, 'link-to-home', 'new', 'archive');
    expect(isWithin(home, viaLink)).toBe(false);
    expect(await liesWithin(home, viaLink)).toBe(true);
    expect(await realPath(viaLink)).toBe(path.join(fs.realpathSync(home), 'new', 'archive'));
    expect(await liesWithin(home, path.join(dir, 'elsewhere', 'archive'))).toBe(false);

    const odd = await checkChoice('volume', home, path.join(home, '..backup'));
    expect(odd.errors).toContain(`${path.join(home, '..backup')} lies inside the primary`);
    const linked = await checkChoice('volume', home, viaLink);
    expect(linked.errors).toContain(`${viaLink} lies inside the primary`);
    const same = await checkChoice('volume', home, path.join(dir, 'link-to-home'));
    expect(same.errors).toContain('the backup cannot be the primary itself');
    const fine = await checkChoice('volume', home, path.join(dir, 'elsewhere', 'archive'));
    expect(fine.errors).toEqual([]);
  });
});
