import { fuzzGroup } from './harness.js'

/** Property-based fuzzing of the operations tagged `admin` (issue 12; see harness.ts). */
fuzzGroup('fuzz: admin', (op) => op.tag === 'admin')
