import { useCallback } from 'react';
import { useSearchParams } from 'react-router';

/**
 * Filters and paging kept in the query string, so a link shares the view.
 * `set` merges; an empty value removes the key.
 */
export function useUrlState(): {
  get(key: string, fallback?: string): string;
  getNumber(key: string, fallback: number): number;
  set(changes: Record<string, string | number | undefined | null>): void;
} {
  const [params, setParams] = useSearchParams();
  const get = useCallback((key: string, fallback = '') => params.get(key) ?? fallback, [params]);
  const getNumber = useCallback(
    (key: string, fallback: number) => {
      const n = Number(params.get(key));
      return Number.isFinite(n) && n > 0 ? n : fallback;
    },
    [params],
  );
  const set = useCallback(
    (changes: Record<string, string | number | undefined | null>) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [key, value] of Object.entries(changes)) {
            if (value === undefined || value === null || value === '') next.delete(key);
            else next.set(key, String(value));
          }
          return next;
        },
        { replace: false },
      );
    },
    [setParams],
  );
  return { get, getNumber, set };
}
