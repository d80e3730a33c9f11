import { z } from 'zod';
import { NODE_ID_PATTERN } from '../schema/hlc';
import { ChangeResultSchema, RowSchema } from './writes';
import { ExtractedMigrationSchema } from '../schema/migration';
import { PositionSchema } from '../rules/position';
import { UUID_PATTERN } from '../rules/validation';
import { SubscriptionRefSchema } from '../schema/subscription';

/**
 * The sync protocol over WebSocket (`/sync`): JSON text frames, one message each, described for
 * people in docs/protocol.md. Every message a client sends is validated by one of these schemas.
 */
export const PROTOCOL_VERSION = 1;

/** How many subscriptions one client may hold. */
export const MAX_SUBSCRIPTIONS = 1_000;

export const HelloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  token: z.string().min(1).max(8192),
  clientId: z.string().regex(NODE_ID_PATTERN, 'a client id is 1-64 letters, digits, "-" or "_"'),
  /** The latest migration this client has applied; null for a new database. */
  schemaVersion: z.string().max(200).nullable(),
  /** The last position the client stored; null to hydrate from a snapshot. */
  position: PositionSchema.nullable(),
  /** The workspaces the replica holds at that position: the server removes those the user lost and hydrates those gained meanwhile. */
  workspaces: z.array(z.string().regex(UUID_PATTERN, 'a workspace id is a uuid')).max(10_000).optional(),
  /**
   * The subscriptions the replica holds at that position (for a new replica: the ones to hydrate).
   * Without it the client holds its whole scope.
   */
  subscriptions: z.array(SubscriptionRefSchema).max(MAX_SUBSCRIPTIONS).optional(),
  /**
   * The client's own changes up to here are to be streamed to it as data too: it stored rows from the
   * answers to its writes, and then a removal the stream brought took some of them (a foreign key's
   * cascade) before the stream passed those writes. Sent only when that happened.
   */
  echoThrough: PositionSchema.optional(),
});

export const AckSchema = z.strictObject({ type: z.literal('sync_ack'), position: PositionSchema });
export const VerifySchema = z.strictObject({ type: z.literal('sync_verify'), position: PositionSchema });
export const WriteSchema = z.strictObject({
  type: z.literal('write'),
  requestId: z.string().min(1).max(100),
  changes: z.array(z.unknown()).min(1),
});
export const ResnapshotRequestSchema = z.strictObject({ type: z.literal('resnapshot') });
/** A heartbeat: the server answers `pong` at once, so a client learns within seconds that a server went silent. */
export const PingSchema = z.strictObject({ type: z.literal('ping') });

/** Adds a subscription (a client that holds subscriptions only): answered by its snapshot, or `subscription_refused`. */
export const SubscribeSchema = z.strictObject({ type: z.literal('subscribe'), subscription: SubscriptionRefSchema });
/** Drops a subscription: answered by `unsubscribed`, after which nothing of it is sent. */
export const UnsubscribeSchema = z.strictObject({ type: z.literal('unsubscribe'), subscription: SubscriptionRefSchema });

export const ClientMessageSchema = z.discriminatedUnion('type', [
  HelloSchema,
  AckSchema,
  VerifySchema,
  WriteSchema,
  ResnapshotRequestSchema,
  PingSchema,
  SubscribeSchema,
  UnsubscribeSchema,
]);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;
export type Hello = z.infer<typeof HelloSchema>;

export const SYNC_ERROR_CODES = ['bad_message', 'unauthenticated', 'client_id_taken', 'schema_ahead', 'ack_unsent', 'not_ready', 'write_failed', 'flood', 'whole_scope'] as const;
export type SyncErrorCode = (typeof SYNC_ERROR_CODES)[number];

/** One change as a client receives it: the full row after the change, or the old row of a delete. */
export const StreamChangeSchema = z.strictObject({
  table: z.string(),
  op: z.enum(['insert', 'update', 'delete', 'truncate']),
  /** The row after an insert or update (tombstones are updates with deleted_at set). */
  data: RowSchema.optional(),
  /** The row before a delete. */
  old: RowSchema.optional(),
});
export type StreamChange = z.infer<typeof StreamChangeSchema>;

