// `npm start` / `npm run cli`: run the compiled entry point, building first when dist/ is stale.
import { buildIfStale } from './build-if-stale.mjs'

const [entry, ...args] = process.argv.slice(2)
if (entry !== 'server' && entry !== 'cli') {
  console.error('usage: node scripts/run.mjs server|cli [args]')
  process.exit(2)
}
buildIfStale()
process.argv = [process.argv[0], new URL(`../dist/${entry}.js`, import.meta.url).pathname, ...args]
await import(`../dist/${entry}.js`)
