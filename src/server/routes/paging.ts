import { z } from 'zod';

/** Page sizes a list accepts; anything else is refused rather than silently clamped. */
export const PAGE_SIZES = ['10', '20', '50', '200', '500', '1000'] as const;
export const DEFAULT_PAGE_SIZE = 50;
/** Most values one list filter may name. */
export const MAX_FILTER_VALUES = 1000;

/** `page` (1-based) and `page_size`, to spread into a strict querystring schema. */
export const pagingQueryShape = {
  page: z
    .string()
    .regex(/^[1-9][0-9]{0,8}$/, 'page must be a whole number from 1')
    .transform(Number)
    .default(1),
  page_size: z
    .enum(PAGE_SIZES, { error: `page_size must be one of ${PAGE_SIZES.join(', ')}` })
    .transform(Number)
    .default(DEFAULT_PAGE_SIZE),
};

export const PagingQuerySchema = z.strictObject(pagingQueryShape);

export interface Paging {
  page: number;
  page_size: number;
}

export interface Page<T> extends Paging {
  items: T[];
  total: number;
}

/** Rows to skip for this page. */
export function pageOffset(paging: Paging): number {
  return (paging.page - 1) * paging.page_size;
}

export function pageOf<T>(items: T[], total: number, paging: Paging): Page<T> {
  return { items, total, page: paging.page, page_size: paging.page_size };
}

/** The response schema of a paged list of `item`. */
export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    total: z.number().int(),
    page: z.number().int(),
    page_size: z.number().int(),
  });
}

/** Splits a filter value such as `a,b c` into its distinct, non-empty parts. */
export function splitFilterList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((part) => part !== ''))];
}

/**
 * A list filter: a comma- or whitespace-separated list (or the parameter repeated),
 * each value checked by `item`; the error path names the offending value's position.
 */
export function listFilter(item: z.ZodType<string, string>) {
  return z
    .union([z.string(), z.array(z.string())])
    .transform((value) => splitFilterList(Array.isArray(value) ? value.join(',') : value))
    .pipe(
      z
        .array(item)
        .min(1, 'give at least one value')
        .max(MAX_FILTER_VALUES, `give at most ${MAX_FILTER_VALUES} values`),
    );
}

/** A `true`/`false` query flag. */
export const booleanFlag = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((value) => value === 'true');
