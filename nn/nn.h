/* cgrad nn: modules, init, losses, optimizers, schedules, clipping and
 * checkpoints, written as ordinary graph code on the public ops.
 *
 * Ownership: cg_nn_* constructors return a module the caller frees with
 * cg_module_free (NULL is fine); a container takes ownership of its
 * children, also when it fails. A module owns its parameters, their
 * gradients and its buffers; all parameters of a module tree share one flat
 * buffer (and their gradients another), so an optimizer step is one loop.
 * Tensors returned by accessors belong to the module: do not free them.
 * Optimizers and schedules are freed with their _free; they borrow the
 * module / optimizer they were made for, which must outlive them.
 *
 * Errors as in the rest of cgrad: NULL or a cg_status, the message in
 * cg_last_error(). */
#ifndef CG_NN_H
#define CG_NN_H

#include "../ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- modules ------------------------------------------------------------- */
typedef struct cg_module cg_module; /* opaque */

typedef enum cg_act {
    CG_ACT_NONE = 0,
    CG_ACT_RELU,
    CG_ACT_TANH,
    CG_ACT_SIGMOID,
    CG_ACT_GELU,
    CG_ACT_SILU,
    CG_ACT_LEAKY_RELU, /* slope 0.01 */
    CG_ACT_ELU         /* alpha 1 */
} cg_act;

/* Runs the module on x in ctx (a graph when parameters require gradients). */
CG_API cg_tensor *cg_module_forward(cg_ctx *ctx, cg_module *m, const cg_tensor *x);
/* Train or eval mode, for m and all its children (dropout, batch norm). */
CG_API void cg_module_train(cg_module *m, bool training);
CG_API bool cg_module_is_training(const cg_module *m);
CG_API const char *cg_module_name(const cg_module *m); /* "Linear", "Sequential", ... */
CG_API void cg_module_free(cg_module *m);

/* State in PyTorch's state_dict order and names ("0.weight", "1.running_mean"):
 * trainable parameters and buffers (running statistics). i in [0, n). */
CG_API int cg_module_nstate(const cg_module *m);
CG_API cg_tensor *cg_module_state(const cg_module *m, int i, const char **name,
                                  bool *is_param);
CG_API cg_tensor *cg_module_find(const cg_module *m, const char *name); /* NULL if none */
/* Parameters only (what optimizers update), in the same order. */
CG_API int cg_module_nparams(const cg_module *m);
CG_API cg_tensor *cg_module_param(const cg_module *m, int i, const char **name);
CG_API int64_t cg_module_numel(const cg_module *m); /* parameter elements */
/* 1-D views (borrowed) of the flat parameter and gradient buffers. */
CG_API cg_tensor *cg_module_flat_params(const cg_module *m);
CG_API cg_tensor *cg_module_flat_grads(const cg_module *m);
CG_API void cg_module_zero_grad(cg_module *m);

/* ---- layers (dt: the parameters' dtype, f32 or f64) ------------------------ */
/* y = x W^T + b; W [out, in] kaiming-uniform with a = sqrt(5), b uniform
 * +-1/sqrt(in): PyTorch's nn.Linear init. */
CG_API cg_module *cg_nn_linear(cg_rng *rng, cg_dtype dt, int64_t in, int64_t out,
                               bool bias);
/* Children run in order, named "0", "1", ...; takes ownership of them. */
CG_API cg_module *cg_nn_sequential(int n, cg_module *const *children);
/* Linear(sizes[0], sizes[1]), act, Linear(sizes[1], sizes[2]), act, ...,
 * Linear(sizes[n-2], sizes[n-1]) with no activation after the last. */
CG_API cg_module *cg_nn_mlp(cg_rng *rng, cg_dtype dt, int nsizes, const int64_t *sizes,
                            cg_act act);
