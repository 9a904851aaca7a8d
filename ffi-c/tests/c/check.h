/*
 * The C tests' checks, shared by every test file: counters, FAIL, EXPECT (a result code, and
 * on a failure code the message naming `needle`), OK, NUL (a NULL parameter refused and
 * named), TRUE. Each test prints its counts and returns `failures != 0`.
 */
#ifndef UNDERLAY_TEST_CHECK_H
#define UNDERLAY_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "underlay.h"

static int failures;
static int checks;

#define FAIL(...)                                                                  \
  do {                                                                             \
    failures++;                                                                    \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
    fprintf(stderr, __VA_ARGS__);                                                  \
    fprintf(stderr, "\n");                                                         \
  } while (0)

/* Whether the last error message lacks `needle` (NULL: nothing to look for). */
static inline int lacks(const char *needle) {
  return needle != NULL && strstr(underlay_last_error_message(), needle) == NULL;
}

static inline const char *or_empty(const char *s) { return s != NULL ? s : ""; }

/* Checks that `expr` returns `want`; on a failure code also that the message has `needle`. */
#define EXPECT(expr, want, needle)                                                 \
  do {                                                                             \
    underlay_result got_ = (expr);                                                 \
    checks++;                                                                      \
    if (got_ != (want)) {                                                          \
      FAIL("%s: got %s, want %s (%s)", #expr, underlay_result_name(got_),          \
           underlay_result_name(want), underlay_last_error_message());             \
    } else if ((want) != UNDERLAY_RESULT_OK && lacks(needle)) {                    \
      FAIL("%s: message `%s` lacks `%s`", #expr, underlay_last_error_message(),    \
           or_empty(needle));                                                       \
    }                                                                              \
  } while (0)

#define OK(expr) EXPECT(expr, UNDERLAY_RESULT_OK, NULL)
#define NUL(expr, param) EXPECT(expr, UNDERLAY_RESULT_NULL_PARAMETER, "`" param "`")
#define TRUE(cond)                                                                 \
  do {                                                                             \
    checks++;                                                                      \
    if (!(cond))                                                                   \
      FAIL("%s", #cond);                                                           \
  } while (0)

#endif
