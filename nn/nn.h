/* cgrad nn: modules, init, losses, optimizers, schedules, clipping and
 * checkpoints, written as ordinary graph code on the public ops.
 *
 * Ownership: cg_nn_* constructors return a module the caller frees with
 * cg_module_free (NULL is fine); a container takes ownership of its
 * children, also when it fails. A module owns its parameters, their
 * gradients and its buffers; all parameters of a module tree share one flat
 * buffer (and their gradients another), so an optimizer step is one loop
 * over each run of adjacent parameters.
 * Tensors returned by accessors belong to the module: do not free them.
 * Optimizers and schedules are freed with their _free; they borrow the
 * module, parameters or optimizer they were made for, which must outlive
 * them.
 *
 * Errors as in the rest of cgrad: NULL or a cg_status, the message in
 * cg_last_error(). */
#ifndef CG_NN_H
#define CG_NN_H

#include "../ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- modules ---------------------------------------------------------------
 * A module is PyTorch's nn.Module: an instance of a kind (a static const
 * cg_module_kind: its name and forward, optional hooks) with the kind's own
 * data, named parameters, buffers (running statistics and other state saved
 * in checkpoints but not trained) and child modules. Every built-in layer is
 * made this way; "Writing a layer" in the README shows a user kind.
 *
 * Ownership: a module is the caller's until a container takes it
 * (cg_module_add_child, or a container constructor, which takes its
 * children also when it fails); then free only the root, with
 * cg_module_free. A module placed twice (in one container or two) is
 * shared: its parameters are counted, updated, clipped and saved once, and
 * it is freed with the last container holding it. A parameter of one
 * module can be used by another through cg_module_tie (tied weights).
 * Parameters, buffers and children are owned by their module; accessors
 * return borrowed pointers, valid while the module lives. */
typedef struct cg_module cg_module; /* opaque */

typedef struct cg_module_kind {
    const char *name; /* "Linear", "ResidualBlock": printed and named in errors */
    /* y = m(x), made in ctx (never NULL here: cg_module_forward gives a
     * scratch context to callers that pass none). NULL on error, with the
     * error recorded (any failing cgrad op has recorded it). */
    cg_tensor *(*forward)(cg_ctx *ctx, cg_module *m, const cg_tensor *x);
    /* Optional: frees the data given to cg_module_new, with the module. */
    void (*free_data)(void *data);
    /* Optional: PyTorch's extra_repr, "in_features=784, out_features=128,
     * bias=True", written into buf (size bytes, NUL-terminated) for
     * cg_module_print. Without it the module's own tensors are listed. */
    void (*describe)(const cg_module *m, char *buf, size_t size);
} cg_module_kind;

/* A new module of kind (borrowed: a static const) holding data (owned:
 * freed by kind->free_data with the module, also when this fails; may be
 * NULL). In training mode, with no parameters yet. */
CG_API cg_module *cg_module_new(const cg_module_kind *kind, void *data);
/* The accessors below given a NULL module return NULL (0, false, "NULL")
 * and record "cg_<accessor>: module is NULL". */
CG_API void *cg_module_data(const cg_module *m);
CG_API const cg_module_kind *cg_module_kind_of(const cg_module *m);
/* Registers t (caller-owned, a float leaf; the module takes it, also on
 * failure) as parameter `name` ([A-Za-z0-9_], unique among m's parameters,
 * buffers and children); it then requires a gradient. Returns t (borrowed).
 * A NULL t returns NULL and keeps its error, so cg_module_add_param(m, "w",
 * cg_zeros(NULL, ...)) needs one check. */
CG_API cg_tensor *cg_module_add_param(cg_module *m, const char *name, cg_tensor *t);
/* The same for a buffer (any dtype; requires no gradient): saved and
 * loaded with the parameters, never trained. */
CG_API cg_tensor *cg_module_add_buffer(cg_module *m, const char *name, cg_tensor *t);
/* m's own parameter or buffer `name` (borrowed), what a forward reads: a
 * tied parameter replaces the one registered, so look it up rather than
 * keep the pointer. NULL (CG_ERR_ARG) if m has none of that name. */
CG_API cg_tensor *cg_module_get(const cg_module *m, const char *name);
/* Makes child a child of m named `name` (NULL: the next index, "0", "1",
 * ..., as nn.Sequential and nn.ModuleList name theirs). m takes the
 * caller's ownership of child, also on failure, unless child is already
 * held by a container: then it is shared. Returns child. A module cannot
 * contain itself (CG_ERR_ARG; then child, in use above m, stays as it was). */
CG_API cg_module *cg_module_add_child(cg_module *m, const char *name, cg_module *child);
/* Tied weights: m's parameter `name` becomes `param`, a parameter of another
 * module in the same model (borrowed: its owner must outlive m; typically
 * both are in one tree). m's own parameter of that name, if any, is freed.
 * As PyTorch's `head.weight = emb.weight`: one tensor, one gradient (the sum
 * over both uses), saved under both names. */
CG_API cg_status cg_module_tie(cg_module *m, const char *name, cg_tensor *param);

/* Runs m on x in ctx: a graph when x or a parameter requires a gradient and
 * grad mode is on in ctx. With ctx NULL the result is caller-owned and no
 * graph can be made (an input or parameter that requires a gradient is
 * CG_ERR_STATE; use cg_module_predict). Errors name cg_module_forward and
 * the module's kind, then the failing op: "cg_module_forward: Linear:
 * cg_linear: [4,5] x [3,2]: ...". */
CG_API cg_tensor *cg_module_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x);
/* Inference in one call (PyTorch's model.eval() under torch.no_grad()): m's
 * tree in eval mode, no graph, then the tree back in m's mode. With ctx NULL
 * the result is caller-owned (free it with cg_tensor_free). */
CG_API cg_tensor *cg_module_predict(cg_ctx *ctx, cg_module *m, const cg_tensor *x);
/* Train or eval mode, for m and all its children (dropout, batch norm). */
CG_API void cg_module_train(cg_module *m, bool training);
CG_API bool cg_module_is_training(const cg_module *m);
CG_API const char *cg_module_name(const cg_module *m); /* its kind's: "Linear", ... */
/* Frees m (NULL is fine), its tree and everything they own. A module held
 * by a container is freed with the container: freeing it directly is
 * CG_ERR_STATE and changes nothing. */
CG_API cg_status cg_module_free(cg_module *m);

/* Children in registration order; i in [0, n). *name (may be NULL) gets
 * the child's name. */
CG_API int cg_module_nchildren(const cg_module *m);
CG_API cg_module *cg_module_child(const cg_module *m, int i, const char **name);
/* A descendant by dotted path: "0", "encoder.blocks.1.attn"; NULL (with
 * CG_ERR_ARG) if none. */
CG_API cg_module *cg_module_find_child(const cg_module *m, const char *path);

/* State in PyTorch's state_dict order and names ("0.weight",
 * "1.running_mean"), relative to m: its own parameters and buffers, then its
 * children's, depth first; a shared module or tied parameter appears under
 * each of its names. i in [0, n). */
CG_API int cg_module_nstate(const cg_module *m);
CG_API cg_tensor *cg_module_state(const cg_module *m, int i, const char **name, bool *is_param);
CG_API cg_tensor *cg_module_find(const cg_module *m, const char *name); /* NULL if none */
/* Unique parameters (PyTorch's parameters(): each tensor once, under its
 * first name), what optimizers update. */
CG_API int cg_module_nparams(const cg_module *m);
CG_API cg_tensor *cg_module_param(const cg_module *m, int i, const char **name);
CG_API int64_t cg_module_numel(const cg_module *m); /* elements of those */
/* A root's parameters and their gradients as 1-D views (borrowed) of its
 * flat buffers, each parameter a slice in cg_module_param order; NULL when
 * m is held by a container or its parameters differ in dtype. */
