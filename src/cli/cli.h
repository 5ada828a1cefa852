/*
 * cli.h - one entry point per subcommand. Each takes the argv that follows
 * the subcommand name (argv[0] is the subcommand) and returns the process
 * exit code. Usage errors print to stderr and return 2.
 */
#ifndef AL_CLI_H
#define AL_CLI_H

int al_cmd_check(int argc, char **argv);
int al_cmd_serve(int argc, char **argv);
int al_cmd_token(int argc, char **argv);
int al_cmd_audit(int argc, char **argv);
int al_cmd_policy(int argc, char **argv);
int al_cmd_mask(int argc, char **argv);
int al_cmd_sessions(int argc, char **argv);
int al_cmd_agents(int argc, char **argv);
int al_cmd_approvals(int argc, char **argv);
int al_cmd_replay(int argc, char **argv);

#endif

#ifndef AL_CLI_COMMON
#define AL_CLI_COMMON
#include "core/config.h"
/* Loads cfg_path, printing every error to stderr; NULL on failure. */
al_config_t *al_cli_load_config(const char *cfg_path);
#include "identity/identity.h"
/* Verifies a token against cfg as the gateway would, fetching (blocking)
 * the keys of the issuers the token could match. AL_TOK_INTERNAL with no
 * info->detail means the verifier could not be set up. */
al_tok_status_t al_cli_verify_token(const al_config_t *cfg, const char *tok, size_t len,
                                    const char *only_issuer, al_principal_t **out,
                                    al_verify_info_t *info);
#endif
