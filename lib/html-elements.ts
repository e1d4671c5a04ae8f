/**
 * The element names of HTML (WHATWG HTML Living Standard, index of elements, with the obsolete ones
 * browsers still parse), SVG 2 and MathML Core, lower-cased. The comment sanitizer removes tags
 * with these names as markup; a "tag" with any other name (`<stdio.h>`, `<T>`) is kept as text.
 */
const HTML = `a abbr address area article aside audio b base bdi bdo blockquote body br button canvas
caption cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset
figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins
kbd label legend li link main map mark menu meta meter nav noscript object ol optgroup option
output p param picture pre progress q rp rt ruby s samp script search section select
selectedcontent slot small source span strong style sub summary sup table tbody td template
textarea tfoot th thead time title tr track u ul var video wbr`

/** Obsolete or non-conforming, but still given meaning by the HTML parser (HTML §16, §13.2.6). */
const OBSOLETE = `acronym applet basefont bgsound big blink center dir font frame frameset image
isindex keygen listing marquee menuitem multicol nextid nobr noembed noframes plaintext rb rtc
spacer strike tt xmp`

const SVG = `svg a animate animatemotion animatetransform circle clippath defs desc discard ellipse
feblend fecolormatrix fecomponenttransfer fecomposite feconvolvematrix fediffuselighting
fedisplacementmap fedistantlight fedropshadow feflood fefunca fefuncb fefuncg fefuncr
fegaussianblur feimage femerge femergenode femorphology feoffset fepointlight
fespecularlighting fespotlight fetile feturbulence filter foreignobject g image line
lineargradient marker mask metadata mpath path pattern polygon polyline radialgradient rect
script set stop style switch symbol text textpath title tspan use view animatecolor altglyph
altglyphdef altglyphitem glyph glyphref hkern vkern font-face cursor tref`

const MATHML = `math maction annotation annotation-xml menclose merror mfenced mfrac mglyph mi
mmultiscripts mn mo mover mpadded mphantom mprescripts mroot mrow ms mspace msqrt mstyle msub
msubsup msup mtable mtd mtext mtr munder munderover none semantics malignmark`

export const ELEMENT_NAMES: ReadonlySet<string> = new Set(
  [HTML, OBSOLETE, SVG, MATHML].join(' ').split(/\s+/),
)