CG_API cg_tensor *cg_module_flat_params(const cg_module *m);
CG_API cg_tensor *cg_module_flat_grads(const cg_module *m);
/* Zeroes the gradients of m's parameters (not freezing: see cg_optim). */
CG_API void cg_module_zero_grad(cg_module *m);
/* print(model): the tree with each module's name, kind and description,
 * then the parameter counts ("Total params", "Trainable params"). */
CG_API cg_status cg_module_print(const cg_module *m);
CG_API cg_status cg_module_fprint(FILE *f, const cg_module *m);

/* ---- layers (dt: the parameters' dtype, f32 or f64) ------------------------ */
typedef enum cg_act {
    CG_ACT_NONE = 0, /* Identity */
    CG_ACT_RELU,
    CG_ACT_TANH,
    CG_ACT_SIGMOID,
    CG_ACT_GELU,
    CG_ACT_SILU,
    CG_ACT_LEAKY_RELU, /* slope 0.01 */
    CG_ACT_ELU         /* alpha 1 */
} cg_act;

/* y = x W^T + b; W [out, in] kaiming-uniform with a = sqrt(5), b uniform
 * +-1/sqrt(in): PyTorch's nn.Linear init. */
CG_API cg_module *cg_nn_linear(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, bool bias);
/* Children run in order, named "0", "1", ...; takes ownership of them
 * (also on failure); the same module may appear twice (shared). */
CG_API cg_module *cg_nn_sequential(int n, cg_module *const *children);
/* nn.ModuleList: children named "0", "1", ... (append with
 * cg_module_add_child(list, NULL, child)); it has no forward of its own:
 * the module holding it calls its children. */
CG_API cg_module *cg_nn_module_list(int n, cg_module *const *children);
/* nn.ModuleDict: children under the given names, in that order. */
CG_API cg_module *cg_nn_module_dict(int n, const char *const *names,
                                    cg_module *const *children);
/* nn.Identity: returns its input (as a view). */
CG_API cg_module *cg_nn_identity(void);
/* Linear(sizes[0], sizes[1]), act, Linear(sizes[1], sizes[2]), act, ...,
 * Linear(sizes[n-2], sizes[n-1]) with no activation after the last. */
CG_API cg_module *cg_nn_mlp(cg_rng *rng, cg_dtype dt, int nsizes, const int64_t *sizes,
                            cg_act act);
CG_API cg_module *cg_nn_activation(cg_act act);
/* Zeroes with probability p in training mode; rng is borrowed. */
CG_API cg_module *cg_nn_dropout(double p, cg_rng *rng);
/* Zeroes whole channels of [N, C, H, W] (or [C, H, W], PyTorch's future
 * reading of 3-D input) with probability p in training mode, scaling the
 * rest by 1/(1-p); identity in eval. rng is borrowed. */
CG_API cg_module *cg_nn_dropout2d(double p, cg_rng *rng);
/* Over the last dim of size dim (cg_layer_norm); weight ones, bias zeros
 * (PyTorch eps 1e-5). */
CG_API cg_module *cg_nn_layernorm(cg_dtype dt, int64_t dim, double eps);
/* [N, C] or [N, C, L] (cg_batch_norm); running mean and variance (unbiased)
 * updated with momentum in training, used in eval (PyTorch eps 1e-5,
 * momentum 0.1). State: weight (ones), bias (zeros), running_mean,
 * running_var, num_batches_tracked (i64, counts training forwards). */
CG_API cg_module *cg_nn_batchnorm1d(cg_dtype dt, int64_t features, double eps, double momentum);
/* The same over [N, C, H, W]: statistics per channel over N, H and W. */
CG_API cg_module *cg_nn_batchnorm2d(cg_dtype dt, int64_t features, double eps, double momentum);
/* cg_group_norm over [N, channels, ...] in groups (dividing channels);
 * weight [channels] ones, bias zeros (PyTorch eps 1e-5). */
CG_API cg_module *cg_nn_groupnorm(cg_dtype dt, int64_t groups, int64_t channels, double eps);
/* Lookup of i64 indices in a [num, dim] table initialised N(0, 1). */
CG_API cg_module *cg_nn_embedding(cg_rng *rng, cg_dtype dt, int64_t num, int64_t dim);

/* ---- convolutional layers (x [N, C, H, W]; [N, C, L] for Conv1d) ------------
 * PyTorch's Conv1d, Conv2d, ConvTranspose2d: weight [out, in / groups, kh,
 * kw] ([in, out / groups, kh, kw] for the transpose) and bias [out], both
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch initialises them; opts (NULL:
 * cg_conv_defaults) as the functional ops take them. */
CG_API cg_module *cg_nn_conv1d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, int64_t k,
                               const cg_conv_opts *opts, bool bias);
CG_API cg_module *cg_nn_conv2d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out, int64_t kh,
                               int64_t kw, const cg_conv_opts *opts, bool bias);
CG_API cg_module *cg_nn_conv_transpose2d(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out,
                                         int64_t kh, int64_t kw, const cg_conv_opts *opts,
                                         bool bias);
/* MaxPool2d, AvgPool2d from cg_pool_defaults(kh, kw) and its fields. */
CG_API cg_module *cg_nn_maxpool2d(const cg_pool_opts *opts);
CG_API cg_module *cg_nn_avgpool2d(const cg_pool_opts *opts);
CG_API cg_module *cg_nn_adaptive_avgpool2d(int64_t out_h, int64_t out_w);
/* nn.Flatten: dims start_dim..end_dim into one (PyTorch's defaults 1, -1). */
CG_API cg_module *cg_nn_flatten(int start_dim, int end_dim);

/* ---- transformers (x [B, T, E], batch first) --------------------------------
 * PyTorch's state_dict names; the model's rng is borrowed by its dropouts
 * (and must outlive it when dropout > 0). */
/* nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True):
 * in_proj_weight [3E, E] (xavier_uniform_), in_proj_bias [3E] (zeros),
 * out_proj (Linear: out_proj.weight, out_proj.bias zeroed); no biases when
 * bias is false. Its forward is self-attention of x [B, T, E] without a
 * mask; dropout (in training) is on the attention weights. */
CG_API cg_module *cg_nn_multihead_attention(cg_rng *rng, cg_dtype dt, int64_t embed_dim,
                                            int64_t num_heads, double dropout, bool bias);
/* Its forward(query, key, value, attn_mask) with separate inputs: q [B, Tq,
 * E], k and v [B, Tk, E] of the module's dtype -> [B, Tq, E] (PyTorch's first
 * output; the averaged weights are not returned). mask: NULL, or a float
 * mask added to the scores (-inf blocks), broadcastable to [B, H, Tq, Tk]
 * ([Tq, Tk] for all); causal: query i sees keys j <= i (Tq == Tk). Heads
 * are [B, H, T, E / H] views given to cg_scaled_dot_product_attention;
 * self-attention (q == k == v, the same tensor) projects with one GEMM.
 * Needs a context (for inference, cg_no_grad_push it). */
CG_API cg_tensor *cg_mha_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *q,
                                 const cg_tensor *k, const cg_tensor *v, const cg_tensor *mask,
                                 bool causal);
/* Pre-LayerNorm block (GPT-2's): x + resid_drop(attn(ln_1(x))), then
 * x + mlp(ln_2(x)) with mlp = Sequential(Linear(E, mlp_ratio E), GELU with
 * the tanh approximation (GPT-2's), Linear(mlp_ratio E, E), Dropout).
 * State: ln_1.weight, ln_1.bias, attn.in_proj_weight, attn.in_proj_bias,
 * attn.out_proj.weight, attn.out_proj.bias, ln_2.weight, ln_2.bias,
 * mlp.0.weight, mlp.0.bias, mlp.2.weight, mlp.2.bias. LayerNorm eps 1e-5;
 * dropout on the attention weights and both residual branches; causal
 * masks the future. Init as the parts' PyTorch layers. */
CG_API cg_module *cg_nn_transformer_block(cg_rng *rng, cg_dtype dt, int64_t embed_dim,
                                          int64_t num_heads, int64_t mlp_ratio, double dropout,
                                          bool causal);
