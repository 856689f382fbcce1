/* A character-level GPT trained on the King James Bible (Debian's bible-kjv:
 * `make char_gpt` writes build/data/kjv.txt with `bible "gen1:1-rev22:21"`
 * and runs this program), read by cgrad's text loader: a vocabulary of the
 * distinct bytes of the text, the first 90% for training, the last 10% held
 * out. The model is cg_nn_gpt (4 layers, 4 heads, width 256, context 128 by
 * default: about 3.2M parameters), trained with AdamW (no decay on biases
 * and LayerNorms), a linear warm-up then a cosine decay to a tenth of the
 * lr, and gradient clipping at 1. The held-out loss, in nats per character,
 * is measured every --eval-every steps on fixed windows of the held-out
 * text; at the end the model writes --sample N characters after --prompt.
 *
 * --save FILE writes the checkpoint (model under PyTorch's state_dict names,
 * optimizer, schedule, rng) and the vocabulary beside it, in FILE with
 * ".safetensors" replaced by ".vocab.safetensors"; --load FILE resumes from
 * both: training goes on from the checkpoint's step to --steps, on the
 * schedule of --steps (the same plan continues bitwise); with --steps 0 (or
 * no more than the checkpoint's) it only evaluates and samples. bench/torch_gpt.py loads the
 * checkpoint into its PyTorch twin with strict=True and prints the same held-out loss.
 *
 * Build: cc char_gpt.c $(pkg-config --cflags --libs cgrad); --help lists
 * the flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgrad.h"
#include "example_common.h"

typedef struct args {
    int64_t layers, heads, width, context, batch, steps, warmup, eval_every, eval_windows;
    int64_t sample, top_k;
    int threads;
    double lr, dropout, temperature;
    uint64_t seed;
    const char *data, *save, *load, *prompt, *csv, *svg;
} args;

/* ---- command line ----------------------------------------------------------------------- */
static const char *const usage_lines[] = {
    "  --data FILE        text to train on (build/data/kjv.txt: `make build/data/kjv.txt`)",
    "  --layers N         transformer blocks (4)",
    "  --heads N          attention heads, dividing --width (4)",
    "  --width N          embedding width (256)",
    "  --context N        longest sequence the model sees, T (128)",
    "  --steps N          optimizer steps in all (2000); 0: only evaluate and sample",
    "  --batch N          sequences per step (16)",
    "  --lr X             peak learning rate of AdamW (2e-3)",
    "  --warmup N         steps of linear warm-up before the cosine decay (100)",
    "  --dropout X        dropout on embeddings, attention and residuals (0)",
    "  --threads N        threads for BLIS and cgrad's kernels (default: all)",
    "  --seed N           seed of the one rng: init, batches, dropout, sampling (42)",
    "  --eval-every N     held-out loss every N steps (200)",
    "  --eval-windows N   held-out windows of context + 1 characters per evaluation (128)",
    "  --save FILE        checkpoint at the end (and FILE's .vocab.safetensors)",
    "  --load FILE        resume from (or, with --steps 0, sample from) a checkpoint",
    "  --sample N         characters to generate at the end (500)",
    "  --prompt TEXT      text the sample continues (\"And God said\")",
    "  --temperature X    sampling temperature (0.8)",
    "  --top-k N          sample among the N likeliest characters; 0: all (0)",
    "  --csv FILE         per-evaluation log: step, losses, lr, seconds (build/char_gpt.csv)",
    "  --svg FILE         chart of the losses and the lr (build/char_gpt.svg)",
    "  --help             this list",
    NULL,
};

