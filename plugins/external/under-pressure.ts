import underPressure, { type FastifyUnderPressureOptions } from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import { unavailable } from '../../lib/errors.js'

const RETRY_AFTER_SECONDS = 10

/**
 * Load shedding: past the event-loop delay or memory thresholds every request (but /health/live,
 * which opts out) gets a 503 problem with Retry-After, so the gateway backs off. 0 disables a check.
 */
export const autoConfig = (app: FastifyInstance): FastifyUnderPressureOptions => ({
  maxEventLoopDelay: app.config.UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
  maxHeapUsedBytes: app.config.UNDER_PRESSURE_MAX_HEAP_USED_BYTES,
  maxRssBytes: app.config.UNDER_PRESSURE_MAX_RSS_BYTES,
  sampleInterval: app.config.UNDER_PRESSURE_SAMPLE_INTERVAL_MS,
  retryAfter: RETRY_AFTER_SECONDS,
  exposeStatusRoute: false,
  pressureHandler: async function overloaded(request, _reply, type) {
    request.log.warn({ event: 'server.under_pressure', type }, 'shedding load')
    app.metrics?.shed(type)
    throw unavailable('overloaded', 'The service is overloaded. Try again later.', RETRY_AFTER_SECONDS)
  },
})

export default underPressure
