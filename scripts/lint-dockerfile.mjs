// `npm run lint:dockerfile`: the Dockerfile through dockerfile-utils (the maintained linter behind
// the Docker language server). Its own CLI fails only on errors; here a warning fails too.
import { readFileSync } from 'node:fs'
import { validate } from 'dockerfile-utils'

const file = process.argv[2] ?? 'Dockerfile'
const problems = validate(readFileSync(file, 'utf8'))
for (const p of problems) {
  console.log(`${file}:${p.range.start.line + 1}: ${p.severity === 1 ? 'error' : 'warning'}: ${p.message}`)
}
console.log(`${file}: ${problems.length} problem(s)`)
process.exit(problems.length > 0 ? 1 : 0)
