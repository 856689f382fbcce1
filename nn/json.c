/* The JSON subset of a safetensors header (see json.h): a recursive-descent
 * parser into one flat node array, and a growable text buffer for writing. */
#include "json.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32 /* a safetensors header nests 3 deep; this bounds the stack */

typedef struct parser {
    const char *s;
    size_t len, pos;
    cgi_json *doc;
    size_t pool_used;
    char *err;
    size_t errsize;
    cg_status status; /* CG_ERR_ARG for bad text, CG_ERR_NOMEM */
} parser;

static bool fail_as(parser *p, cg_status status, const char *what) {
    if (p->errsize) snprintf(p->err, p->errsize, "%s at byte %zu", what, p->pos);
    p->status = status;
    return false;
}
static bool fail(parser *p, const char *what) { return fail_as(p, CG_ERR_ARG, what); }

/* The next byte, or -1 at the end: every read goes through here or checks len. */
static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static void skip_ws(parser *p) {
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p))
        p->pos++;
}

static bool new_node(parser *p, cgi_json_type type, int *out) {
    cgi_json *d = p->doc;
    if (d->count == d->cap) {
        if (d->cap > INT_MAX / 2) return fail(p, "too many values");
        int cap = d->cap ? d->cap * 2 : 64;
        cgi_json_node *nodes = realloc(d->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return fail_as(p, CG_ERR_NOMEM, "out of memory");
        d->nodes = nodes;
        d->cap = cap;
    }
    d->nodes[d->count] = (cgi_json_node){.type = type, .first = -1, .next = -1};
    *out = d->count++;
    return true;
}

/* ---- strings ------------------------------------------------------------------- */
static bool hex4(parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = cgi_json_hex(p->s[p->pos + (size_t)i]);
        if (d < 0) return fail(p, "bad \\u escape");
        v = v << 4 | (unsigned)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static int utf8(unsigned c, char *o) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    int n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    static const unsigned lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (int i = n - 1; i > 0; i--, c >>= 6) o[i] = (char)(0x80 | (c & 0x3F));
    o[0] = (char)(lead[n] | c);
    return n;
}

/* \uXXXX, with the low half of a surrogate pair, as UTF-8 at *w. */
static bool unicode_escape(parser *p, char **w) {
    unsigned c, lo;
    if (!hex4(p, &c)) return false;
    if (c >= 0xDC00 && c <= 0xDFFF) return fail(p, "lone low surrogate");
    if (c >= 0xD800 && c <= 0xDBFF) {
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "lone high surrogate");
        p->pos += 2;
        if (!hex4(p, &lo)) return false;
        if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "bad low surrogate");
        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
    }
    /* Names are C strings: a NUL inside would make two keys look alike. */
    if (c == 0) return fail(p, "NUL in a string");
    *w += utf8(c, *w);
    return true;
}

static bool escape(parser *p, char **w) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    int c = peek(p);
    if (c < 0) return fail(p, "unterminated string");
    p->pos++;
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        *(*w)++ = to[k - from];
        return true;
    }
    if (c != 'u') return fail(p, "bad escape");
    return unicode_escape(p, w);
}

/* At the opening quote. Decoded text never outgrows its quoted source (an
 * escape of 2, 6 or 12 bytes yields 1 to 4), so the pool of len + 1 bytes
 * holds every string with its NUL. */
static bool parse_string(parser *p, const char **out) {
    char *start = p->doc->pool + p->pool_used, *w = start;
    p->pos++;
    for (;;) {
        int c = peek(p);
        if (c < 0) return fail(p, "unterminated string");
        p->pos++;
        if (c == '"') break;
        if (c < 0x20) return fail(p, "control character in a string");
        if (c != '\\')
            *w++ = (char)c;
        else if (!escape(p, &w))
            return false;
    }
    *w++ = '\0';
    p->pool_used += (size_t)(w - start);
    *out = start;
    return true;
}

/* ---- numbers and values ------------------------------------------------------------ */
static bool parse_int(parser *p, int64_t *out) {
    size_t start = p->pos;
    int64_t v = 0;
    for (int c = peek(p); c >= '0' && c <= '9'; c = peek(p)) {
        if (v > (INT64_MAX - (c - '0')) / 10) return fail(p, "integer too large");
        v = v * 10 + (c - '0');
        p->pos++;
    }
    if (p->pos - start > 1 && p->s[start] == '0') return fail(p, "leading zero");
    int c = peek(p);
    if (c == '.' || c == 'e' || c == 'E') return fail(p, "a number that is not an integer");
    *out = v;
    return true;
}

