import { fuzzGroup } from './harness.js'
import { isSessionOperation } from './openapi.js'

/** Property-based fuzzing of sign-out and the session list (issue 12; see harness.ts). */
fuzzGroup('fuzz: auth sessions', isSessionOperation)
