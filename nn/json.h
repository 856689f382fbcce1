/* Library-internal (not installed): the small JSON subset a safetensors
 * header needs, for nn/checkpoint.c.
 *
 * Reading: objects, arrays, strings (every escape, \u with surrogate pairs)
 * and non-negative integers up to INT64_MAX. true, false, null, negative and
 * fractional numbers are refused, as is a string holding NUL, so every
 * string is a plain C string. The parser never reads outside the given
 * bytes and limits nesting, so any input is safe to hand it.
 *
 * Writing: a growable text buffer with printf and quoted-string appends. */
#ifndef CG_NN_JSON_H
#define CG_NN_JSON_H

#include "../tensor/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cgi_json_type {
    CGI_JSON_OBJECT,
    CGI_JSON_ARRAY,
    CGI_JSON_STRING,
    CGI_JSON_INT
} cgi_json_type;

/* Nodes refer to each other by index into cgi_json.nodes; -1 is none. */
typedef struct cgi_json_node {
    cgi_json_type type;
    const char *key; /* the member's name inside an object, else NULL */
    const char *str; /* CGI_JSON_STRING: the decoded text */
    int64_t num;     /* CGI_JSON_INT */
    int n;           /* elements or members of an array or object */
    int first;       /* first element or member */
    int next;        /* next sibling in the parent */
} cgi_json_node;

typedef struct cgi_json {
    cgi_json_node *nodes; /* nodes[0] is the root */
    int count, cap;
    char *pool; /* every decoded string, NUL-terminated */
} cgi_json;

/* Parses text[0, len) (one value, then only whitespace) into *doc. On
 * failure returns CG_ERR_ARG (bad text) or CG_ERR_NOMEM, writes the reason
 * and byte offset into err and leaves *doc empty; cgi_json_free is safe
 * either way. */
CGI_HIDDEN cg_status cgi_json_parse(cgi_json *doc, const char *text, size_t len, char *err,
                                    size_t errsize);
CGI_HIDDEN void cgi_json_free(cgi_json *doc);
/* The member named key of object node obj, or -1 (also when obj is no object). */
CGI_HIDDEN int cgi_json_member(const cgi_json *doc, int obj, const char *key);
/* The value of a hex digit, -1 for any other character. */
static inline int cgi_json_hex(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

typedef struct cgi_jbuf {
    char *data; /* NUL-terminated while !failed */
    size_t len, cap;
    bool failed; /* out of memory: later appends do nothing */
} cgi_jbuf;

CGI_HIDDEN void cgi_jbuf_printf(cgi_jbuf *b, const char *fmt, ...) CGI_PRINTF(2, 3);
/* s as a JSON string literal: quoted, with '"', '\\' and controls escaped. */
CGI_HIDDEN void cgi_jbuf_string(cgi_jbuf *b, const char *s);
CGI_HIDDEN void cgi_jbuf_free(cgi_jbuf *b);

#endif
