// The Express recipe Bulwark grew from (docs: /work/shared/context/securing-node-apis.md, in our own
// code): helmet, express-rate-limit on /api/, jsonwebtoken's verify with the secret, winston logging
// JSON to the console. GET /api/protected answers the token's user. BENCH_JWT_KEY=keyobject passes
// the secret as a crypto KeyObject instead of a string (jsonwebtoken then skips parsing it as a PEM key).
import { createSecretKey, randomBytes } from 'node:crypto'
import express from 'express'
import rateLimit from 'express-rate-limit'
import helmet from 'helmet'
import jwt from 'jsonwebtoken'
import winston from 'winston'

const secretString = randomBytes(32).toString('base64')
const secret =
  process.env.BENCH_JWT_KEY === 'keyobject' ? createSecretKey(Buffer.from(secretString)) : secretString

const logger = winston.createLogger({
  level: 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console()],
})

const app = express()
app.use(helmet())
app.use(express.json())
// Raised for the load test, as the service's are; still counted per address on every request.
const apiLimiter = rateLimit({
  windowMs: 15 * 60 * 1000,
  limit: Number(process.env.BENCH_RATE_LIMIT_MAX ?? 1_000_000),
  standardHeaders: true,
  legacyHeaders: false,
})
app.use('/api/', apiLimiter)

function authenticateToken(req, res, next) {
  const header = req.headers.authorization
  const token = header?.split(' ')[1]
  if (!token) return res.status(401).json({ message: 'No token provided' })
  jwt.verify(token, secret, (err, user) => {
    if (err) return res.status(401).json({ message: 'Invalid or expired token' })
    req.user = user
    next()
  })
}

app.get('/api/protected', authenticateToken, (req, res) => {
  logger.info(`User ${req.user.username} accessed /api/protected`)
  res.json({ message: `Welcome ${req.user.username}, you accessed a protected route!` })
})

const token = jwt.sign({ userId: 1, username: 'bench', role: 'user' }, secret, { expiresIn: '1h' })
const server = app.listen(0, '127.0.0.1', () => {
  // The announcement goes to stdout before any log line.
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}`, token }))
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
