import { invalid } from "../errors.ts";

/** 0001-01-01T00:00:00Z: Postgres stores earlier times, but Node writes them "-000001-...", which it misreads. */
const EARLIEST = Date.parse("0001-01-01T00:00:00.000Z");
/** 10000-01-01T00:00:00Z: Node writes it "+010000-...", which Postgres refuses ("time zone displacement out of range"). */
const END = Date.parse("9999-12-31T23:59:59.999Z") + 1;

/**
 * Refuses a time that is not a valid instant or lies outside years 1 to
 * 9999, the range that reaches the database intact, naming the field.
 */
export function validateTime(field: string, at: Date): Date {
  const ms = at.getTime();
  if (!Number.isFinite(ms)) throw invalid(field, "must be a valid time");
  if (ms < EARLIEST || ms >= END) {
    throw invalid(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z");
  }
  return at;
}
