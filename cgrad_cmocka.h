/* One-line gradient checks inside cmocka tests. Include after <cmocka.h>:
 *
 *   cg_assert_gradcheck(my_fn, NULL, 2, inputs);
 *
 * fails the test with gradcheck's report (which input, which element, the
 * analytic and numeric values) when the gradients disagree. */
#ifndef CGRAD_CMOCKA_H
#define CGRAD_CMOCKA_H

#include "cgrad.h"

#define cg_assert_gradcheck_opts(fn, user, n, inputs, opts)                                    \
    do {                                                                                       \
        cg_gradcheck_report cg_report_;                                                        \
        if (!cg_gradcheck((fn), (user), (n), (inputs), (opts), &cg_report_))                   \
            fail_msg("%s", cg_report_.msg);                                                    \
    } while (0)
#define cg_assert_gradgradcheck_opts(fn, user, n, inputs, opts)                                \
    do {                                                                                       \
        cg_gradcheck_report cg_report_;                                                        \
        if (!cg_gradgradcheck((fn), (user), (n), (inputs), (opts), &cg_report_))               \
            fail_msg("%s", cg_report_.msg);                                                    \
    } while (0)
#define cg_assert_gradcheck(fn, user, n, inputs)                                               \
    cg_assert_gradcheck_opts(fn, user, n, inputs, NULL)
#define cg_assert_gradgradcheck(fn, user, n, inputs)                                           \
    cg_assert_gradgradcheck_opts(fn, user, n, inputs, NULL)

#endif