static bool parse_value(parser *p, int depth, int *out);

/* "key" : -- the member name before an object's value. */
static bool parse_key(parser *p, const char **key) {
    skip_ws(p);
    if (peek(p) != '"') return fail(p, "expected a string key");
    if (!parse_string(p, key)) return false;
    skip_ws(p);
    if (peek(p) != ':') return fail(p, "expected ':'");
    p->pos++;
    return true;
}

/* At '{' or '['; children are linked in order through first and next. */
static bool parse_container(parser *p, bool object, int depth, int *out) {
    int self, last = -1, close = object ? '}' : ']';
    if (!new_node(p, object ? CGI_JSON_OBJECT : CGI_JSON_ARRAY, &self)) return false;
    p->pos++;
    skip_ws(p);
    for (bool more = peek(p) != close; more;) {
        const char *key = NULL;
        int child;
        if ((object && !parse_key(p, &key)) || !parse_value(p, depth, &child)) return false;
        cgi_json_node *nodes = p->doc->nodes; /* reloaded: parse_value may realloc */
        nodes[child].key = key;
        *(last < 0 ? &nodes[self].first : &nodes[last].next) = child;
        last = child;
        nodes[self].n++;
        skip_ws(p);
        if (peek(p) != ',' && peek(p) != close)
            return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        more = peek(p) == ',';
        if (more) p->pos++;
    }
    p->pos++; /* the closing bracket */
    *out = self;
    return true;
}

static bool parse_value(parser *p, int depth, int *out) {
    skip_ws(p);
    int c = peek(p);
    if (c == '{' || c == '[') {
        if (depth >= MAX_DEPTH) return fail(p, "nested too deeply");
        return parse_container(p, c == '{', depth + 1, out);
    }
    if (c == '"') {
        const char *s;
        if (!parse_string(p, &s) || !new_node(p, CGI_JSON_STRING, out)) return false;
        p->doc->nodes[*out].str = s;
        return true;
    }
    if (c >= '0' && c <= '9') {
        int64_t v;
        if (!parse_int(p, &v) || !new_node(p, CGI_JSON_INT, out)) return false;
        p->doc->nodes[*out].num = v;
        return true;
    }
    if (c < 0) return fail(p, "unexpected end of text");
    if (c == '-') return fail(p, "a negative number");
    return fail(p, "unexpected character");
}

cg_status cgi_json_parse(cgi_json *doc, const char *text, size_t len, char *err,
                         size_t errsize) {
    parser p = {text, len, 0, doc, 0, err, errsize, CG_OK};
    int root;
    *doc = (cgi_json){0};
    if (errsize) err[0] = '\0';
    doc->pool = malloc(len + 1);
    if (!doc->pool)
        fail_as(&p, CG_ERR_NOMEM, "out of memory");
    else if (parse_value(&p, 0, &root)) {
        skip_ws(&p);
        if (p.pos != len) fail(&p, "text after the value");
    }
    if (p.status != CG_OK) cgi_json_free(doc);
    return p.status;
}

void cgi_json_free(cgi_json *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->pool);
    *doc = (cgi_json){0};
}

int cgi_json_member(const cgi_json *doc, int obj, const char *key) {
    if (obj < 0 || obj >= doc->count || doc->nodes[obj].type != CGI_JSON_OBJECT) return -1;
    for (int c = doc->nodes[obj].first; c >= 0; c = doc->nodes[c].next)
        if (!strcmp(doc->nodes[c].key, key)) return c;
    return -1;
}

/* ---- writing --------------------------------------------------------------------- */
static bool reserve(cgi_jbuf *b, size_t extra) {
    if (b->failed) return false;
    if (b->len + extra < b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void cgi_jbuf_printf(cgi_jbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) b->failed = true;
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cgi_jbuf_string(cgi_jbuf *b, const char *s) {
    cgi_jbuf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            cgi_jbuf_printf(b, "\\%c", c);
        else if (c < 0x20)
            cgi_jbuf_printf(b, "\\u%04x", c);
        else
            cgi_jbuf_printf(b, "%c", c);
    }
    cgi_jbuf_printf(b, "\"");
}

void cgi_jbuf_free(cgi_jbuf *b) {
    free(b->data);
    *b = (cgi_jbuf){0};
}
