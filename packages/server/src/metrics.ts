import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The server's Prometheus metrics, on a registry per server instance. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'walsync_process_' });
  return {
    registry,
    capturedChanges: new Counter({ name: 'walsync_changes_captured_total', help: 'Changes written to change_history by this process', registers: [registry] }),
    captureBatchSeconds: new Histogram({
      name: 'walsync_capture_batch_seconds',
      help: 'Time to write one batch of captured transactions',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    isLeader: new Gauge({ name: 'walsync_replication_leader', help: '1 while this process is the replication leader', registers: [registry] }),
    replicationLagBytes: new Gauge({ name: 'walsync_replication_lag_bytes', help: 'WAL bytes between the server and the slot confirmed position', registers: [registry] }),
    writeChanges: new Counter({ name: 'walsync_write_changes_total', help: 'Changes answered by the write API', labelNames: ['status'], registers: [registry] }),
    writeBatchSeconds: new Histogram({
      name: 'walsync_write_batch_seconds',
      help: 'Time to apply one write batch',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
