import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { formatTime, isoTime } from "./format.ts";

/** A moment, in the reader's words and, for machines, in ISO form ("—" when there is none). */
export function Time({ at }: { at: Timestamp | undefined }) {
  return <time dateTime={isoTime(at)}>{formatTime(at)}</time>;
}
