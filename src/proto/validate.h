/*
 * src/proto/validate.h: how registry.c starts and stops the validator (src/proto/validate.c). The validator's
 * own API is in include/ekglue/proto.h. Thread: main, inside ekg_proto_init() / ekg_proto_shutdown().
 */
#ifndef EKG_PROTO_VALIDATE_H
#define EKG_PROTO_VALIDATE_H

#include <stddef.h>

#include "upb/def.h"

/*
 * Compiles the rules of every message type of files[0..n) and of the files they depend on, all in pool, and
 * logs what it compiled (a warning naming the rule kinds it cannot check, if any). pool must outlive the
 * compiled rules (ekg_validate_free). Out of memory aborts.
 */
void ekg_validate_compile(const upb_DefPool *pool, const upb_FileDef *const *files, size_t n);
/* Frees the compiled rules; afterwards every message validates as having no rules. */
void ekg_validate_free(void);

#endif
