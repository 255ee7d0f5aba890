/* A minimal harness for the C unit tests: each TEST is a function; CHECK
 * records a failure with file:line and carries on. Each test prints one line,
 * "PASS name" or "FAIL name", which tests/run.sh counts. */
#ifndef LOOM_CHECK_H
#define LOOM_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed_;
static int check_npass_, check_nfail_;

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            check_failed_ = 1;                                                    \
        }                                                                         \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                                 \
        if (a_ != b_) {                                                                     \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                                        \
            check_failed_ = 1;                                                              \
        }                                                                                   \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                        \
    do {                                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                                \
        if (!h_ || !strstr(h_, n_)) {                                                          \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,    \
                    h_ ? h_ : "(null)", n_);                                                   \
            check_failed_ = 1;                                                                 \
        }                                                                                      \
    } while (0)

#define RUN(test)                                                  \
    do {                                                           \
        check_failed_ = 0;                                         \
        test();                                                    \
        printf("%s %s\n", check_failed_ ? "FAIL" : "PASS", #test); \
        if (check_failed_) check_nfail_++; else check_npass_++;    \
    } while (0)

#define CHECK_DONE() (check_nfail_ ? 1 : 0)

#endif
