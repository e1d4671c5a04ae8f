import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import createClient from 'openapi-fetch'
import openapiTS, { astToString } from 'openapi-typescript'
import t from 'tap'
import ts from 'typescript'
import { build, PROBLEM_TYPE, register, TEST_PASSWORD, uniqueName } from '../helper.js'

/**
 * The document generates a usable typed client: openapi-typescript turns it into types, the
 * project's TypeScript checks a small client against them (mistakes included, which must fail),
 * and the same client drives sign-in, a new comment and the list against a listening server.
 */

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))

/** The client a consumer would write. `import type` only: at run time it is handed createClient. */
const CLIENT = `
import type createClient from 'openapi-fetch'
import type { components, paths } from './api.js'

type Comment = components['schemas']['Comment']
type Problem = components['schemas']['Problem']

export async function flow(create: typeof createClient, baseUrl: string, username: string, password: string) {
  const api = create<paths>({ baseUrl })
  const signIn = await api.POST('/api/auth/login', { body: { username, password } })
  if (!signIn.data) throw new Error(\`login: \${signIn.error.detail}\`)
  if ('mfaRequired' in signIn.data) throw new Error('unexpected second factor')
  const me: string = signIn.data.user.username
  const headers = { authorization: \`Bearer \${signIn.data.accessToken}\` }

  const created = await api.POST('/api/comments', { body: { body: 'Typed <b>hello</b> <3' }, headers })
  if (!created.data) throw new Error(\`create: \${created.error.detail}\`)
  const comment: Comment = created.data

  // No limit: it has a default, so the generated type leaves it optional.
  const listed = await api.GET('/api/comments', { params: { query: { author: me } } })
  if (!listed.data) throw new Error(\`list: \${listed.error.detail}\`)
  const nextCursor: string | null = listed.data.nextCursor

  const missing = await api.GET('/api/comments/{id}', {
    params: { path: { id: '00000000-0000-4000-8000-000000000000' } },
  })
  const problem: Problem | undefined = missing.error
  return {
    created: { status: created.response.status, comment },
    listed: { items: listed.data.items, nextCursor },
    missing: { status: missing.response.status, type: missing.response.headers.get('content-type'), problem },
  }
}

/** Never called: the compiler must refuse each line, or the generated types are too loose. */
export function misuse(api: ReturnType<typeof createClient<paths>>, comment: Comment) {
  // @ts-expect-error a comment's body is a string
  void api.POST('/api/comments', { body: { body: 42 } })
  // @ts-expect-error limit is an integer
  void api.GET('/api/comments', { params: { query: { limit: 'ten' } } })
  // @ts-expect-error login needs a password
  void api.POST('/api/auth/login', { body: { username: 'alice' } })
  // @ts-expect-error there is no such path
  void api.GET('/api/nothing')
  // @ts-expect-error a comment has no email
  return comment.email
}
`

/** Type errors of the client and the generated types together, as the compiler words them. */
function typeErrors(dir: string): string[] {
  const { options, errors } = ts.convertCompilerOptionsFromJson(
    {
      strict: true,
      noEmit: true,
      target: 'ES2022',
      module: 'ESNext',
      moduleResolution: 'Bundler',
      lib: ['ES2022', 'DOM'],
      types: [],
      skipLibCheck: true,
      paths: { 'openapi-fetch': [join(root, 'node_modules/openapi-fetch/dist/index.d.mts')] },
    },
    dir,
  )
  if (errors.length) throw new Error(ts.flattenDiagnosticMessageText(errors[0]?.messageText, '\n'))
  const program = ts.createProgram([join(dir, 'client.ts')], options)
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file
      ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
      : ''
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`
  })
}

t.test('a client generated from the document type-checks and drives a real flow', async (t) => {
  const app = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const username = uniqueName('client')
  await register(app, username)

  const dir = mkdtempSync(join(tmpdir(), 'bulwark-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const document = await (await fetch(`${baseUrl}/docs/json`)).json()
  writeFileSync(
    join(dir, 'api.d.ts'),
    astToString(await openapiTS(document as Parameters<typeof openapiTS>[0])),
  )
  writeFileSync(join(dir, 'client.ts'), CLIENT)
  t.same(typeErrors(dir), [], 'the client type-checks, and every misuse is refused')

  const js = ts.transpileModule(CLIENT, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText
  writeFileSync(join(dir, 'client.mjs'), js)
  const client = await import(pathToFileURL(join(dir, 'client.mjs')).href)
  const result = await client.flow(createClient, baseUrl, username, TEST_PASSWORD)
  t.equal(result.created.status, 201)
  t.match(result.created.comment, { body: 'Typed hello &lt;3', author: { username } })
  t.same(
    result.listed.items.map((c: { id: string }) => c.id),
    [result.created.comment.id],
    'the list has the comment',
  )
  t.equal(result.listed.nextCursor, null)
  t.equal(result.missing.status, 404)
  t.match(result.missing.type, PROBLEM_TYPE, 'the error arrives as problem+json')
  t.match(result.missing.problem, { status: 404, type: 'about:blank', requestId: String })
})

t.test('the type check fails when the client misuses the API', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(
    join(dir, 'api.d.ts'),
    'export interface paths {}\nexport interface components { schemas: {} }\n',
  )
  writeFileSync(
    join(dir, 'client.ts'),
    "import type { paths } from './api.js'\nexport const n: number = 'x'\n",
  )
  t.match(typeErrors(dir).join('\n'), /client\.ts:2 Type 'string' is not assignable to type 'number'/)
})
