import type { DescMessage, Message } from "@bufbuild/protobuf";
import { isMessage } from "@bufbuild/protobuf";
import { type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { invalid } from "../domain/errors.ts";
import { textProblem } from "../domain/validation.ts";

/**
 * Refuses a request holding a string that Postgres text cannot store (a NUL,
 * or a lone surrogate): INVALID_ARGUMENT naming the field, e.g.
 * `first_version.description` or `tags[2]`.
 *
 * The call chain runs it on every request of every method before the
 * handler, so no string field (today's or one added later) can reach the
 * database with one and fail there as INTERNAL. The domain's own validators
 * apply the same rule (validateText) for callers that do not come through
 * the chain.
 */
export function checkRequestText(desc: DescMessage, message: unknown): void {
  if (!isMessage(message, desc)) return;
  walk(reflect(desc, message as Message), "");
}

function walk(msg: ReflectMessage, prefix: string): void {
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    const name = `${prefix}${field.name}`;
    switch (field.fieldKind) {
      case "scalar":
        check(msg.get(field), name);
        break;
      case "message":
        walk(msg.get(field), `${name}.`);
        break;
      case "list": {
        let i = 0;
        for (const item of msg.get(field)) {
          const at = `${name}[${i++}]`;
          if (field.listKind === "message") walk(item as ReflectMessage, `${at}.`);
          else check(item, at);
        }
        break;
      }
      case "map":
        // Keys are not echoed in the field name: they are caller input too.
        for (const [key, value] of msg.get(field)) {
          check(key, name);
          if (field.mapKind === "message") walk(value as ReflectMessage, `${name}.`);
          else check(value, name);
        }
        break;
      default:
        break;
    }
  }
}

function check(value: unknown, field: string): void {
  if (typeof value !== "string") return;
  const problem = textProblem(value);
  if (problem !== undefined) throw invalid(field, problem);
}
