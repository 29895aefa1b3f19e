/* cl_args: command-line helpers shared by tessera-client and tessera. */
#ifndef CL_ARGS_H
#define CL_ARGS_H

#include <stdint.h>

/* Exit statuses of both programs. */
enum { CL_EXIT_OK = 0, CL_EXIT_ERROR = 1, CL_EXIT_USAGE = 2 };

/* Parses a whole-string integer in [min, max]; accepts exact e-notation ("2e10").
 * Returns 0 on success. */
int cl_args_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cl_args_int(const char *s, int min, int max, int *out);
/* Parses a finite decimal number in [min, max]. Returns 0 on success. */
int cl_args_double(const char *s, double min, double max, double *out);

/* Resets getopt so the next getopt_long call parses a fresh argument vector. */
void cl_args_reset(void);

#endif
