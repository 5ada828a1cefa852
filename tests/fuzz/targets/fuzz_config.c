/* fuzz_config.c - al_config_load_mem on arbitrary bytes: hostile YAML must
 * yield a config or errors, never a crash, leak or unbounded work. */
#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    al_config_errors_t errs;
    al_config_t *cfg = al_config_load_mem("fuzz.yaml", (const char *)data, size, &errs);
    /* exactly one of: a config, or at least one message */
    if ((cfg != NULL) == (errs.n != 0))
        abort();
    for (size_t i = 0; i < errs.n; i++)
        if (!errs.msgs[i] || strncmp(errs.msgs[i], "fuzz.yaml:", 10) != 0)
            abort();
    al_config_free(cfg);
    al_config_errors_free(&errs);
    return 0;
}
