import { group } from "../args.ts";
import { EXIT_CODE_HELP } from "../errors.ts";
import { agentCommand } from "./agent.ts";
import { auditGroup } from "./audit.ts";
import { bindingGroup } from "./binding.ts";
import { issuerGroup } from "./issuer.ts";
import { loginCommand, profileGroup } from "./profile.ts";
import { projectGroup } from "./project.ts";
import { regionGroup } from "./region.ts";
import { runCommand } from "./run.ts";
import { secretGroup } from "./secret.ts";
import { serverCommand } from "./server.ts";
import { tokenGroup } from "./token.ts";
import { exportCommand, importCommand } from "./transfer.ts";
import { versionGroup } from "./version.ts";

/** The whole command tree of `coffer`. */
export const root = group({
  name: "coffer",
  summary: "the command line of Coffer, the self-hosted secret manager",
  description: `Secrets live at /path/name in projects; each holds numbered versions of
its payload. Start a server with "coffer server", export the admin token it
prints as COFFER_TOKEN, then e.g.:

  coffer project create demo                  # prints: export COFFER_PROJECT=...
  coffer secret create /prod/db --type database_credentials --from-file db.json
  coffer version access /prod/db --field password --raw
  coffer run --path /prod -- node server.js    # the secrets in its environment`,
  children: [
    secretGroup,
    versionGroup,
    runCommand,
    projectGroup,
    regionGroup,
    tokenGroup,
    issuerGroup,
    bindingGroup,
    auditGroup,
    importCommand,
    exportCommand,
    loginCommand,
    profileGroup,
    serverCommand,
    agentCommand,
  ],
  footer: `Environment:
  COFFER_URL, COFFER_TOKEN, COFFER_PROJECT, COFFER_REGION, COFFER_PROTOCOL
                  connection settings (flags override them; they override the profile)
  COFFER_JWT_FILE sign in with the JWT in this file when no token is set (a CI
                  job's OIDC token, a service-account token): exchanged for a
                  short-lived token; needs a trusted issuer and a binding
  COFFER_PROFILE  the profile to use (default "default")
  COFFER_CONFIG   the profile file (default ~/.config/coffer/config.json, mode 0600)

${EXIT_CODE_HELP}`,
});