/* 0 to run, 1 for --help, -1 for bad flags. */
static int parse_args(int argc, char **argv, args *a) {
    *a = (args){.layers = 4,
                .heads = 4,
                .width = 256,
                .context = 128,
                .steps = 2000,
                .batch = 16,
                .warmup = 100,
                .eval_every = 200,
                .eval_windows = 128,
                .sample = 500,
                .lr = 2e-3,
                .temperature = 0.8,
                .seed = 42,
                .data = "build/data/kjv.txt",
                .prompt = "And God said",
                .csv = OUTPUT_DIR "/char_gpt.csv",
                .svg = OUTPUT_DIR "/char_gpt.svg"};
    const example_flag flags[] = {flag_i64("--layers", &a->layers),
                                  flag_i64("--heads", &a->heads),
                                  flag_i64("--width", &a->width),
                                  flag_i64("--context", &a->context),
                                  flag_i64("--steps", &a->steps),
                                  flag_i64("--batch", &a->batch),
                                  flag_i64("--warmup", &a->warmup),
                                  flag_i64("--eval-every", &a->eval_every),
                                  flag_i64("--eval-windows", &a->eval_windows),
                                  flag_i64("--sample", &a->sample),
                                  flag_i64("--top-k", &a->top_k),
                                  flag_real("--lr", &a->lr),
                                  flag_real("--dropout", &a->dropout),
                                  flag_real("--temperature", &a->temperature),
                                  flag_str("--data", &a->data),
                                  flag_str("--save", &a->save),
                                  flag_str("--load", &a->load),
                                  flag_str("--prompt", &a->prompt),
                                  flag_str("--csv", &a->csv),
                                  flag_str("--svg", &a->svg),
                                  flag_int("--threads", &a->threads),
                                  flag_u64("--seed", &a->seed)};
    int p = parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]));
    if (p) return p;
    bool ok = a->layers >= 0 && a->heads >= 1 && a->width >= 1 && a->context >= 1 &&
              a->steps >= 0 && a->batch >= 1 && a->warmup >= 0 && a->eval_every >= 1 &&
              a->eval_windows >= 1 && a->sample >= 0 && a->top_k >= 0 && a->lr > 0 &&
              a->temperature > 0;
    return ok ? 0 : -1;
}

/* ---- the run's state -------------------------------------------------------------------- */
typedef struct history { /* one row per evaluation, for the CSV and the chart */
    double *step, *train, *val, *lr, *seconds;
    int n, cap;
} history;

typedef struct run {
    cg_text text;
    cg_tensor *train, *val; /* views of text.ids: the first 90%, the rest */
    cg_module *model;
    cg_optim *opt;
    cg_sched *sched;
    cg_ctx *ctx;
    cg_rng rng;
    history h;
} run;

/* The vocabulary file beside a checkpoint: "x.safetensors" -> "x.vocab.safetensors". */
static void vocab_path(const char *ckpt, char *out, size_t size) {
    size_t n = strlen(ckpt), ext = strlen(".safetensors");
    if (n >= ext && !strcmp(ckpt + n - ext, ".safetensors")) n -= ext;
    snprintf(out, size, "%.*s.vocab.safetensors", (int)n, ckpt);
}

/* AdamW, betas (0.9, 0.99), weight decay 0.1 on the matrices (and the tied
 * embedding), none on biases and LayerNorm weights. */
static cg_optim *optimizer_new(cg_module *m, double lr) {
    int n = cg_module_nparams(m), nd = 0, nn = 0;
    cg_tensor **decay = malloc(sizeof *decay * (size_t)n);
    cg_tensor **plain = malloc(sizeof *plain * (size_t)n);
    for (int i = 0; decay && plain && i < n; i++) {
        cg_tensor *p = cg_module_param(m, i, NULL);
        if (cg_ndim(p) >= 2)
            decay[nd++] = p;
        else
            plain[nn++] = p;
    }
    cg_adam_opts with = cg_adamw_defaults(lr), without;
    with.beta2 = 0.99;
    with.weight_decay = 0.1;
    without = with;
    without.weight_decay = 0;
    cg_param_group groups[] = {{nd, decay, &with}, {nn, plain, &without}};
    cg_optim *o = decay && plain ? cg_adamw_new_groups(2, groups, &with) : NULL;
    free(decay);
    free(plain);
    return o;
}

/* The lr factor after `step` steps of a plan of a->steps: a linear warm-up
 * from 1/100 over the first a->warmup steps (at most half the plan), then a
 * cosine decay to 1/10 at the last step. A function of the step alone
 * (LambdaLR), so a run resumed with a longer --steps follows the longer plan
 * from the step it stopped at. */
static double lr_factor(int64_t step, void *user) {
    const args *a = user;
    int64_t warm = a->warmup < a->steps / 2 ? a->warmup : a->steps / 2;
    if (step < warm) return 0.01 + 0.99 * (double)step / (double)warm;
    double p = a->steps > warm ? (double)(step - warm) / (double)(a->steps - warm) : 1;
    return 0.1 + 0.45 * (1 + cos(3.14159265358979323846 * (p < 1 ? p : 1)));
}

static void history_free(history *h) {
    free(h->step);
    free(h->train);
    free(h->val);
    free(h->lr);
    free(h->seconds);
}

static void run_free(run *r) {
    history_free(&r->h);
    cg_ctx_free(r->ctx);
    cg_sched_free(r->sched);
    cg_optim_free(r->opt);
    cg_module_free(r->model);
    cg_tensor_free(r->train);
    cg_tensor_free(r->val);
    cg_text_free(&r->text);
}

