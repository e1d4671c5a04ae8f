import { fuzzGroup } from './harness.js'

/** Property-based fuzzing of the operations tagged `mfa` (issue 12; see harness.ts). */
fuzzGroup('fuzz: mfa', (op) => op.tag === 'mfa')
