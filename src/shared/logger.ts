import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** pino logger for a component; level from PFLEX_LOG_LEVEL (default info). */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  return pino({
    name: component,
    level: process.env.PFLEX_LOG_LEVEL ?? 'info',
    ...options,
  });
}