/* The text (with the checkpoint's vocabulary when resuming), split 90/10. */
static int load_text(run *r, const args *a) {
    cg_vocab v, *given = NULL;
    char vp[1024];
    if (a->load) {
        vocab_path(a->load, vp, sizeof vp);
        if (cg_vocab_load(vp, &v) != CG_OK) return -1;
        given = &v;
    }
    if (cg_text_load(a->data, given, &r->text) != CG_OK) {
        fprintf(stderr, "char_gpt: %s\n", cg_last_error());
        fprintf(stderr, "char_gpt: write the text with: make build/data/kjv.txt (or --data)\n");
        return -2;
    }
    return cg_text_split(r->text.ids, 0.9, &r->train, &r->val) == CG_OK ? 0 : -1;
}

static int run_init(run *r, const args *a) {
    *r = (run){0};
    cg_rng_seed(&r->rng, a->seed);
    int rc = load_text(r, a);
    if (rc != 0) return rc;
    if (cg_numel(r->val) < a->context + 1 || cg_numel(r->train) < a->context + 1) {
        fprintf(stderr, "char_gpt: %s is too short for context %lld\n", a->data,
                (long long)a->context);
        return -2;
    }
    r->model = cg_nn_gpt(&r->rng, CG_F32, r->text.vocab.size, a->context, a->width, a->layers,
                         a->heads, a->dropout);
    r->opt = r->model ? optimizer_new(r->model, a->lr) : NULL;
    r->sched = r->opt ? cg_lambdalr_new(r->opt, lr_factor, (void *)a) : NULL;
    r->ctx = cg_ctx_new();
    r->h.cap = (int)(a->steps / a->eval_every) + 2;
    r->h.step = calloc((size_t)r->h.cap, sizeof(double));
    r->h.train = calloc((size_t)r->h.cap, sizeof(double));
    r->h.val = calloc((size_t)r->h.cap, sizeof(double));
    r->h.lr = calloc((size_t)r->h.cap, sizeof(double));
    r->h.seconds = calloc((size_t)r->h.cap, sizeof(double));
    bool ok =
        r->sched && r->ctx && r->h.step && r->h.train && r->h.val && r->h.lr && r->h.seconds;
    return ok ? 0 : -1;
}

/* ---- evaluation ------------------------------------------------------------------------- */
/* Mean cross-entropy (nats per character) of the model on `windows` windows
 * of context + 1 ids of ids, spread evenly from its start (window w starts at
 * w * ((N - context - 1) / windows)), 16 at a time, in eval mode and without
 * a graph. bench/torch_gpt.py takes the same windows. */
static double heldout_loss(run *r, const args *a, const cg_tensor *ids) {
    int64_t len = a->context + 1, n = cg_numel(ids), stride = (n - len) / a->eval_windows;
    const int64_t *src = cg_data(ids);
    double sum = 0;
    for (int64_t w0 = 0; w0 < a->eval_windows; w0 += 16) {
        int64_t nb = a->eval_windows - w0 < 16 ? a->eval_windows - w0 : 16;
        cg_tensor *win = cg_empty(r->ctx, CG_I64, CG_SHAPE(nb, len));
        if (!win) return NAN;
        int64_t *dst = cg_data(win);
        for (int64_t b = 0; b < nb; b++)
            memcpy(dst + b * len, src + (w0 + b) * stride, sizeof(int64_t) * (size_t)len);
        cg_tensor *x = cg_narrow(r->ctx, win, 1, 0, a->context);
        cg_tensor *y = cg_reshape(r->ctx, cg_narrow(r->ctx, win, 1, 1, a->context),
                                  CG_SHAPE(nb * a->context));
        cg_tensor *logits = cg_module_predict(r->ctx, r->model, x);
        int64_t v = r->text.vocab.size;
        cg_tensor *l = cg_cross_entropy(
            r->ctx, cg_reshape(r->ctx, logits, CG_SHAPE(nb * a->context, v)), y, CG_SUM);
        if (!l) return NAN;
        sum += cg_item(l);
        cg_ctx_reset(r->ctx);
    }
    return sum / (double)(a->eval_windows * a->context);
}