/** Every message a server sends; clients validate what they receive with it. */
export const ServerMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('welcome'),
    userId: z.string(),
    clientId: z.string(),
    schemaVersion: z.string(),
    /** Migrations the client lacks, in order, to apply before anything else. */
    migrations: z.array(ExtractedMigrationSchema),
    /** Migrations the server reverted: a client that applied any rolls them back (newest first) before applying `migrations`; a snapshot follows. */
    revert: z.array(z.string()).optional(),
    workspaces: z.array(z.string()),
  }),
  /** `replace`: the snapshot replaces everything the client has from the server (else it adds `workspaces`). */
  z.strictObject({
    type: z.literal('snapshot_start'),
    position: PositionSchema,
    total: z.record(z.string(), z.number().int().nonnegative()),
    workspaces: z.array(z.string()),
    replace: z.boolean(),
    /** The subscriptions whose rows the snapshot brings (a client that holds subscriptions). */
    subscriptions: z.array(SubscriptionRefSchema).optional(),
  }),
  z.strictObject({ type: z.literal('snapshot_batch'), table: z.string(), rows: z.array(RowSchema), sent: z.number().int(), total: z.number().int() }),
  z.strictObject({ type: z.literal('snapshot_end'), position: PositionSchema }),
  z.strictObject({ type: z.literal('changes'), position: PositionSchema, changes: z.array(StreamChangeSchema) }),
  z.strictObject({ type: z.literal('scope_removed'), workspaceId: z.string(), position: PositionSchema }),
  z.strictObject({ type: z.literal('up_to_date'), position: PositionSchema }),
  /** A subscription the client asked for (or resumed) that it cannot hold: nothing of it is sent; remove what only it held. */
  z.strictObject({
    type: z.literal('subscription_refused'),
    subscription: SubscriptionRefSchema,
    code: z.enum(['unknown_subscription', 'invalid_params', 'forbidden']),
    message: z.string(),
  }),
  /** The answer to `unsubscribe`: nothing of the subscription follows it. */
  z.strictObject({ type: z.literal('unsubscribed'), subscription: SubscriptionRefSchema }),
  z.strictObject({ type: z.literal('resnapshot'), reason: z.enum(['history_pruned', 'position_ahead', 'requested', 'schema_reverted']), message: z.string() }),
  z.strictObject({ type: z.literal('write_result'), requestId: z.string(), results: z.array(ChangeResultSchema) }),
  /** `requestId`: the write request an error answers (`write_failed`). */
  z.strictObject({ type: z.literal('error'), code: z.enum(SYNC_ERROR_CODES), message: z.string(), requestId: z.string().optional() }),
  z.strictObject({ type: z.literal('pong') }),
]);
export type ServerMessage = z.infer<typeof ServerMessageSchema>;

/** WebSocket close codes the server uses (4000-4999 are the application's). */
export const CloseCodes = {
  /** A message that breaks the protocol beyond repair (e.g. no hello first). */
  protocolViolation: 4400,
  /** No token, a bad one, or one that expired during the session. */
  unauthenticated: 4401,
  /** The client id belongs to another user's client. */
  clientIdTaken: 4403,
  /** No hello within the handshake time. */
  handshakeTimeout: 4408,
  /** The client's schema is newer than the server's. */
  schemaAhead: 4409,
  /** The client stopped reading its snapshot (it may reconnect and resume; the snapshot starts over). */
  stalled: 4410,
  /** Too many messages, or too many bad ones. */
  flood: 4429,
  /** The server is shutting down (standard "going away"). */
  goingAway: 1001,
  /**
   * The server failed to serve the session (e.g. its database restarted): the client reconnects
   * and resumes from its stored position; unanswered writes are sent again (they are idempotent).
   */
  internalError: 1011,
} as const;
