import { fuzzGroup } from './harness.js'

/** Property-based fuzzing of the operations tagged `comments` (issue 12; see harness.ts). */
fuzzGroup('fuzz: comments', (op) => op.tag === 'comments')
