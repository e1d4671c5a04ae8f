import { FilterXSS } from 'xss'
import { ELEMENT_NAMES } from '../lib/html-elements.js'

/** Sanitizing user content: comments become HTML-safe text. */

/**
 * No tags at all, and the contents of script/style dropped with them (the classic recipe, with the
 * option that exists: stripIgnoreTagBody, not "stripIgnoreTagContained"). OWASP ASVS 5.0 1.3.
 */
const filter = new FilterXSS({
  whiteList: {},
  stripIgnoreTag: true,
  stripIgnoreTagBody: ['script', 'style'],
})

/**
 * Every "<", with what follows it as the HTML tokenizer reads it (WHATWG HTML §13.2.5.6–8): "<!"
 * or "<?" (comment, doctype, CDATA, bogus comment), or a tag name (a letter, then anything up to
 * whitespace, "/" or ">"), optionally after "/".
 */
const LESS_THAN = /<(?:(?=([!?]))|(?=\/?([A-Za-z][^\t\n\f\r />]*))|)/g

/**
 * xss reads any "<" as the start of a tag and drops what follows, so "if a<b then c" lost "b then
 * c" and "use <stdio.h> please" lost "<stdio.h>". A "<" is handed to xss as markup only when a
 * browser would parse markup there and it is meant as such: a ">" follows somewhere (without one
 * the tokenizer emits no tag at all), and it opens a comment or declaration or a tag whose name is
 * an HTML, SVG or MathML element. Every other "<" is text, escaped here once to "&lt;"; xss then
 * escapes ">" in text. "&" is left alone, so a stored body sent back is stored unchanged.
 */
export function sanitizeComment(input: string): string {
  const lastGreaterThan = input.lastIndexOf('>')
  const marked = input.replace(LESS_THAN, (lt, declaration, name, offset: number) => {
    const markup =
      offset < lastGreaterThan && (declaration !== undefined || ELEMENT_NAMES.has(name?.toLowerCase()))
    return markup ? lt : '&lt;'
  })
  return filter.process(marked).trim()
}
