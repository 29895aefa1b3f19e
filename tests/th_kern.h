/* th_kern: kernel look-up and parameter parsing shared by the kernel tests. */
#ifndef TH_KERN_H
#define TH_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"

/* The kernel of that name; fails the test when there is none. */
const kern *th_kern(const char *name);
/* The kernel's verdict on params given as JSON text; why gets its reason. */
ts_err th_kern_parse(const kern *k, const char *text, kern_args *args, char *why, size_t len);
/* Parsed {"from": from, "to": to}, which must be accepted. */
kern_args th_kern_range(const kern *k, uint64_t from, uint64_t to);

#endif
