import { fuzzGroup } from './harness.js'
import { isSessionOperation } from './openapi.js'

/** Property-based fuzzing of sign-up, sign-in, step-up, refresh and the key set (issue 12; see harness.ts). */
fuzzGroup('fuzz: auth', (op) => op.tag === 'auth' && !isSessionOperation(op))
