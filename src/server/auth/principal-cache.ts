import type { Principal } from './principal.js';

/**
 * Recently verified secrets, by hash, for a few seconds. Every report would
 * otherwise wait for the catalog (on SQLite, behind the writer) just to learn
 * who sent it. Only positive answers are kept, so a new credential works at
 * once; a revoked or replaced one stops working within `ttlMs`.
 */
export class PrincipalCache {
  readonly #entries = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number,
  ) {}

  get(hash: string, nowMs: number): Principal | null {
    const entry = this.#entries.get(hash);
    if (!entry) return null;
    if (entry.expiresAt <= nowMs) {
      this.#entries.delete(hash);
      return null;
    }
    return entry.principal;
  }

  set(hash: string, principal: Principal, nowMs: number): void {
    this.#entries.delete(hash);
    this.#entries.set(hash, { principal, expiresAt: nowMs + this.ttlMs });
    if (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  /** Forgets one secret, e.g. a token revoked in this process. */
  forget(hash: string): void {
    this.#entries.delete(hash);
  }

  /** Forgets everything, e.g. after a credential is replaced in this process. */
  clear(): void {
    this.#entries.clear();
  }
}