/* A GPT-2 style language model: ids i64 [B, T] (T <= context, else
 * CG_ERR_SHAPE) -> logits [B, T, vocab] = head(ln_f(blocks(drop(tok_emb(ids)
 * + pos_emb(0..T-1))))), the blocks causal with mlp_ratio 4. State:
 * tok_emb.weight [vocab, E], pos_emb.weight [context, E], blocks.N.<the
 * block's names>, ln_f.weight, ln_f.bias, head.weight: the head (Linear
 * without bias) is tied to tok_emb.weight (one parameter, saved under both
 * names). GPT-2's init: weights N(0, 0.02), biases 0, the residual
 * projections (attn.out_proj.weight, mlp.2.weight) N(0, 0.02 / sqrt(2
 * layers)), LayerNorms ones and zeros. */
CG_API cg_module *cg_nn_gpt(cg_rng *rng, cg_dtype dt, int64_t vocab, int64_t context,
                            int64_t embed_dim, int64_t layers, int64_t heads, double dropout);

/* ---- init: in place (PyTorch's nn.init names, ending in _), from an explicit rng;
 * t is a parameter or any f32 / f64 tensor -------------------------------- */
/* A tensor with no elements is left as it is (PyTorch: a no-op). */
typedef enum cg_fan { CG_FAN_IN, CG_FAN_OUT } cg_fan;
/* gain for CG_ACT_NONE / SIGMOID 1, RELU sqrt(2), TANH 5/3, LEAKY_RELU
 * sqrt(2 / (1 + slope^2)) with slope `param`. */
CG_API double cg_init_gain(cg_act act, double param);
CG_API cg_status cg_init_uniform_(cg_tensor *t, cg_rng *rng, double lo, double hi);
CG_API cg_status cg_init_normal_(cg_tensor *t, cg_rng *rng, double mean, double std);
CG_API cg_status cg_init_constant_(cg_tensor *t, double value);
CG_API cg_status cg_init_xavier_uniform_(cg_tensor *t, cg_rng *rng, double gain);
CG_API cg_status cg_init_xavier_normal_(cg_tensor *t, cg_rng *rng, double gain);
/* PyTorch's kaiming_*: a is the leaky slope for CG_ACT_LEAKY_RELU. */
CG_API cg_status cg_init_kaiming_uniform_(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                          cg_act act);
CG_API cg_status cg_init_kaiming_normal_(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                         cg_act act);

/* ---- losses --------------------------------------------------------------- */
/* The composed losses; the fused ones (cg_cross_entropy, cg_cross_entropy_ex,
 * cg_nll_loss, cg_bce_loss, cg_bce_with_logits) and cg_reduction are in
 * ops/ops.h. input and target have one float dtype and the same shape (no
 * broadcasting). CG_NONE gives per-element losses ([N] per sample for
 * cg_cross_entropy_probs). With ctx NULL the loss is caller-owned (an input
 * that requires a gradient needs a context, as for every op). */
CG_API cg_tensor *cg_mse_loss(cg_ctx *ctx, const cg_tensor *input, const cg_tensor *target,
                              cg_reduction r);
CG_API cg_tensor *cg_l1_loss(cg_ctx *ctx, const cg_tensor *input, const cg_tensor *target,
                             cg_reduction r);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (PyTorch beta 1;
 * beta 0 is l1, beta < 0 an error). */
CG_API cg_tensor *cg_smooth_l1_loss(cg_ctx *ctx, const cg_tensor *input,
                                    const cg_tensor *target, double beta, cg_reduction r);
/* 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (delta > 0,
 * PyTorch's default 1). */
CG_API cg_tensor *cg_huber_loss(cg_ctx *ctx, const cg_tensor *input, const cg_tensor *target,
                                double delta, cg_reduction r);
/* Probability targets [N, C] (one-hot: Keras' categorical cross-entropy):
 * -sum_c p_c log_softmax(logits)_c, mean over N. */
CG_API cg_tensor *cg_cross_entropy_probs(cg_ctx *ctx, const cg_tensor *logits,
                                         const cg_tensor *probs, cg_reduction r);

/* ---- optimizers (PyTorch's documented update rules) ------------------------ */
typedef struct cg_optim cg_optim; /* opaque */

typedef struct cg_sgd_opts {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} cg_sgd_opts;
typedef struct cg_adam_opts {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad;
} cg_adam_opts;
typedef struct cg_rmsprop_opts {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered;
} cg_rmsprop_opts;
typedef struct cg_adagrad_opts {
    double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
} cg_adagrad_opts;

/* PyTorch's defaults with the given learning rate. */
CG_API cg_sgd_opts cg_sgd_defaults(double lr);
CG_API cg_adam_opts cg_adam_defaults(double lr);       /* betas 0.9, 0.999; eps 1e-8 */
CG_API cg_adam_opts cg_adamw_defaults(double lr);      /* the same, weight decay 0.01 */
CG_API cg_rmsprop_opts cg_rmsprop_defaults(double lr); /* alpha 0.99, eps 1e-8 */
CG_API cg_adagrad_opts cg_adagrad_defaults(double lr); /* eps 1e-10 */

/* For all unique parameters of m (cg_module_param's order), one group; m is
 * the root of its module tree (borrowed; it must outlive the optimizer and
 * not be put into a container afterwards). */
CG_API cg_optim *cg_sgd_new(cg_module *m, const cg_sgd_opts *o);
CG_API cg_optim *cg_adam_new(cg_module *m, const cg_adam_opts *o);
CG_API cg_optim *cg_adamw_new(cg_module *m, const cg_adam_opts *o); /* decoupled decay */
CG_API cg_optim *cg_rmsprop_new(cg_module *m, const cg_rmsprop_opts *o);
CG_API cg_optim *cg_adagrad_new(cg_module *m, const cg_adagrad_opts *o);

/* A parameter group (PyTorch's param_groups entry): nparams leaf tensors
 * (borrowed; they must outlive the optimizer) with their own options: opts
 * points to the optimizer's own options struct (cg_sgd_opts for SGD,
 * cg_adam_opts for Adam/AdamW, ...; copied), NULL for the defaults. A plain
 * list of tensors is one group with opts NULL. */
typedef struct cg_param_group {
    int nparams;
    cg_tensor *const *params;
    const void *opts;
} cg_param_group;
/* Parameters are caller-owned, contiguous f32 or f64 leaves, all of one
 * dtype, each in one place of one group; a group may be empty. requires_grad
 * may be false (the parameter is frozen until it is set). CG_ERR_ARG for NULL
 * groups, params or defaults, ngroups < 1, a parameter listed twice, a
 * context tensor (it would dangle after the reset), a non-leaf or
 * non-contiguous one, bad options (the message names the group, or
 * "defaults"); CG_ERR_DTYPE for a non-float or mixed dtype. */
CG_API cg_optim *cg_sgd_new_groups(int ngroups, const cg_param_group *groups,
                                   const cg_sgd_opts *defaults);
CG_API cg_optim *cg_adam_new_groups(int ngroups, const cg_param_group *groups,
                                    const cg_adam_opts *defaults);
CG_API cg_optim *cg_adamw_new_groups(int ngroups, const cg_param_group *groups,
                                     const cg_adam_opts *defaults);
CG_API cg_optim *cg_rmsprop_new_groups(int ngroups, const cg_param_group *groups,
                                       const cg_rmsprop_opts *defaults);
CG_API cg_optim *cg_adagrad_new_groups(int ngroups, const cg_param_group *groups,
                                       const cg_adagrad_opts *defaults);

