import { STATUS_CODES } from 'node:http'

export interface FieldError {
  path: string
  message: string
}

export interface AppErrorOptions {
  /** Short stable slug that becomes the problem `type` (urn:bulwark:problem:<slug>). */
  type?: string
  errors?: FieldError[]
  headers?: Record<string, string>
}

/**
 * A failure the client may be told about: the one error handler turns it into
 * application/problem+json (RFC 9457) with this status and detail.
 */
export class AppError extends Error {
  override name = 'AppError'
  readonly statusCode: number
  readonly type: string | undefined
  readonly errors: FieldError[] | undefined
  readonly headers: Record<string, string>

  constructor(statusCode: number, detail: string, options: AppErrorOptions = {}) {
    super(detail)
    this.statusCode = statusCode
    this.type = options.type
    this.errors = options.errors
    this.headers = options.headers ?? {}
  }
}

export const statusTitle = (status: number): string => STATUS_CODES[status] ?? 'Error'
