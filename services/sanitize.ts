import { FilterXSS } from 'xss'

/** Sanitizing user content: comments become HTML-safe text. */

/**
 * No tags at all, and the contents of script/style dropped with them (the classic recipe, with the
 * option that exists: stripIgnoreTagBody, not "stripIgnoreTagContained"). OWASP ASVS 1.3.
 */
const filter = new FilterXSS({
  whiteList: {},
  stripIgnoreTag: true,
  stripIgnoreTagBody: ['script', 'style'],
})

/**
 * xss reads any "<" as the start of a tag, so "Tom & Jerry <3" would lose "<3". A "<" that cannot
 * open a tag (not followed by a letter, "/", "!" or "?") is text: escape it first, so it survives as
 * "&lt;" exactly once. "&" is left alone, so nothing is double-escaped.
 */
export function sanitizeComment(input: string): string {
  return filter.process(input.replace(/<(?![A-Za-z/!?])/g, '&lt;')).trim()
}