/* One update of every parameter that has a new gradient, with its group's
 * options. Which parameters a step updates (PyTorch's skip of a frozen
 * parameter or one whose .grad is None):
 *  - requires_grad false: skipped entirely: no update, no weight decay, its
 *    state and step count stay;
 *  - no gradient since the previous step (or since the optimizer was made):
 *    cg_grad_of(p) is NULL, or its storage and version are those the last
 *    step saw. A backward that reaches p, or any in-place write to its
 *    gradient (cg_copy_ into it), bumps that version; cg_optim_zero_grad
 *    does not, so zeroed gradients are no gradient (PyTorch's set_to_none)
 *    and a parameter the loss does not use is skipped, also with weight
 *    decay. Writing a gradient's memory through a raw pointer is not seen.
 * Each parameter counts its own steps, as PyTorch's state "step": bias
 * corrections (Adam), the first momentum step (SGD) and Adagrad's lr decay
 * use them. Each updated parameter's version is bumped, so a graph recorded
 * before the step cannot be backpropagated after it, as in PyTorch.
 * CG_ERR_STATE (nothing updated) for a non-contiguous gradient. */
CG_API cg_status cg_optim_step(cg_optim *o);
/* Zeroes the gradients of the optimizer's parameters (see the rule above). */
CG_API void cg_optim_zero_grad(cg_optim *o);
/* Group 0's lr (NaN and CG_ERR_ARG for NULL); set_lr sets every group's
 * (CG_ERR_ARG, nothing changed, unless finite and >= 0). */
CG_API double cg_optim_lr(const cg_optim *o);
CG_API cg_status cg_optim_set_lr(cg_optim *o, double lr);
/* Parameter groups (PyTorch's param_groups), 0 .. ngroups-1 in the order
 * given; a bad group is CG_ERR_INDEX (NaN from group_lr). */
CG_API int cg_optim_ngroups(const cg_optim *o);
CG_API double cg_optim_group_lr(const cg_optim *o, int group);
CG_API cg_status cg_optim_set_group_lr(cg_optim *o, int group, double lr);
CG_API int64_t cg_optim_steps(const cg_optim *o);    /* cg_optim_step calls */
CG_API const char *cg_optim_name(const cg_optim *o); /* "sgd", "adam", ... */
/* Its state, flat 1-D tensors over all parameters in group order, then
 * parameter order ("momentum_buffer", "exp_avg", ...; a buffer exists when
 * any group's options use it), for checkpoints; owned by the optimizer. */
CG_API int cg_optim_nstate(const cg_optim *o);
CG_API cg_tensor *cg_optim_state(const cg_optim *o, int i, const char **name);
/* Sets the step count and every parameter's (CG_ERR_ARG for steps < 0). */
CG_API cg_status cg_optim_set_steps(cg_optim *o, int64_t steps);
CG_API void cg_optim_free(cg_optim *o);

/* ---- learning-rate schedules (PyTorch's, stepped once per epoch or step) ---
 * A schedule owns its optimizer's lrs: it keeps one base lr per parameter
 * group (the group's lr when the schedule was made; PyTorch's base_lrs) and
 * sets every group's lr from its own base at each step, so a hand-set lr is
 * overwritten at the next step. Schedules chain with SequentialLR (one after
 * another at milestones, e.g. warm-up then cosine) and ChainedScheduler
 * (all at once, factors multiplied); two schedules stepped side by side on
 * one optimizer do not: the last step wins. OneCycle changes
 * the lr only (no momentum cycling). Each constructor sets the lrs to their
 * epoch-0 values; the caller frees the schedule with cg_sched_free. */
typedef struct cg_sched cg_sched; /* opaque */
CG_API cg_sched *cg_steplr_new(cg_optim *o, int step_size, double gamma);
CG_API cg_sched *cg_multisteplr_new(cg_optim *o, int n, const int *milestones, double gamma);
CG_API cg_sched *cg_exponentiallr_new(cg_optim *o, double gamma);
CG_API cg_sched *cg_cosinelr_new(cg_optim *o, int t_max, double eta_min);
/* LinearLR: factor from start_factor to 1 over total_steps. */
CG_API cg_sched *cg_warmuplr_new(cg_optim *o, double start_factor, int total_steps);
/* OneCycleLR, cosine: from max_lr/div_factor up to max_lr over pct_start of
 * total_steps, then down to max_lr/(div_factor*final_div_factor); the same
 * max_lr for every group. Stepping past total_steps is CG_ERR_STATE. */
typedef struct cg_onecycle_opts {
    double max_lr;
    int total_steps;
    double pct_start, div_factor, final_div_factor;
} cg_onecycle_opts;
/* PyTorch's defaults: pct_start 0.3, div_factor 25, final_div_factor 1e4. */
CG_API cg_onecycle_opts cg_onecycle_defaults(double max_lr, int total_steps);
CG_API cg_sched *cg_onecyclelr_new(cg_optim *o, const cg_onecycle_opts *opts);
/* LambdaLR: lr_g = base_g * factor(epoch, user), one function for all
 * groups, called once per step (and for epoch 0 when made). A factor that is
 * not finite and >= 0 fails that step (CG_ERR_ARG, lrs kept) or the
 * constructor. user is borrowed. */
CG_API cg_sched *cg_lambdalr_new(cg_optim *o, double (*factor)(int64_t epoch, void *user),
                                 void *user);
/* MultiplicativeLR: every step multiplies each group's current lr by
 * factor(epoch, user) (epoch >= 1); errors as LambdaLR. */
CG_API cg_sched *
cg_multiplicativelr_new(cg_optim *o, double (*factor)(int64_t epoch, void *user), void *user);
/* ReduceLROnPlateau, mode min, relative threshold: each group's lr *= factor
 * after patience steps without improvement, not below min_lr. */
typedef struct cg_plateau_opts {
    double factor;
    int patience;
    double threshold, min_lr;
} cg_plateau_opts;
/* PyTorch's defaults: factor 0.1, patience 10, threshold 1e-4, min_lr 0. */
CG_API cg_plateau_opts cg_plateau_defaults(void);
/* opts NULL: the defaults. */
CG_API cg_sched *cg_plateau_new(cg_optim *o, const cg_plateau_opts *opts);
/* SequentialLR (torch 1.13): scheds[0] until milestones[0], scheds[k] from
 * milestones[k-1], where it restarts at its epoch 0. Takes ownership of the
 * n schedules, also on failure; they must be distinct, on o, and neither
 * plateau nor sequential; the n-1 milestones >= 1 and strictly increasing.
 * All children use scheds[0]'s base lrs (PyTorch's initial_lr), so make
 * scheds[0] first, as PyTorch code does. */
CG_API cg_sched *cg_sequentiallr_new(cg_optim *o, int n, cg_sched *const *scheds,
                                     const int *milestones);
/* ChainedScheduler (torch 1.13): each step steps all n schedules in order,
 * each from the lrs the one before it left (PyTorch's recursive forms), so
 * their factors multiply, e.g. warm-up times exponential decay. Takes
 * ownership as SequentialLR, with the same rules; all on scheds[0]'s
 * optimizer. */
CG_API cg_sched *cg_chainedscheduler_new(int n, cg_sched *const *scheds);
/* One step: CG_OK, or an error with the epoch and every lr unchanged
 * (plateau stepped without a metric: CG_ERR_ARG; OneCycle past total_steps:
 * CG_ERR_STATE; the optimizer's group count changed: CG_ERR_STATE). */
CG_API cg_status cg_sched_step(cg_sched *s);
/* plateau needs the metric; the other schedules ignore it. */
CG_API cg_status cg_sched_step_metric(cg_sched *s, double metric);
/* The lr last set for group 0 / for a group (NaN with the error recorded for
 * a NULL schedule or a group out of range). */
CG_API double cg_sched_lr(const cg_sched *s);
CG_API double cg_sched_group_lr(const cg_sched *s, int group);
CG_API void cg_sched_free(cg_sched *s);

/* ---- gradient clipping (PyTorch's clip_grad_norm_ / clip_grad_value_) -------
 * Over the gradients of m's unique parameters, or of a plain list of
 * parameters (n >= 0, no NULL entries); a frozen parameter (requires_grad
 * false) or one without a gradient (cg_grad_of NULL) is skipped. The
 * gradients are changed in place without bumping their versions. CG_ERR_ARG
 * for NULL arguments or a negative (or NaN) bound, CG_ERR_STATE for a
 * non-contiguous gradient; nothing is changed on error. */
