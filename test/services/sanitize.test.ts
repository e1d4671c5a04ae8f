import t from 'tap'
import { sanitizeComment } from '../../services/sanitize.js'

/**
 * Exact outputs of the comment sanitizer (xss with no tags allowed, script/style bodies dropped) for
 * the classic payloads. Every output must also be inert: no "<" or ">" left at all, so no tag (and no
 * event handler or javascript: URL inside one) can survive.
 */
const cases: [input: string, expected: string, note: string][] = [
  // Plain text survives; "<" that cannot open a tag is escaped exactly once; "&" is never touched.
  ['Tom & Jerry <3', 'Tom & Jerry &lt;3', 'not double-escaped, "<3" not lost'],
  ['a < b > c', 'a &lt; b &gt; c', 'comparison operators become entities'],
  ['5 > 3 && 2 < 4', '5 &gt; 3 && 2 &lt; 4', '"&&" left alone'],
  ['<3 <3 <3', '&lt;3 &lt;3 &lt;3', 'every "<3"'],
  ['1<2>3', '1&lt;2&gt;3', 'digits after "<" are text'],
  ['<', '&lt;', 'a lone "<"'],
  ['>', '&gt;', 'a lone ">"'],
  ['<>', '&lt;&gt;', 'an empty pair'],
  ['< /', '&lt; /', '"<" then a space'],
  ['  spaced  ', 'spaced', 'trimmed'],
  ['Привет 👋 <3', 'Привет 👋 &lt;3', 'unicode text intact'],
  [
    '&lt;script&gt;alert(1)&lt;/script&gt;',
    '&lt;script&gt;alert(1)&lt;/script&gt;',
    'already-escaped text unchanged',
  ],
  [
    '&#60;script&#62;alert(1)&#60;/script&#62;',
    '&#60;script&#62;alert(1)&#60;/script&#62;',
    'decimal entities',
  ],
  ['&#x3C;img src=x onerror=alert(1)&#x3E;', '&#x3C;img src=x onerror=alert(1)&#x3E;', 'hex entities'],
  ['%3Cscript%3Ealert(1)%3C/script%3E', '%3Cscript%3Ealert(1)%3C/script%3E', 'URL-encoded is just text'],
  ["Robert'); DROP TABLE comments;--", "Robert'); DROP TABLE comments;--", 'SQL metacharacters'],
  ["\\' OR 1=1 --", "\\' OR 1=1 --", 'backslash and quote'],
  ['%_\\', '%_\\', 'LIKE wildcards'],
  ['$1 $$ ::text', '$1 $$ ::text', 'placeholders and casts'],

  // Tags go, their text stays; script and style go with their contents.
  ['<b>bold</b> text', 'bold text', 'harmless tags stripped too'],
  ['<div onclick="x">hi</div>', 'hi', 'event handler attribute'],
  ['<script>alert(1)</script>hi', 'hi', 'script body dropped'],
  ['<ScRiPt>alert(1)</sCrIpT>', '', 'mixed-case script'],
  ['<sCrIpT >alert(1)</ScRiPt >', '', 'mixed case with spaces before ">"'],
  ['<script\n>alert(1)</script\n>x', 'x', 'newline inside the tags'],
  ['</script><script>alert(1)</script>', '', 'stray closing tag first'],
  ['<svg><script>alert(1)</script></svg>', '', 'script inside svg'],
  ['<style>body{}</style>x', 'x', 'style body dropped'],
  ['<STYLE>@import"javascript:alert(1)";</STYLE>ok', 'ok', 'upper-case style with javascript: import'],
  ['<script>x</script>Hello <b>there</b>', 'Hello there', 'script then markup'],
  ['<img src=x onerror=alert(1)>', '', 'img onerror'],
  ['<img src=x onerror=alert(1)>Bye', 'Bye', 'img onerror then text'],
  ['<img src=x>', '', 'a bare image'],
  // No ">" anywhere after it: the tokenizer emits no tag (eof-in-tag), so it is text, kept inert.
  ['<img src=x onerror=alert(1)', '&lt;img src=x onerror=alert(1)', 'unterminated img'],
  ['<img src=x onerror=alert(1)//', '&lt;img src=x onerror=alert(1)//', 'unterminated img with comment'],
  ['<IMG SRC=JaVaScRiPt:alert(1)>', '', 'mixed-case javascript: src'],
  ['<IMG SRC="jav\tascript:alert(1)">', '', 'tab inside javascript:'],
  ['<img src=x:alert(alt) onerror=eval(src) alt=0>', '', 'eval through attributes'],
  ['<a href="javascript:alert(1)">x</a>', 'x', 'javascript: link'],
  ['<a href="&#106;avascript:alert(1)">click</a>', 'click', 'entity-encoded javascript: link'],
  ['<a href="jav&#x09;ascript:alert(1)">x</a>', 'x', 'encoded tab in javascript:'],
  ['<a/href="javascript:alert(1)">x', 'x', 'slash instead of a space'],
  ['<iframe srcdoc="<script>alert(1)</script>"></iframe>', '', 'iframe srcdoc'],
  ['<svg onload=alert(1)>', '', 'svg onload'],
  ['<svg/onload=alert(1)>', '', 'svg/onload'],
  ['<details open ontoggle=alert(1)>', '', 'details ontoggle'],
  ['<body onload=alert(1)>', '', 'body onload'],
  ['<input autofocus onfocus=alert(1)>', '', 'autofocus onfocus'],
  ['<marquee onstart=alert(1)>m</marquee>', 'm', 'marquee onstart'],
  ['<math><mi xlink:href="javascript:alert(1)">x</mi></math>', 'x', 'MathML xlink:href'],
  ['<!--<img src=x onerror=alert(1)>-->', '', 'payload inside a comment'],
  ['a<!--b-->c', 'ac', 'comment removed, text kept'],
  ['<!-- x', '&lt;!-- x', 'unterminated comment: no ">", so text'],
  ['<!-- a > b', '', 'unterminated comment with a ">" later: markup, hidden to the end as a browser would'],
  ['<?xml version="1.0"?><x>', '&lt;x&gt;', 'processing instruction gone; <x> is no element, so text'],
  ['<![CDATA[<script>alert(1)</script>]]>', '&lt;![CDATA[]]&gt;', 'CDATA section'],
  [
    '<scr\u0000ipt>alert(1)</script>',
    '&lt;scr\u0000ipt&gt;alert(1)',
    'NUL splitting the tag name: no element',
  ],

  // Mutation XSS: strings that re-form a tag after a naive filter or a second parse.
  ['<scr<script>ipt>alert(1)</script>', '&lt;scr', 'nested tag that re-forms <script>'],
  ['<<img src=x onerror=alert(1)>>', '&lt;&gt;', 'doubled angle brackets'],
  ['<<script>alert(1)//<</script>', '&lt;', 'doubled "<" before script'],
  ['<img """><script>alert(1)</script>">', '"&gt;', 'quote confusion'],
  ['<noscript><p title="</noscript><img src=x onerror=alert(1)>">', '', 'noscript attribute breakout'],
  [
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    '[removed]',
    'svg/style namespace confusion',
  ],
  ['<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>', '[removed]', 'MathML mglyph/style'],
  [
    '<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>',
    '[removed]',
    'DOMPurify 2.0.0 bypass shape',
  ],
  // An unclosed script/style: xss keeps what follows as text and leaves the marker "[removed]".
  ['<script>alert(1)', '[removed]alert(1)', 'unclosed script'],
  ['<script>a</script', '[removed]a&lt;/script', 'unterminated closing script tag: its "<" is text'],
  ['<style>x</style', '[removed]x&lt;/style', 'unterminated closing style tag: its "<" is text'],
  // Issue 12 #15: a "<" that is not markup is text, kept and escaped once; only elements are removed.
  ['x<y', 'x&lt;y', 'no ">" after "<y": not a tag'],
  ['if a<b then c', 'if a&lt;b then c', 'a known element name, but no ">": text'],
  ['use <stdio.h> please', 'use &lt;stdio.h&gt; please', 'a tag to the tokenizer, but no element'],
  ['List<T> and Map<K, V>', 'List&lt;T&gt; and Map&lt;K, V&gt;', 'generics'],
  [
    '<my-widget onclick=x>hi</my-widget>',
    '&lt;my-widget onclick=x&gt;hi&lt;/my-widget&gt;',
    'custom element: inert text',
  ],
  ['a<b and c>d', 'ad', 'a real <b …> tag, as a browser reads it'],
  ['<a', '&lt;a', 'a tag name alone'],
  ['</', '&lt;/', 'a closing-tag start alone'],
  ['<!', '&lt;!', 'a declaration start alone'],
  ['<?', '&lt;?', 'a processing-instruction start alone'],
]