/* ---- training --------------------------------------------------------------------------- */
/* One step on a batch of random windows of the training text; its loss. */
static double train_step(run *r, const args *a) {
    cg_ctx *ctx = r->ctx;
    int64_t b = a->batch, t = a->context, v = r->text.vocab.size;
    cg_tensor *win = cg_text_batch(ctx, r->train, b, t + 1, &r->rng);
    cg_tensor *x = cg_narrow(ctx, win, 1, 0, t);
    cg_tensor *y = cg_reshape(ctx, cg_narrow(ctx, win, 1, 1, t), CG_SHAPE(b * t));
    cg_tensor *logits = cg_module_forward(ctx, r->model, x); /* [B, T, V] */
    cg_tensor *loss =
        cg_cross_entropy(ctx, cg_reshape(ctx, logits, CG_SHAPE(b * t, v)), y, CG_MEAN);
    cg_optim_zero_grad(r->opt);
    double norm, value = loss ? cg_item(loss) : NAN;
    if (!loss || cg_backward(loss) != CG_OK || cg_clip_grad_norm_(r->model, 1.0, &norm) ||
        cg_optim_step(r->opt) != CG_OK || cg_sched_step(r->sched) != CG_OK)
        value = NAN;
    cg_ctx_reset(ctx);
    return value;
}

/* Records and prints an evaluation after `step` steps; train is the mean
 * training loss since the last one. */
static int evaluate(run *r, const args *a, int64_t step, double train, double t0) {
    cg_module_train(r->model, false);
    double val = heldout_loss(r, a, r->val);
    cg_module_train(r->model, true);
    if (isnan(val)) return -1;
    history *h = &r->h;
    if (h->n < h->cap) {
        h->step[h->n] = (double)step, h->train[h->n] = train, h->val[h->n] = val;
        h->lr[h->n] = cg_optim_lr(r->opt), h->seconds[h->n] = now() - t0;
        h->n++;
    }
    char tr[32] = "-"; /* no training loss before the first step */
    if (!isnan(train)) snprintf(tr, sizeof tr, "%.4f", train);
    printf("%sstep %lld: train %s, held-out %.4f nats/char, lr %.2e, %.1fs\n",
           isatty(STDOUT_FILENO) && step > 0 ? "\n" : "", (long long)step, tr, val,
           cg_optim_lr(r->opt), now() - t0);
    fflush(stdout);
    return 0;
}

static int train(run *r, const args *a) {
    bool tty = isatty(STDOUT_FILENO);
    int64_t start = cg_optim_steps(r->opt), since = 0;
    double t0 = now(), sum = 0;
    cg_module_train(r->model, true);
    /* the loss before training (about ln V), or after a finished plan */
    if ((start == 0 || start >= a->steps) && evaluate(r, a, start, NAN, t0) != 0) return -1;
    for (int64_t step = start; step < a->steps; step++) {
        double loss = train_step(r, a);
        if (isnan(loss)) return -1;
        sum += loss, since++;
        if (tty && ((step + 1) % 10 == 0 || step + 1 == a->steps)) {
            char metrics[64];
            snprintf(metrics, sizeof metrics, " - loss: %.4f - lr: %.2e", sum / (double)since,
                     cg_optim_lr(r->opt));
            progress_bar(step + 1, a->steps, now() - t0, metrics, false);
        }
        if ((step + 1) % a->eval_every == 0 || step + 1 == a->steps) {
            if (evaluate(r, a, step + 1, sum / (double)since, t0) != 0) return -1;
            sum = 0, since = 0;
        }
    }
    return 0;
}

/* ---- outputs -------------------------------------------------------------------------------
 */
/* Each writer returns 0, or -1 with cgrad's error set (CG_ERR_IO, naming path). */
static int write_csv(const char *path, const history *h) {
    FILE *f = open_output(path);
    if (!f) return -1;
    fprintf(f, "step,train_loss,val_loss,lr,seconds\n");
    for (int i = 0; i < h->n; i++)
        fprintf(f, "%.0f,%.6f,%.6f,%.6g,%.3f\n", h->step[i], h->train[i], h->val[i], h->lr[i],
                h->seconds[i]);
    return close_output(f, path);
}

static int write_svg(const char *path, const history *h) {
    FILE *f = h->n > 0 ? open_output(path) : NULL;
    if (!f) return h->n > 0 ? -1 : 0;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='780' height='300' "
               "font-family='sans-serif'>\n<rect width='780' height='300' fill='white'/>\n");
    const double *losses[2] = {h->train, h->val};
    const char *colours[2] = {"#1f77b4", "#ff7f0e"};
    svg_panel_xy(f, 10, "loss, nats/char", h->n, h->step, 2, losses, colours);
    svg_panel_xy(f, 410, "learning rate", h->n, h->step, 1, (const double *const[]){h->lr},
                 colours);
    fprintf(f,
            "<text x='10' y='290' font-size='12' fill='#1f77b4'>train</text>"
            "<text x='60' y='290' font-size='12' fill='#ff7f0e'>held-out (last 10%%)</text>"
            "<text x='400' y='290' font-size='12'>steps 0..%.0f</text>\n</svg>\n",
            h->step[h->n - 1]);
    return close_output(f, path);
}

