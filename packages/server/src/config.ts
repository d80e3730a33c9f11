import { z } from 'zod';
import { formatIssues } from '@walsync/db/server';

/** The development JWT secret: fine on a laptop, refused in production. */
export const DEV_JWT_SECRET = 'walsync-development-secret-do-not-use-in-production';

/** A whole number in [min, max], with a message that names the variable. */
const wholeNumber = (name: string, min: number, max: number) => {
  const message = `${name} must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
};

const EnvSchema = z.object({
  DATABASE_URL: z.string().optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  NODE_ENV: z.string().optional(),
  WALSYNC_JWT_SECRET: z.string().min(16, 'WALSYNC_JWT_SECRET must be at least 16 characters').optional(),
  WALSYNC_DATA_DIR: z.string().optional(),
  WALSYNC_SLOT: z.string().regex(/^[a-z0-9_]{1,63}$/, 'WALSYNC_SLOT must be a lowercase slot name').default('walsync'),
  WALSYNC_MAX_CLOCK_SKEW_MS: z.coerce.number().int().min(0).default(60_000),
  WALSYNC_SNAPSHOTS_PER_USER: wholeNumber('WALSYNC_SNAPSHOTS_PER_USER', 1, 100).default(2),
  WALSYNC_SNAPSHOTS_PER_PROCESS: wholeNumber('WALSYNC_SNAPSHOTS_PER_PROCESS', 1, 100).default(4),
  WALSYNC_SNAPSHOT_STALL_MS: wholeNumber('WALSYNC_SNAPSHOT_STALL_MS', 1_000, 86_400_000).default(30_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface ServerConfig {
  databaseUrl: string | undefined;
  port: number;
  host: string;
  jwtSecret: string;
  usingDevSecret: boolean;
  dataDir: string | undefined;
  slotName: string;
  maxClockSkewMs: number;
  snapshots: { perUser: number; perProcess: number; stallMs: number };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  nodeEnv: string | undefined;
}

/** Reads and checks the environment; a bad value is an error that names the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`Invalid configuration: ${formatIssues(parsed.error, 'environment')}`);
  }
  const values = parsed.data;
  const usingDevSecret = !values.WALSYNC_JWT_SECRET;
  if (usingDevSecret && values.NODE_ENV === 'production') {
    throw new Error('Invalid configuration: WALSYNC_JWT_SECRET must be set when NODE_ENV=production (the development secret is refused).');
  }
  if (values.WALSYNC_JWT_SECRET === DEV_JWT_SECRET && values.NODE_ENV === 'production') {
    throw new Error('Invalid configuration: the development JWT secret is refused when NODE_ENV=production.');
  }
  return {
    databaseUrl: values.DATABASE_URL?.trim() || undefined,
    port: values.PORT,
    host: values.HOST,
    jwtSecret: values.WALSYNC_JWT_SECRET ?? DEV_JWT_SECRET,
    usingDevSecret,
    dataDir: values.WALSYNC_DATA_DIR,
    slotName: values.WALSYNC_SLOT,
    maxClockSkewMs: values.WALSYNC_MAX_CLOCK_SKEW_MS,
    snapshots: { perUser: values.WALSYNC_SNAPSHOTS_PER_USER, perProcess: values.WALSYNC_SNAPSHOTS_PER_PROCESS, stallMs: values.WALSYNC_SNAPSHOT_STALL_MS },
    logLevel: values.LOG_LEVEL,
    nodeEnv: values.NODE_ENV,
  };
}
