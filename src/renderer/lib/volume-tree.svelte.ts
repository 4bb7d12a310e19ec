// The state of the volume tree browser, without the DOM: which folders are loaded (a page at a
// time), which are open, which row has the keyboard focus and which entries are chosen for a
// restore. The visible tree is flattened into rows, so that the view can draw only the rows in
// sight (a folder of 100 000 files stays fast) and keys move through it as through a list.
import { SvelteMap } from 'svelte/reactivity';
import type { BrowseEntry, BrowseReport } from '../../shared/states';

export interface FolderPage {
  entries: BrowseEntry[];
  total: number;
  loading: boolean;
  error: string | null;
}

export type TreeRow =
  | {
      kind: 'entry';
      entry: BrowseEntry;
      /** 1 for the protected folder's children (aria-level). */
      level: number;
      /** Position among its folder's entries, from 1, of `setsize` (all of them, loaded or not). */
      posinset: number;
      setsize: number;
    }
  /** "Loading…", "Empty folder", an error, or the next page of a big folder (`more`). */
  | { kind: 'note'; key: string; level: number; text: string; more?: string; error?: boolean };

export type Browse = (path: string, offset: number) => Promise<BrowseReport>;

/** Pages loaded in a row to find one entry (search results deep in a huge folder). */
const REVEAL_PAGES = 50;

export function parentPath(p: string): string {
  const slash = p.lastIndexOf('/');
  return slash < 0 ? '' : p.slice(0, slash);
}

export class VolumeTreeModel {
  folders = $state.raw<Record<string, FolderPage>>({});
  /** Open folders, by path: they stay open from state to state. */
  open = $state.raw<Record<string, true>>({});
  /** The row with tabindex 0 (roving tabindex), by path. */
  focused = $state<string | null>(null);
  /** A row the view should scroll into sight (a search result revealed), then set to null. */
  scrollTarget = $state<string | null>(null);
  /** Entries chosen for a restore (aria-selected), by path. */
  readonly chosen = new SvelteMap<string, BrowseEntry>();
  readonly rows = $derived.by(() => this.flatten());
  /** Row of each entry by path: every key press looks one up, in folders of 100 000 rows. */
  private readonly rowOf = $derived.by(() => {
    const at: Record<string, number> = Object.create(null);
    this.rows.forEach((r, i) => {
      if (r.kind === 'entry') at[r.entry.path] = i;
    });
    return at;
  });

  private browse: Browse | null = null;
  /** Answers for an earlier state are dropped. */
  private generation = 0;

  /** Shows another state (or job): folders load again, open ones and the choice stay. */
  setSource(browse: Browse): void {
    this.browse = browse;
    this.generation++;
    this.folders = {};
    void this.load('', 0);
    for (const p of Object.keys(this.open)) void this.load(p, 0);
  }

  /** Closes every folder and drops the choice (another job is shown). */
  forget(): void {
    this.open = {};
    this.chosen.clear();
    this.focused = null;
  }

  async load(path: string, offset: number): Promise<void> {
    const browse = this.browse;
    if (!browse) return;
    const gen = this.generation;
    const old = this.folders[path];
    if (old?.loading) return;
    this.put(path, {
      entries: offset === 0 ? [] : (old?.entries ?? []),
      total: old?.total ?? 0,
      loading: true,
      error: null,
    });
    try {
      const page = await browse(path, offset);
      if (gen !== this.generation) return;
      const before = offset === 0 ? [] : (this.folders[path]?.entries ?? []);
      this.put(path, {
        entries: before.concat(page.entries),
        total: page.total,
        loading: false,
        error: null,
      });
    } catch (err) {
      if (gen !== this.generation) return;
      const message = err instanceof Error ? err.message : String(err);
      this.put(path, { ...(this.folders[path] as FolderPage), loading: false, error: message });
    }
  }

  loadMore(path: string): void {
    const f = this.folders[path];
    if (f && !f.loading && !f.error && f.entries.length < f.total)
      void this.load(path, f.entries.length);
  }

  isOpen(path: string): boolean {
    return this.open[path] === true;
  }

  setOpen(path: string, open: boolean): void {
    if (this.isOpen(path) === open) return;
    const next = { ...this.open };
    if (open) next[path] = true;
    else delete next[path];
    this.open = next;
    if (open && !this.folders[path]) void this.load(path, 0);
  }

  /** Only `entry` is chosen (a plain click, Enter). */
  chooseOnly(entry: BrowseEntry): void {
    this.chosen.clear();
    this.chosen.set(entry.path, entry);
  }

  /** Adds or removes `entry` from the choice (Space, Ctrl+click, its check box). */
  toggleChosen(entry: BrowseEntry): void {
    if (this.chosen.has(entry.path)) this.chosen.delete(entry.path);
    else this.chosen.set(entry.path, entry);
  }

  /** Opens the folders above `entry` (loading pages until it shows), focuses and chooses it. */
  async reveal(entry: BrowseEntry): Promise<void> {
    const parts = entry.path.split('/');
    for (let i = 0; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (folder !== '') this.setOpen(folder, true);
      await this.find(folder, parts.slice(0, i + 1).join('/'));
    }
    this.focused = entry.path;
    this.scrollTarget = entry.path;
    this.chooseOnly(entry);
  }

  private async find(folder: string, path: string): Promise<void> {
    for (let i = 0; i < REVEAL_PAGES; i++) {
      const f = this.folders[folder];
      if (f && f.entries.some((e) => e.path === path)) return;
      if (f && !f.loading && (f.error || f.entries.length >= f.total)) return;
      await this.load(folder, f && !f.loading ? f.entries.length : 0);
    }
  }

  /** Index of the row of `path`, or -1. */
  indexOf(path: string | null): number {
    if (path === null) return -1;
    return this.rowOf[path] ?? -1;
  }

  private put(path: string, page: FolderPage): void {
    this.folders = { ...this.folders, [path]: page };
  }

  private flatten(): TreeRow[] {
    const rows: TreeRow[] = [];
    const walk = (path: string, level: number): void => {
      const f = this.folders[path];
      if (!f || (f.loading && f.entries.length === 0)) {
        rows.push({ kind: 'note', key: `${path}\0loading`, level, text: 'Loading…' });
        return;
      }
      if (f.error && f.entries.length === 0) {
        rows.push({ kind: 'note', key: `${path}\0error`, level, text: f.error, error: true });
        return;
      }
      if (f.entries.length === 0) {
        rows.push({ kind: 'note', key: `${path}\0empty`, level, text: 'Empty folder' });
        return;
      }
      f.entries.forEach((entry, i) => {
        rows.push({ kind: 'entry', entry, level, posinset: i + 1, setsize: f.total });
        if (entry.type === 'dir' && this.open[entry.path]) walk(entry.path, level + 1);
      });
      if (f.entries.length < f.total)
        rows.push({
          kind: 'note',
          key: `${path}\0more`,
          level,
          text: f.error ?? `Loading ${f.total - f.entries.length} more…`,
          more: path,
          ...(f.error ? { error: true } : {}),
        });
    };
    walk('', 1);
    return rows;
  }
}
