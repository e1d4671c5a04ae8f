// Raw twin: bare node:http + postgres.js running the SQL the service runs for a route, with the
// service's pool settings, database and runtime role, and no security stack (no token, session
// check, rate limit, validation, sanitizing, encryption, headers or logging). The ceiling for the route.
//   GET  /me               the one statement of GET /api/users/me: the session check joined with the
//                          user row (repositories/sessions.ts findPrincipal)
//   POST /comments         the insert of POST /api/comments (repositories/comments.ts insertComment)
//   GET  /comments?limit=N the list select of GET /api/comments (repositories/comments.ts listComments)
import { createServer } from 'node:http'
import postgres from 'postgres'

const userId = process.env.BENCH_USER_ID
const sessionId = process.env.BENCH_SESSION_ID
if (!process.env.DATABASE_URL || !userId || !sessionId)
  throw new Error('DATABASE_URL, BENCH_USER_ID and BENCH_SESSION_ID are required')

// As plugins/app/db.ts createSql with the service's defaults (DATABASE_POOL_MAX=10 and the timeouts).
const sql = postgres(process.env.DATABASE_URL, {
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
  connect_timeout: 5,
  idle_timeout: 60,
  transform: postgres.camel,
  onnotice: () => {},
  connection: {
    application_name: 'bulwark-bench-twin',
    statement_timeout: 5000,
    lock_timeout: 2000,
    idle_in_transaction_session_timeout: 10_000,
  },
})

const columns = sql`
  c.id, c.body, c.author_id, u.username as author_username, c.created_at, c.updated_at,
  c.created_at::text as cursor_at
`
const toComment = (row) => ({
  id: row.id,
  body: row.body,
  author: { id: row.authorId, username: row.authorUsername },
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
})

async function me() {
  const [row] = await sql`
    select u.id as user_id, u.username, u.role, s.id as session_id, s.auth_time, s.amr,
      u.email as sealed_email, u.created_at as user_created_at
    from sessions s join users u on u.id = s.user_id
    where s.id = ${sessionId} and s.user_id = ${userId}
      and s.revoked_at is null and s.expires_at > now() and s.idle_expires_at > now()
      and not u.disabled
  `
  if (!row) return [404, { error: 'not found' }]
  // The email stays as stored (encrypted): decrypting it is part of the stack the twin leaves out.
  return [
    200,
    { user: { id: row.userId, username: row.username, role: row.role, createdAt: row.userCreatedAt } },
  ]
}

async function createComment(request) {
  const chunks = []
  for await (const chunk of request) chunks.push(chunk)
  const { body } = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const [row] = await sql`
    with c as (insert into comments (author_id, body) values (${userId}, ${body}) returning *)
    select ${columns} from c join users u on u.id = c.author_id
  `
  return [201, toComment(row)]
}

async function listComments(url) {
  const limit = Number(url.searchParams.get('limit') ?? 20)
  const rows = await sql`
    select ${columns}
    from comments c join users u on u.id = c.author_id
    where true
    order by c.created_at desc, c.id desc
    limit ${limit + 1}
  `
  return [200, { items: rows.slice(0, limit).map(toComment), nextCursor: null }]
}

const server = createServer(async (request, response) => {
  try {
    const url = new URL(request.url, 'http://twin')
    let result = [404, { error: 'not found' }]
    if (request.method === 'GET' && url.pathname === '/me') result = await me()
    else if (request.method === 'POST' && url.pathname === '/comments') result = await createComment(request)
    else if (request.method === 'GET' && url.pathname === '/comments') result = await listComments(url)
    response.writeHead(result[0], { 'content-type': 'application/json; charset=utf-8' })
    response.end(JSON.stringify(result[1]))
  } catch (error) {
    console.error(error)
    response.writeHead(500).end()
  }
})
// Connect the pool's first connection before announcing, as the service does at boot.
await sql`select 1`
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }))
})
process.on('SIGTERM', () => {
  server.close()
  sql.end({ timeout: 5 }).then(() => process.exit(0))
})