/* Scales the gradients so their global L2 norm (accumulated in double, the
 * same bits on any thread count) is at most max_norm: by
 * max_norm / (norm + 1e-6) when that is below 1 (a NaN norm leaves them as
 * they are). The norm before clipping goes to *total_norm (may be
 * NULL). */
CG_API cg_status cg_clip_grad_norm_(cg_module *m, double max_norm, double *total_norm);
CG_API cg_status cg_clip_grad_norm_params_(int n, cg_tensor *const *params, double max_norm,
                                           double *total_norm);
/* g = min(max(g, -clip), clip); NaN stays NaN, as torch.clamp. */
CG_API cg_status cg_clip_grad_value_(cg_module *m, double clip);
CG_API cg_status cg_clip_grad_value_params_(int n, cg_tensor *const *params, double clip);

/* ---- charts (training curves as SVG) ------------------------------------------
 * Loss and metrics against epochs, train and validation, as a file a person
 * can read: panels side by side, each with its own y axis, ticks at 1-2-5
 * steps with compact labels ("0.25", "1e-6"), light grid lines, axis labels,
 * a legend and a title line. y is padded by 5% so no curve lies on the frame;
 * x runs over the epochs 1..n. Series i of a panel has colour i of a fixed
 * colour-blind-safe palette (blue, orange, bluish green, reddish purple,
 * black, sky blue, vermillion, grey), so train and validation keep their
 * colours in every panel. */
typedef struct cg_chart_series {
    const char *name; /* legend text, "train", "validation"; NULL: not in the legend */
    /* n values, y[i] at epoch i + 1; borrowed. NaN, infinite and beyond +-1e300
     * are gaps in the line; a value with no drawn neighbour is a dot. */
    const double *y;
    bool dashed; /* e.g. validation dashed */
} cg_chart_series;
typedef struct cg_chart_panel {
    const char *title;             /* "loss", "accuracy"; NULL: none */
    const char *ylabel;            /* NULL: the title */
    int nseries;                   /* 0 to 8 */
    const cg_chart_series *series; /* nseries series; borrowed */
} cg_chart_panel;
/* Writes an SVG to path: npanels (1 to 8) panels over x = 1..n (n >= 1),
 * the x axis labelled xlabel (NULL: "epoch"), under a title line (e.g.
 * "784-128-10 MLP, Adam 1e-3: val_acc 0.8912"; NULL: none). Text is escaped
 * (& < > ' "; control characters become spaces, bytes that are not UTF-8
 * '?'). Everything is borrowed and read during the call only. The
 * file goes to a new temporary next to path ("<path>.XXXXXX", mode 0644)
 * renamed over path, so a viewer reloading it never sees half a chart (not
 * synced to disk: a chart can be drawn again). CG_ERR_ARG for NULL path or
 * panels, counts out of range or a NULL y (nothing written), CG_ERR_IO
 * naming the path and the system's reason. */
CG_API cg_status cg_chart_svg(const char *path, const char *title, const char *xlabel, int n,
                              int npanels, const cg_chart_panel *panels);

/* ---- checkpoints (safetensors) ---------------------------------------------- */
/* Writes m's state under its state_dict names (loadable by
 * safetensors.torch.load_file; a tensor tied under two names is written
 * under both), and, each when given: the optimizer's state tensors (keys
 * "optimizer.<name>"), its kind, step and hyperparameters, the schedule's
 * state and the rng state (in __metadata__). o, s and rng may be NULL. The
 * file goes to a new temporary next to path ("<path>.tmp.<pid>.XXXXXX",
 * created exclusively, so a link planted there is never followed and
 * concurrent savers never share one), is synced and renamed over path, and
 * the directory synced: a failed save removes its temporary and a crash never
 * destroys the last good checkpoint. A process killed mid-save leaves its
 * temporary; the next successful save to path removes the temporaries of
 * processes no longer running on this machine. */
CG_API cg_status cg_save(const char *path, const cg_module *m, const cg_optim *o,
                         const cg_sched *s, const cg_rng *rng);
/* Reads a file written by cg_save or PyTorch. Every state tensor of m must
 * be present with its shape and dtype (other tensors in the file are
 * ignored); o, s and rng may be NULL, and each one given must have its state
 * in the file, else CG_ERR_ARG. A file saved before schedules and optimizer
 * hyperparameters were stored restores the optimizer's tensors and step and
 * keeps its hyperparameters. A tied tensor gets the bytes of its later name.
 * On any error (missing, truncated, corrupt, oversized header, wrong shape
 * or dtype, state the optimizer or schedule refuses) nothing is changed. */
CG_API cg_status cg_load(const char *path, cg_module *m, cg_optim *o, cg_sched *s, cg_rng *rng);

/* Options with their defaults from cg_load_defaults(). strict (true): every
 * state tensor of m must be in the file; false: absent ones are left as they
 * are and reported (PyTorch's load_state_dict(strict=False)). Shape and
 * dtype mismatches and the optimizer, schedule and rng rules are the same
 * either way. Unlike PyTorch, a strict load does not refuse the file's extra
 * tensors (a safetensors file may carry other data): they are reported. */
typedef struct cg_load_opts {
    bool strict;
} cg_load_opts;
CG_API cg_load_opts cg_load_defaults(void);
/* What a load did not match: missing, m's state names absent from the file
 * (state_dict order); unexpected, the file's tensor keys that are neither
 * m's state nor "optimizer.*" (name order). Strings and arrays are malloc'd;
 * free with cg_load_report_free (NULL and a zeroed report are fine). */
typedef struct cg_load_report {
    int nmissing, nunexpected;
    char **missing, **unexpected;
} cg_load_report;
/* cg_load with options (NULL: the defaults) and a report (NULL: none). On
 * success *report is filled; on error it is zeroed and nothing changes. */
CG_API cg_status cg_load_ex(const char *path, cg_module *m, cg_optim *o, cg_sched *s,
                            cg_rng *rng, const cg_load_opts *opts, cg_load_report *report);
CG_API void cg_load_report_free(cg_load_report *r);

/* Named tensors, not a module (safetensors.torch.save_file / load_file).
 * Writes n tensors (borrowed; any layout, written as their values in C
 * order) under their names, in the given order; a name repeated, NULL or
 * "__metadata__" is CG_ERR_ARG. Written as safely as cg_save. */
CG_API cg_status cg_save_tensors(const char *path, int n, const char *const *names,
                                 const cg_tensor *const *tensors);
/* A caller-owned dictionary: names malloc'd, tensors caller-owned, both
 * freed (with the arrays) by cg_tensor_dict_free (NULL and zeroed fine). */
typedef struct cg_tensor_dict {
    int n;
    char **names;
    cg_tensor **tensors;
} cg_tensor_dict;
/* Every tensor of the file, in name order (as load_file's keys). A tensor of
 * a dtype cgrad does not hold (BF16, U8, ...) is CG_ERR_DTYPE naming it:
 * nothing is dropped silently. Metadata is ignored. On error *out is zeroed. */
CG_API cg_status cg_load_tensors(const char *path, cg_tensor_dict *out);
CG_API void cg_tensor_dict_free(cg_tensor_dict *d);

/* ---- data ------------------------------------------------------------------ */
/* An IDX file (the MNIST format) of unsigned bytes, raw or gzip-compressed
 * (told apart by the gzip magic bytes). cgrad's tensor dtypes are f32, f64
 * and i64, so u8 data comes as this plain buffer; cg_idx_load converts. */
typedef struct cg_idx {
    int ndim;
    int64_t shape[CG_MAX_DIMS];
    uint8_t *data; /* numel bytes, C order; malloc'd, freed by cg_idx_free */
} cg_idx;

/* CG_ERR_IO for a missing or unreadable file, a bad magic number, a type other
 * than unsigned byte, a truncated file or inconsistent counts; the message
 * names the path and what is wrong. On error *out is empty. */
