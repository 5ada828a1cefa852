/* placeholder: being written */
#include "cli/cli.h"
int al_cmd_serve(int argc, char **argv) { (void)argc; (void)argv; return 2; }