/* n characters after the prompt, printed as they come: each from the
 * model's distribution for the next character given the last context ones. */
static int generate(run *r, const args *a) {
    size_t np = strlen(a->prompt);
    int64_t *ids = malloc(sizeof *ids * (np + (size_t)a->sample + 1));
    cg_tensor *p = ids ? cg_vocab_encode(r->ctx, &r->text.vocab, a->prompt, (int64_t)np) : NULL;
    if (!p || cg_copy_to_array(p, CG_I64, ids) != CG_OK) {
        fprintf(stderr, "char_gpt: --prompt: %s\n", cg_last_error());
        free(ids);
        return -2;
    }
    printf("\n--- sample (temperature %g, top-k %lld) ---\n%s", a->temperature,
           (long long)a->top_k, a->prompt);
    int64_t n = (int64_t)np;
    for (int64_t i = 0; i < a->sample; i++, n++) {
        int64_t t = n < a->context ? n : a->context;
        cg_ctx_reset(r->ctx);
        cg_tensor *x = cg_from_array(r->ctx, CG_I64, CG_SHAPE(1, t), ids + n - t);
        cg_tensor *logits = cg_module_predict(r->ctx, r->model, x); /* [1, t, V] */
        cg_tensor *next = cg_sample_logits(r->ctx, cg_select(r->ctx, logits, 1, t - 1),
                                           a->temperature, a->top_k, &r->rng);
        if (!next || cg_get_i64(next, (const int64_t[]){0}, &ids[n]) != CG_OK) break;
        putchar(r->text.vocab.bytes[ids[n]]);
        fflush(stdout);
    }
    printf("\n---\n");
    cg_ctx_reset(r->ctx);
    free(ids);
    return n == (int64_t)np + a->sample ? 0 : -1;
}

/* A checkpoint with optimizer, schedule and rng, or (from elsewhere) only
 * the model. */
static int resume(run *r, const char *path) {
    if (cg_load(path, r->model, r->opt, r->sched, &r->rng) == CG_OK) return 0;
    if (cg_last_status() != CG_ERR_ARG || cg_load(path, r->model, NULL, NULL, NULL) != CG_OK)
        return -1;
    printf("loaded the model from %s (it holds no training state)\n", path);
    return 0;
}

static int save(run *r, const char *path) {
    char vp[1024];
    vocab_path(path, vp, sizeof vp);
    if (cg_save(path, r->model, r->opt, r->sched, &r->rng) != CG_OK ||
        cg_vocab_save(vp, &r->text.vocab) != CG_OK)
        return -1;
    printf("saved %s and %s\n", path, vp);
    return 0;
}

/* ---- main
 * ------------------------------------------------------------------------------------ */
static int run_all(const args *a) {
    run r;
    int rc = run_init(&r, a);
    if (rc == 0) {
        printf("%lld characters, vocabulary of %d, %lld for training, %lld held out\n",
               (long long)cg_numel(r.text.ids), r.text.vocab.size, (long long)cg_numel(r.train),
               (long long)cg_numel(r.val));
        cg_module_print(r.model);
    }
    if (rc == 0 && a->load) rc = resume(&r, a->load);
    if (rc == 0) rc = train(&r, a);
    if (rc == 0 && r.h.n > 0 && (write_csv(a->csv, &r.h) != 0 || write_svg(a->svg, &r.h) != 0))
        rc = -1;
    if (rc == 0 && a->save) rc = save(&r, a->save);
    if (rc == 0 && a->sample > 0) rc = generate(&r, a);
    if (rc == -1) fprintf(stderr, "char_gpt: %s\n", cg_last_error());
    run_free(&r);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    int p = parse_args(argc, argv, &a);
    if (p != 0) {
        if (p < 0)
            fprintf(stderr,
                    "char_gpt: a flag is unknown, lacks its value or is out of range\n");
        print_usage(p > 0 ? stdout : stderr, argv[0], usage_lines);
        return p > 0 ? 0 : 2;
    }
    /* before the text and the training, so that a long run cannot fail at its
     * end (the vocabulary goes beside --save's file) */
    if (check_output("char_gpt", "--csv", a.csv) || check_output("char_gpt", "--svg", a.svg) ||
        check_output("char_gpt", "--save", a.save))
        return 1;
    if (a.threads > 0) cg_set_num_threads(a.threads);
    return run_all(&a) == 0 ? 0 : 1;
}