CG_API cg_status cg_idx_read(const char *path, cg_idx *out);
CG_API void cg_idx_free(cg_idx *idx); /* NULL and an empty cg_idx are fine */
/* The file as a caller-owned tensor: f32/f64 values are byte * scale (1/255
 * for pixels in [0, 1]), i64 values the bytes themselves (labels). */
CG_API cg_tensor *cg_idx_load(const char *path, cg_dtype dt, double scale);
/* x = (x - mean) / std in place (std > 0). */
CG_API cg_status cg_normalize_(cg_tensor *x, double mean, double std);
/* Keras' to_categorical: labels i64 [N] to one-hot [N, classes] of dtype dt;
 * a label outside [0, classes) is CG_ERR_INDEX. */
CG_API cg_tensor *cg_one_hot(cg_ctx *ctx, const cg_tensor *labels, int64_t classes,
                             cg_dtype dt);

/* Mini-batches over x [N, ...] and y [N, ...] (y may be NULL), both borrowed:
 * they must outlive the batcher (cg_batcher_next reports one whose context
 * was reset, CG_ERR_STATE).
 * Each epoch visits every sample once, in an order shuffled from rng (or in
 * order without shuffle); each batch is gathered into buffers made once, so
 * an epoch allocates nothing and never copies the dataset. */
typedef struct cg_batcher cg_batcher; /* opaque */
CG_API cg_batcher *cg_batcher_new(const cg_tensor *x, const cg_tensor *y, int64_t batch,
                                  bool shuffle, bool drop_last, cg_rng *rng);
/* The next batch: *xb [B, ...] and *yb (NULL without y; owned by the
 * batcher, valid until the next call; B < batch only for a kept last batch).
 * Each refill bumps the buffers' version, so a graph still holding the last
 * batch refuses to run backward. false at the end of the epoch, after which
 * the next call starts a new (reshuffled) epoch. */
CG_API bool cg_batcher_next(cg_batcher *b, cg_tensor **xb, cg_tensor **yb);
CG_API int64_t cg_batcher_nbatches(const cg_batcher *b); /* per epoch */
/* PyTorch's DistributedSampler for b: from the next epoch on, b hands out
 * only replica `rank`'s share of each epoch (0 <= rank < replicas). Each
 * epoch still orders all N samples as before (replicas whose rngs share a
 * seed share that order) and replica r takes its positions r, r + replicas,
 * r + 2 replicas, ...: with b's drop_last the order is first cut to
 * floor(N / replicas) * replicas samples, otherwise padded to
 * ceil(N / replicas) * replicas by repeating its first ones, so every
 * replica gets the same number n_r of samples, batched as before (the same
 * cg_batcher_nbatches on every replica). (0, 1) is the unsharded batcher.
 * b stays the caller's. Only between epochs: after a batch of an unfinished
 * epoch it is CG_ERR_STATE. It may remake the batch buffers (to
 * [min(batch, n_r), ...]): batches handed out before are invalid after it.
 * CG_ERR_ARG for a NULL b, replicas < 1, a rank outside [0, replicas), or
 * replicas > N > 0 with drop_last (no sample left). */
CG_API cg_status cg_batcher_shard(cg_batcher *b, int64_t rank, int64_t replicas);
CG_API void cg_batcher_free(cg_batcher *b);

/* ---- training loops (Keras' fit, evaluate, predict) -------------------------
 * model.fit for C, written on the public API above; the hand-written loop
 * ("Training a model" in the README) stays the way to do anything it does
 * not. Everything is borrowed: model, optimizer, schedule, rng, data and
 * callbacks must outlive the call; only the history (cg_fit) and the
 * predictions (cg_predict) become the caller's.
 *
 * The loop cg_fit runs, so that a hand-written one gives the same bits
 * (history and weights) from the same seed. ctx is a context of its own;
 * x, y the training tensors (the first floor(N (1 - validation_split))
 * rows with a split, the rest being the validation data); B a batch's rows;
 * nb its batches per epoch (cg_batcher_nbatches, or data.steps):
 *
 *   b = cg_batcher_new(x, y, batch_size, shuffle, false, rng);
 *   (callbacks: on_train_begin)
 *   for (epoch = initial_epoch; epoch < epochs; epoch++) {
 *       (callbacks: on_epoch_begin)  cg_module_train(model, true);
 *       for (i = 0; cg_batcher_next(b, &xb, &yb); i++) {
 *           (or fn(user, i, ctx, &xb, &yb) for i < nb)
 *           if (i % accum_steps == 0) cg_optim_zero_grad(optim);
 *           out = cg_module_forward(ctx, model, xb);
 *           l = loss(ctx, out, yb);                        (the batch's mean)
 *           loss_sum += cg_item(l) * B; each metric's sum += its batch sum;
 *           cg_backward(accum_steps > 1 ? cg_mul_scalar(ctx, l, 1.0 / accum_steps) : l);
 *           if ((i + 1) % accum_steps == 0 || i + 1 == nb) {
 *               if (clip_grad_norm > 0) cg_clip_grad_norm_(model, clip_grad_norm, NULL);
 *               cg_optim_step(optim);
 *               if (sched && sched_interval == CG_SCHED_BATCH) cg_sched_step(sched);
 *           }
 *           (callbacks: on_batch_end)  cg_ctx_reset(ctx);
 *       }
 *       loss = loss_sum / samples, each metric = its sum / samples;
 *       validation: cg_module_train(model, false), under cg_no_grad_push, over
 *           cg_batcher_new(vx, vy, validation_batch_size, false, false, NULL):
 *           val_loss, val_<metric> the same way (a reset per batch);
 *       if (sched && sched_interval == CG_SCHED_EPOCH)
 *           cg_sched_step_metric(sched, history[sched_monitor]);
 *       (callbacks: on_epoch_end; stop when one set stop_training)
 *   }
 *   (callbacks: on_train_end)  the model back in the mode it was in.
 *
 * Metrics are sums over samples divided by the epoch's sample count (exact
 * means, as Keras reports). With accumulation, the last group of an epoch
 * may be short: it is stepped all the same (its losses still divided by
 * accum_steps). The metrics are computed on the training forward's outputs
 * (training mode: dropout on), before backward, under no grad.
 * Steady state: the step's tensors live in ctx (one reset per step), the
 * batcher's buffers are reused, the history is made once: the loop mallocs
 * nothing beyond what the ops themselves do. */

/* A loss (Keras' loss=): the built-ins reduce with CG_MEAN. */
typedef enum cg_loss_kind {
    CG_LOSS_CROSS_ENTROPY = 0, /* logits [N, C], class ids i64 [N] (cg_cross_entropy:
                                  Keras' sparse categorical cross-entropy from logits) */
    CG_LOSS_CATEGORICAL,       /* logits [N, C], one-hot or probability targets [N, C]
                                  (cg_cross_entropy_probs) */
    CG_LOSS_MSE,               /* cg_mse_loss: output and target of one shape and dtype */
    CG_LOSS_BCE_WITH_LOGITS,   /* cg_bce_with_logits: logits and 0/1 targets, one shape */
    CG_LOSS_USER               /* fn below */
} cg_loss_kind;
/* A user loss: the batch's mean loss, a one-element tensor made in ctx (it
 * needs a graph to the output), or NULL with the error recorded. */
typedef cg_tensor *(*cg_loss_fn)(cg_ctx *ctx, const cg_tensor *output, const cg_tensor *target,
                                 void *user);
typedef struct cg_loss {
    cg_loss_kind kind;
    cg_loss_fn fn; /* CG_LOSS_USER only */
    void *user;    /* passed to fn (borrowed) */
} cg_loss;

/* A metric (Keras' metrics=[...]): its sum over a batch's samples, divided
 * by the samples seen. The history key is name, or for the built-ins by
 * default "accuracy", "top_<k>_accuracy", "mse", "mae"; validation adds
 * "val_<name>". Names are [A-Za-z0-9_], unique, not "loss" nor "val_...". */
