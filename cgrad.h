/* cgrad: reverse-mode automatic differentiation on tensors, in C11.
 * The umbrella header: include this one. See README.md for the model of
 * ownership (contexts and caller-owned tensors) and of errors (values). */
#ifndef CGRAD_H
#define CGRAD_H

#include "tensor/tensor.h"
#include "autograd/autograd.h"
#include "ops/ops.h"
#include "nn/nn.h"

#endif
