import { fuzzGroup } from './harness.js'

/** Property-based fuzzing of the operations tagged `users` (issue 12; see harness.ts). */
fuzzGroup('fuzz: users', (op) => op.tag === 'users')
