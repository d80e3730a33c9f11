import { PgoutputPlugin } from 'pg-logical-replication';

/** Builtin type oids whose text form maps onto JSON without loss. */
const BOOL = 16;
const INT2 = 21;
const INT4 = 23;
const FLOAT4 = 700;
const FLOAT8 = 701;
const JSON_OID = 114;
const JSONB = 3802;
const TIMESTAMPTZ = 1184;

const PG_TIMESTAMP = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-]\d{2})(?::(\d{2}))?$/;

/**
 * Postgres' text form of a timestamptz (`2026-11-23 02:05:19.006631+00`) in the ISO 8601 form that
 * to_jsonb() writes (`2026-11-23T02:05:19.006631+00:00`), so snapshots, write results and live
 * changes spell a value the same way. Anything else (infinity, BC dates) stays as it is.
 */
export function isoTimestamp(text: string): string {
  const match = PG_TIMESTAMP.exec(text);
  return match ? `${match[1]}T${match[2]}${match[3]}:${match[4] ?? '00'}` : text;
}

function valueParser(typeOid: number): (text: string) => unknown {
  switch (typeOid) {
    case BOOL:
      return (text) => text === 't';
    case INT2:
    case INT4:
      return Number;
    case FLOAT4:
    case FLOAT8:
      // Postgres prints the shortest text that round-trips, and so does JavaScript; NaN and the
      // infinities have no JSON number, so they stay text.
      return (text) => {
        const value = Number(text);
        return Number.isFinite(value) ? value : text;
      };
    case JSON_OID:
    case JSONB:
      return (text) => JSON.parse(text);
    case TIMESTAMPTZ:
      return isoTimestamp;
    default:
      // Everything else keeps Postgres' own text: bigint and numeric without rounding, enums, uuids.
      return (text) => text;
  }
}

/**
 * pgoutput decoding with values as Postgres wrote them. The library's default parsers turn
 * timestamptz into a Date (losing microseconds) and int8 into a rounded number, which would make a
 * client's copy differ from the server row.
 */
export class LosslessPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer) {
    const message = super.parse(buffer);
    if (message.tag === 'relation') {
      for (const column of message.columns) column.parser = valueParser(column.typeOid);
    }
    return message;
  }
}