CG_API cg_module *cg_nn_activation(cg_act act);
/* Zeroes with probability p in training mode; rng is borrowed. */
CG_API cg_module *cg_nn_dropout(double p, cg_rng *rng);
/* Over the last dim of size dim; weight ones, bias zeros (PyTorch eps 1e-5). */
CG_API cg_module *cg_nn_layernorm(cg_dtype dt, int64_t dim, double eps);
/* [N, C] or [N, C, L]; running mean and variance (unbiased) updated with
 * momentum in training, used in eval (PyTorch eps 1e-5, momentum 0.1). */
CG_API cg_module *cg_nn_batchnorm1d(cg_dtype dt, int64_t features, double eps,
                                    double momentum);
/* Lookup of i64 indices in a [num, dim] table initialised N(0, 1). */
CG_API cg_module *cg_nn_embedding(cg_rng *rng, cg_dtype dt, int64_t num, int64_t dim);

/* ---- init (in place, from an explicit rng; t is a parameter or any tensor) - */
typedef enum cg_fan { CG_FAN_IN, CG_FAN_OUT } cg_fan;
/* gain for CG_ACT_NONE / SIGMOID 1, RELU sqrt(2), TANH 5/3, LEAKY_RELU
 * sqrt(2 / (1 + slope^2)) with slope `param`. */
CG_API double cg_init_gain(cg_act act, double param);
CG_API cg_status cg_init_uniform(cg_tensor *t, cg_rng *rng, double lo, double hi);
CG_API cg_status cg_init_normal(cg_tensor *t, cg_rng *rng, double mean, double std);
CG_API cg_status cg_init_constant(cg_tensor *t, double value);
CG_API cg_status cg_init_xavier_uniform(cg_tensor *t, cg_rng *rng, double gain);
CG_API cg_status cg_init_xavier_normal(cg_tensor *t, cg_rng *rng, double gain);
/* PyTorch's kaiming_*: a is the leaky slope for CG_ACT_LEAKY_RELU. */
CG_API cg_status cg_init_kaiming_uniform(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
                                         cg_act act);