t.test('classic payloads: exact outputs', async (t) => {
  for (const [input, expected, note] of cases) {
    t.equal(sanitizeComment(input), expected, `${note}: ${JSON.stringify(input)}`)
  }
})

t.test('every output is inert: no "<" or ">" left, so no tag, handler or javascript: URL', async (t) => {
  for (const [input, , note] of cases) {
    const out = sanitizeComment(input)
    t.notOk(out.includes('<'), `no "<" (${note}): ${JSON.stringify(out)}`)
    t.notOk(out.includes('>'), `no raw ">" (${note}): ${JSON.stringify(out)}`)
    t.notMatch(out, /<[^>]*(onerror=|javascript:)/i, `no handler or javascript: in a tag (${note})`)
  }
})

t.test('sanitizing is idempotent: a stored body sent back unchanged is stored unchanged', async (t) => {
  for (const [input, , note] of cases) {
    const once = sanitizeComment(input)
    t.equal(sanitizeComment(once), once, note)
  }
})

t.test('the output never grows beyond the database limit for a 2000-character body', async (t) => {
  // Each "<" or ">" becomes four characters; the comments table allows 10000.
  for (const ch of ['<', '>', '<>', '< ']) {
    const input = ch.repeat(2000 / ch.length)
    const out = sanitizeComment(input)
    t.ok(out.length <= 10000, `${JSON.stringify(ch)} x ${2000 / ch.length}: ${out.length} characters`)
    t.notOk(out.includes('<'))
  }
  t.equal(sanitizeComment('<'.repeat(2000)), '&lt;'.repeat(2000), 'exactly four characters each')
})