typedef enum cg_metric_kind {
    /* output [N, ..., C] against class ids i64 [N, ...] or targets [N, ..., C]
     * (one-hot or probabilities: their argmax): the share of argmax hits,
     * per sample (a mean over its positions when there are several) */
    CG_METRIC_ACCURACY = 0,
    CG_METRIC_TOP_K, /* the same with "among the k largest" (ties: lower index first) */
    CG_METRIC_MSE,   /* output and target of one shape (any dtype): per sample the mean
                        of (o - t)^2 over its elements, in f64 */
    CG_METRIC_MAE,   /* the same with |o - t| */
    CG_METRIC_USER   /* fn below */
} cg_metric_kind;
/* A user metric: the sum over the batch's samples into *sum (no graph is
 * recorded: ctx is under no grad), CG_OK or an error. */
typedef cg_status (*cg_metric_fn)(cg_ctx *ctx, const cg_tensor *output, const cg_tensor *target,
                                  void *user, double *sum);
typedef struct cg_metric {
    cg_metric_kind kind;
    const char *name; /* the key; NULL: the built-in's (a user metric needs one) */
    int k;            /* top-k: k >= 1 */
    cg_metric_fn fn;  /* CG_METRIC_USER only */
    void *user;
} cg_metric;

/* Data: tensors x [N, ...] and y [N, ...] (borrowed; batched by the
 * batcher, any layout), or a function filling batch `step` (0 .. steps-1 of
 * an epoch, Keras' Sequence.__getitem__) for data that does not fit in memory
 * or is generated: *x and *y made in ctx (reset after the step) or borrowed
 * tensors that outlive it; CG_OK or an error, which stops the run. One of
 * the two, not both. y is not read by cg_predict (it may be NULL there). */
typedef cg_status (*cg_batch_fn)(void *user, int64_t step, cg_ctx *ctx, cg_tensor **x,
                                 cg_tensor **y);
typedef struct cg_fit_data {
    const cg_tensor *x, *y;
    cg_batch_fn fn;
    void *user;    /* passed to fn (borrowed) */
    int64_t steps; /* with fn: batches per epoch, >= 1 (0 with tensors) */
} cg_fit_data;

/* Per epoch, Keras' History.history: keys[k] ("loss", the metrics, then
 * "val_loss", "val_<metric>"...) with values[k][e] for the e-th epoch run
 * (epoch initial_epoch + e), e < epochs. Made by cg_fit, freed by
 * cg_history_free (everything in it is malloc'd; NULL is fine). */
typedef struct cg_history {
    int epochs; /* rows recorded: the epochs run */
    int nkeys;
    char **keys;
    double **values;
    bool stopped; /* a callback set stop_training */
} cg_history;
/* The row of key (borrowed from h: epochs values), NULL (CG_ERR_ARG) when h
 * has no such key. */
CG_API const double *cg_history_get(const cg_history *h, const char *key);
CG_API void cg_history_free(cg_history *h);

/* What a callback sees, and may change (stop_training). */
typedef struct cg_fit_state {
    cg_module *model;
    cg_optim *optim;
    cg_sched *sched;           /* NULL without one */
    cg_rng *rng;               /* the shuffle's (NULL without) */
    cg_ctx *ctx;               /* the step's context, reset after on_batch_end */
    const cg_history *history; /* the epochs finished (this one too at on_epoch_end) */
    int epoch, epochs;         /* the epoch (0-based, from initial_epoch) and opts.epochs */
    int64_t batch, steps;      /* on_batch_end: the batch (0-based); batches per epoch */
    int64_t seen;              /* samples this epoch so far */
    /* logs[k] goes with history->keys[k] for k < nlogs: at a batch end the
     * training keys (running means over the epoch so far), at an epoch end
     * all of them (the row just recorded). */
    int nlogs;
    const double *logs;
    /* on_batch_end: the batch and the model's output (in ctx) */
    const cg_tensor *x, *y, *output;
    /* set it to end training: checked after each batch and each epoch (set
     * in on_train_begin, no epoch runs) */
    bool stop_training;
} cg_fit_state;

/* Callbacks (Keras' callbacks=[...]), run in the order given at each
 * event. Each is made by its constructor below and freed by the caller with
 * cg_callback_free once no fit uses it; one callback may serve several fits
 * in turn (its state starts again at each), not two at once. A callback's
 * error (an unwritable file: CG_ERR_IO naming the path) stops cg_fit with
 * that error. */
typedef struct cg_callback cg_callback;        /* opaque */
CG_API void cg_callback_free(cg_callback *cb); /* NULL is fine */

/* Keras' progress bar: a line "Epoch 3/10" before each epoch, then
 *   "1875/1875 [==============================] - 2s 1ms/step - loss: 0.4967
 *    - accuracy: 0.8253 - val_loss: 0.4512 - val_accuracy: 0.8390"
 * (one line), with "- ETA: 3s" in place of the times during the epoch.
 * Values print as %.4f, or %.4e when |v| <= 1e-3. On a terminal the line is
 * redrawn in place ('\r', padded over the last one) at most every interval
 * seconds (and at the epoch's last batch), and kept below the width: the
 * bar shrinks (to 5), then values are dropped from the end, then the bar
 * and the times go, then the line is cut; the epoch's finished line goes on
 * with the values it dropped on lines of their own (" - val_loss: ..."), so
 * nothing wraps and nothing is lost. Elsewhere (a file, a pipe) it prints
 * the epoch line and one finished line per epoch, no '\r', the width
 * applied (values dropped) only when given. */
typedef enum cg_tty { CG_TTY_AUTO = 0, CG_TTY_YES, CG_TTY_NO } cg_tty;
typedef struct cg_progbar_opts {
    FILE *out;       /* NULL: stdout (borrowed, not closed) */
    int width;       /* columns; 0: on a terminal TIOCGWINSZ on out, else $COLUMNS,
                        else 80; elsewhere no limit */
    cg_tty tty;      /* AUTO: isatty(fileno(out)) */
    double interval; /* seconds between redraws; 0: Keras' 0.05 */
    /* seconds on a monotonic clock; NULL: CLOCK_MONOTONIC (tests inject one) */
    double (*clock)(void *user);
    void *clock_user;
} cg_progbar_opts;
/* opts NULL (or zeroed): the defaults. CG_ERR_ARG for a negative width or
 * interval, a tty value outside the enum. */
CG_API cg_callback *cg_progbar_new(const cg_progbar_opts *opts);

/* Keras' CSVLogger: after each epoch a row "epoch,<keys sorted>" (epoch
 * from 0, values printed exactly: the shortest %g that reads back), the
 * header first; append keeps an existing file's rows (and header). The file
 * is opened when training begins (path copied). */
CG_API cg_callback *cg_csv_logger_new(const char *path, bool append);

/* What improving means for a monitored key: AUTO is MAX for a name holding
 * "acc", else MIN (Keras' rule). */
typedef enum cg_monitor_mode {
    CG_MONITOR_AUTO = 0,
    CG_MONITOR_MIN,
    CG_MONITOR_MAX
} cg_monitor_mode;
/* Keras' ModelCheckpoint: at each epoch end where monitor (a history key:
 * "val_loss", "accuracy", ...) is better than every epoch before (strictly;
 * NaN never is), or at every epoch end without save_best_only, cg_save(path,
 * model, optim, sched, rng) (all four: a resumable checkpoint; cg_load with
 * NULLs reads the model alone). A key the history lacks fails when training
 * begins. */
CG_API cg_callback *cg_model_checkpoint_new(const char *path, const char *monitor,
                                            cg_monitor_mode mode, bool save_best_only);
/* Keras' EarlyStopping: an epoch improves when monitor beats the best so far
 * by more than min_delta (>= 0); training stops at the end of the patience-th
 * epoch in a row without improvement (patience >= 0; 0: the first). With
 * restore_best_weights the model's state (parameters and buffers) of the
 * best epoch is put back when training ends, stopped or not (Keras 3). */
