/**
 * Concurrent identical reads share one query: a caller asking for a key whose
 * read is still running gets that read's promise. Nothing is kept once it
 * settles, so no answer is older than the query it came from. The dashboard's
 * statistics page asks for several views of the same rollup rows at once
 * (totals, share and the per-day series by business), and they are computed
 * from one query instead of one each.
 *
 * Callers must treat what they get as read-only: it is shared.
 */
export class SharedReads {
  private readonly running = new Map<string, Promise<unknown>>();

  read<T>(key: string, query: () => Promise<T>): Promise<T> {
    const running = this.running.get(key);
    if (running !== undefined) return running as Promise<T>;
    const read = query().finally(() => this.running.delete(key));
    this.running.set(key, read);
    return read;
  }

  /** Reads still running (for tests). */
  get size(): number {
    return this.running.size;
  }
}
