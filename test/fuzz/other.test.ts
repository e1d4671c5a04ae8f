import { fuzzGroup } from './harness.js'
import { GROUPED_TAGS } from './openapi.js'

/** Property-based fuzzing of every operation no other fuzz file takes: health and whatever comes next. */
fuzzGroup('fuzz: other', (op) => !GROUPED_TAGS.includes(op.tag))
