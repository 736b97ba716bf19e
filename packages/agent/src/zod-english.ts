/**
 * English messages for zod/mini, imported for this effect by the modules
 * that validate with it. The agent validates with zod/mini rather than
 * classic zod for its size and load time (it is a sidecar); zod/mini has no
 * messages of its own until a locale is configured, and the English one is
 * classic zod's, so messages read the same.
 */
import { en } from "zod/locales";
import { config } from "zod/mini";

config(en());
