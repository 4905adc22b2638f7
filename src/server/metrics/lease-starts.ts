/**
 * When this server process granted each lease it still knows of, so a
 * completed transfer's duration (lease to complete) can be observed. It is
 * memory only and bounded: a job leased by another server process, or before
 * a restart, or pushed out by newer leases, has no start here and is left out
 * of the duration histogram (its bytes still count).
 */
export class LeaseStarts {
  private readonly starts = new Map<number, number>();

  constructor(private readonly capacity: number) {}

  leased(jobId: number, atMs: number): void {
    // Re-inserting moves the job to the newest end of the map's order.
    this.starts.delete(jobId);
    this.starts.set(jobId, atMs);
    while (this.starts.size > this.capacity) {
      const oldest = this.starts.keys().next();
      if (oldest.done) break;
      this.starts.delete(oldest.value);
    }
  }

  /** The lease start of a job that ended here, forgotten; null when unknown. */
  take(jobId: number): number | null {
    const at = this.starts.get(jobId);
    this.starts.delete(jobId);
    return at ?? null;
  }

  get size(): number {
    return this.starts.size;
  }
}