CG_API cg_callback *cg_early_stopping_new(const char *monitor, cg_monitor_mode mode,
                                          int patience, double min_delta,
                                          bool restore_best_weights);
/* Keras' LambdaCallback: user hooks, each optional (NULL), given the state
 * (set stop_training to stop) and user; a status other than CG_OK stops
 * cg_fit with it (the hook records the message, cg_set_error). */
typedef cg_status (*cg_fit_hook)(cg_fit_state *st, void *user);
typedef struct cg_callback_fns {
    cg_fit_hook on_train_begin, on_epoch_begin, on_batch_end, on_epoch_end, on_train_end;
} cg_callback_fns;
CG_API cg_callback *cg_lambda_callback_new(const cg_callback_fns *fns, void *user);
/* A chart of the history (cg_chart_svg) rewritten at each epoch's end: a
 * "loss" panel and one per metric, the training series solid, the
 * validation one ("val_<key>") dashed when there is validation; x is the
 * epoch. title names the run (NULL: the path); both copied. cg_chart_svg's
 * error (an unwritable path: CG_ERR_IO) stops cg_fit with it. */
CG_API cg_callback *cg_chart_logger_new(const char *path, const char *title);

/* When a schedule steps: after each epoch (PyTorch's usual), or after each
 * optimizer step (OneCycle, warm-up by steps). */
typedef enum cg_sched_interval { CG_SCHED_EPOCH = 0, CG_SCHED_BATCH } cg_sched_interval;

typedef struct cg_fit_opts {
    int epochs;         /* 1; >= 0 */
    int initial_epoch;  /* 0; Keras': resume at this epoch (<= epochs) */
    int64_t batch_size; /* 32; tensor data, >= 1 */
    bool shuffle;       /* true: each epoch's order from rng (tensor data) */
    cg_rng *rng;        /* NULL; needed by shuffle */
    /* validation: data (tensors or a function), or the last validation_split
     * of the training tensors (in [0, 1), Keras' rule), not both */
    const cg_fit_data *validation;
    double validation_split;
    int64_t validation_batch_size; /* 0: batch_size */
    int accum_steps;               /* 1: an optimizer step every accum_steps batches (0: 1) */
    double clip_grad_norm;         /* 0: none; else cg_clip_grad_norm_ before each step */
    cg_sched *sched;               /* NULL: none (borrowed, on optim) */
    cg_sched_interval sched_interval;
    /* the key given to cg_sched_step_metric per epoch (ReduceLROnPlateau;
     * other schedules ignore it); NULL: "val_loss" with validation, else "loss" */
    const char *sched_monitor;
    int nmetrics;
    const cg_metric *metrics;
    int ncallbacks;
    cg_callback *const *callbacks; /* distinct, borrowed */
    /* Keras' verbose: 1 (the default): a progress bar on stdout unless a
     * callback is one (cg_progbar_new); 0: only what the callbacks print */
    int verbose;
} cg_fit_opts;
/* Keras' defaults: 1 epoch, batches of 32, shuffled (so set rng), a
 * progress bar (verbose 1), nothing else. */
CG_API cg_fit_opts cg_fit_defaults(void);

/* Trains model with optim on loss over train (see the loop above); opts
 * NULL: the defaults. Returns the history (caller-owned: cg_history_free),
 * or NULL with the error "cg_fit: ...": NULL model, optim, loss or train (a
 * NULL tensor in the data keeps the error of the failure that made it);
 * bad options (epochs < 0, batch_size < 1, validation_split outside [0, 1),
 * accum_steps < 1, a negative clip, shuffle without rng, bad metrics or
 * callbacks); x, y or validation data whose sample counts, sample shapes or
 * dtypes disagree; a failing op, loss, batch function or callback (training
 * stops there; the model keeps the steps taken). */
CG_API cg_history *cg_fit(cg_module *model, cg_optim *optim, const cg_loss *loss,
                          const cg_fit_data *train, const cg_fit_opts *opts);
/* Keras' evaluate: the mean loss over data's samples, then each metric, into
 * results[0 .. nmetrics] (1 + nmetrics values), in eval mode without a graph,
 * in batches of batch_size in order (the model's mode restored after). On
 * error ("cg_evaluate: ...", as cg_fit's) results is left as it was. */
CG_API cg_status cg_evaluate(cg_module *model, const cg_loss *loss, const cg_fit_data *data,
                             int64_t batch_size, int nmetrics, const cg_metric *metrics,
                             double *results);
/* Keras' predict: the model's outputs for data's x in batches (eval mode, no
 * graph), concatenated along dim 0: [N, ...], caller-owned (cg_tensor_free).
 * Every batch's output must agree in dtype and trailing shape. */
CG_API cg_tensor *cg_predict(cg_module *model, const cg_fit_data *data, int64_t batch_size);

/* ---- text (bytes as tokens, for character-level models) -------------------------
 * A vocabulary is the set of distinct bytes of a text, sorted: id i is the
 * byte bytes[i]. It is stored as a tensor (i64 [size], the byte values) so it
 * can be saved beside a model's checkpoint and restored with it. */
typedef struct cg_vocab {
    int size;           /* 0..256 */
    uint8_t bytes[256]; /* id -> byte, increasing (zeros past size) */
    int16_t ids[256];   /* byte -> id, -1 when absent */
} cg_vocab;
/* The vocabulary of n bytes of data. */
CG_API cg_status cg_vocab_build(cg_vocab *v, const void *data, int64_t n);
/* n bytes -> ids i64 [n]; a byte not in v is CG_ERR_ARG (naming it and its
 * position). */
CG_API cg_tensor *cg_vocab_encode(cg_ctx *ctx, const cg_vocab *v, const void *data, int64_t n);
/* ids (i64, any shape and layout) -> their bytes in C order and a NUL, into
 * out of size bytes (more than numel, else CG_ERR_ARG); an id outside
 * [0, size) is CG_ERR_INDEX. */
CG_API cg_status cg_vocab_decode(const cg_vocab *v, const cg_tensor *ids, char *out,
                                 size_t size);
/* v as i64 [size] (its bytes), and back: the tensor must hold increasing
 * values in [0, 255] (else CG_ERR_ARG, v unchanged). */
CG_API cg_tensor *cg_vocab_tensor(cg_ctx *ctx, const cg_vocab *v);
CG_API cg_status cg_vocab_from_tensor(cg_vocab *v, const cg_tensor *t);
/* A safetensors file holding the tensor "vocab" (cg_save_tensors), and its
 * reading (any file with that tensor, e.g. one written by PyTorch). */
CG_API cg_status cg_vocab_save(const char *path, const cg_vocab *v);
CG_API cg_status cg_vocab_load(const char *path, cg_vocab *v);

/* A text file as ids over its vocabulary. */
typedef struct cg_text {
    cg_vocab vocab;
    cg_tensor *ids; /* i64 [N], N >= 1; owned: freed by cg_text_free */
} cg_text;
/* Reads the file: its vocabulary is built from it, or is *vocab when given
 * (a byte outside it is then CG_ERR_ARG). A missing, unreadable or empty
 * file is CG_ERR_IO. On error *out is zeroed. */
CG_API cg_status cg_text_load(const char *path, const cg_vocab *vocab, cg_text *out);
CG_API void cg_text_free(cg_text *t); /* NULL and a zeroed text are fine */
/* By position: *train the first floor(N train_frac) ids, *val the rest
 * (caller-owned views of the caller-owned ids, freed with cg_tensor_free;
 * the storage lives while any of them does). */
CG_API cg_status cg_text_split(const cg_tensor *ids, double train_frac, cg_tensor **train,
                               cg_tensor **val);
/* batch windows of len consecutive ids of ids (i64 [N], any stride), each
 * starting at a position drawn uniformly from [0, N - len] by rng, as i64
 * [batch, len]. For next-token training take len = T + 1: inputs
 * [:, :T], targets [:, 1:]. */
CG_API cg_tensor *cg_text_batch(cg_ctx *ctx, const cg_tensor *ids, int64_t batch, int64_t len,
                                cg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