CG_API cg_status cg_init_kaiming_normal(cg_tensor *t, cg_rng *rng, double a, cg_fan mode,
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
CG_API cg_adam_opts cg_adam_defaults(double lr);   /* betas 0.9, 0.999; eps 1e-8 */
CG_API cg_adam_opts cg_adamw_defaults(double lr);  /* the same, weight decay 0.01 */
CG_API cg_rmsprop_opts cg_rmsprop_defaults(double lr); /* alpha 0.99, eps 1e-8 */
CG_API cg_adagrad_opts cg_adagrad_defaults(double lr); /* eps 1e-10 */

/* For all parameters of m, the root of its module tree (borrowed; it must
 * outlive the optimizer and not be put into a container afterwards). Each
 * step bumps the parameters' versions, so a graph recorded before a step
 * cannot be backpropagated after it, as in PyTorch. */
CG_API cg_optim *cg_sgd_new(cg_module *m, const cg_sgd_opts *o);
CG_API cg_optim *cg_adam_new(cg_module *m, const cg_adam_opts *o);
CG_API cg_optim *cg_adamw_new(cg_module *m, const cg_adam_opts *o); /* decoupled decay */
CG_API cg_optim *cg_rmsprop_new(cg_module *m, const cg_rmsprop_opts *o);
CG_API cg_optim *cg_adagrad_new(cg_module *m, const cg_adagrad_opts *o);
/* One update from the gradients in the module's flat gradient buffer. */
CG_API cg_status cg_optim_step(cg_optim *o);
CG_API void cg_optim_zero_grad(cg_optim *o);
CG_API double cg_optim_lr(const cg_optim *o);
CG_API void cg_optim_set_lr(cg_optim *o, double lr);
/* Parameter groups (PyTorch's param_groups), 0 .. ngroups-1; schedules act
 * on every group's lr. */
CG_API int cg_optim_ngroups(const cg_optim *o);
CG_API double cg_optim_group_lr(const cg_optim *o, int group);
CG_API cg_status cg_optim_set_group_lr(cg_optim *o, int group, double lr);
CG_API int64_t cg_optim_steps(const cg_optim *o);
CG_API const char *cg_optim_name(const cg_optim *o); /* "sgd", "adam", ... */
/* Its state, flat 1-D tensors over all parameters ("momentum_buffer",
 * "exp_avg", ...), for checkpoints; owned by the optimizer. */
CG_API int cg_optim_nstate(const cg_optim *o);
CG_API cg_tensor *cg_optim_state(const cg_optim *o, int i, const char **name);
CG_API void cg_optim_set_steps(cg_optim *o, int64_t steps);
CG_API void cg_optim_free(cg_optim *o);

/* ---- learning-rate schedules (PyTorch's, stepped once per epoch or step) ---
 * A schedule owns the optimizer's lr: it computes it from the lr it found at
 * construction, so a hand-set lr is overwritten at its next step and two
 * schedules on one optimizer do not chain. OneCycle changes the lr only (no
 * momentum cycling) and fails past total_steps. */
typedef struct cg_sched cg_sched; /* opaque */
CG_API cg_sched *cg_steplr_new(cg_optim *o, int step_size, double gamma);
CG_API cg_sched *cg_multisteplr_new(cg_optim *o, int n, const int *milestones, double gamma);
CG_API cg_sched *cg_exponentiallr_new(cg_optim *o, double gamma);
CG_API cg_sched *cg_cosinelr_new(cg_optim *o, int t_max, double eta_min);
/* LinearLR: factor from start_factor to 1 over total_steps. */
CG_API cg_sched *cg_warmuplr_new(cg_optim *o, double start_factor, int total_steps);
/* OneCycleLR, cosine: from max_lr/div_factor up to max_lr over pct_start of
 * total_steps, then down to max_lr/(div_factor*final_div_factor). */
CG_API cg_sched *cg_onecyclelr_new(cg_optim *o, double max_lr, int total_steps,
                                   double pct_start, double div_factor,
                                   double final_div_factor);
/* ReduceLROnPlateau, mode min, relative threshold: lr *= factor after
 * patience steps without improvement, not below min_lr. */
CG_API cg_sched *cg_plateau_new(cg_optim *o, double factor, int patience, double threshold,
                                double min_lr);
CG_API double cg_sched_step(cg_sched *s);                      /* returns the new lr */
/* plateau needs the metric (cg_sched_step on it is CG_ERR_ARG and keeps the
 * lr); the other schedules ignore it. */
CG_API double cg_sched_step_metric(cg_sched *s, double metric);
CG_API double cg_sched_lr(const cg_sched *s);
CG_API void cg_sched_free(cg_sched *s);

/* ---- gradient clipping (over m's flat gradient buffer) ---------------------- */
/* Scales all gradients so their global L2 norm is at most max_norm; returns
 * the norm before clipping. */
CG_API double cg_clip_grad_norm(cg_module *m, double max_norm);
CG_API void cg_clip_grad_value(cg_module *m, double clip);

/* ---- checkpoints (safetensors) ---------------------------------------------- */
/* Writes m's state under its state_dict names (loadable by
 * safetensors.torch.load_file), and when given the optimizer's state (keys
 * "optimizer.<name>"), its step and the rng state (in __metadata__). The file
 * is written to path + ".tmp" and renamed over path, so a crash never
 * destroys the last good checkpoint. */
CG_API cg_status cg_save(const char *path, const cg_module *m, const cg_optim *o,
                         const cg_rng *rng);
/* Reads a file written by cg_save or PyTorch. Every key of m must be present
 * with its shape and dtype; on any error (missing, truncated, corrupt,
 * oversized header, wrong shape or dtype) nothing is changed. o and rng may
 * be NULL; when given, their state must be in the file. */
CG_API cg_status cg_load(const char *path, cg_module *m, cg_optim *o, cg_rng *rng);

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

/* Mini-batches over x [N, ...] and y [N, ...] (y may be NULL), both borrowed.
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
CG_API void cg_batcher_free(cg_batcher *b);

#ifdef __cplusplus
}
#endif
#endif
