/*
 * src/common/yaml.c: YAML and JSON text -> cJSON trees with source positions (include/ekglue/yaml.h).
 *
 * JSON input (first non-blank byte '{' or '[') goes straight to cJSON. Everything else goes through libyaml's
 * event parser, and a small explicit stack (no recursion on input depth) builds one cJSON tree per document:
 * a scalar or a finished collection is "attached" to the collection on top of the stack, or becomes the
 * document's root. Because cJSON nodes have no room for a line number, positions live in a side table private
 * to this file: an open-addressing hash map keyed by node pointer.
 *
 * Defences for untrusted input: nesting is limited to MAX_DEPTH (so neither this file nor cJSON_Delete's
 * recursion can exhaust the stack), and alias expansion is charged against MAX_ALIAS_COST (64 bytes per node
 * plus string bytes, counted across the whole stream), so "billion laughs" fails quickly with a message
 * instead of eating memory. Duplicate keys are detected when a mapping closes, by sorting its members.
 *
 * Memory: allocation failure aborts (ekglue/mem.h), libyaml's included, so the only error is EKG_EPARSE (and
 * EKG_EIO from the file readers, which go through ekglue/file.h).
 *
 * Thread: any. Everything is on the caller's stack or heap; nothing is shared. (cJSON's parser itself writes
 * a process-wide "last error" variable; ekglue never reads it.) Design note: docs/internals/model.md.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "ekglue/file.h"
#include "ekglue/mem.h"
#include "ekglue/yaml.h"
#include "common/yaml_stream.h"

#define MAX_DEPTH      256               /* open collections, counting the root */
#define MAX_ALIAS_COST (32u << 20)       /* bytes-ish that aliases may add, per parse */
#define NODE_COST      ((size_t)64)      /* what one cJSON node costs, roughly */
#define MAX_FILE_SIZE  ((size_t)1 << 30) /* ekg_yaml_parse_file refuses bigger files */

/* --- position table: cJSON node pointer -> (line, col) -------------------------------------------------- */

typedef struct pos_slot {
    const cJSON *node; /* NULL = empty */
    int line, col;
} pos_slot_t;

typedef struct pos_table {
    pos_slot_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
} pos_table_t;

struct ekg_yaml_docs {
    char *source;
    cJSON **docs;
    size_t ndocs, cap;
    pos_table_t pos;
};

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static void pos_grow(pos_table_t *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 256;
    pos_slot_t *ns = ekg_xcalloc(ncap, sizeof(*ns));
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].node)
            continue;
        size_t j = ptr_hash(t->slots[i].node) & (ncap - 1);
        while (ns[j].node)
            j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
}

static void pos_put(pos_table_t *t, const cJSON *node, int line, int col)
{
    if ((t->n + 1) * 2 > t->cap)
        pos_grow(t);
    size_t j = ptr_hash(node) & (t->cap - 1);
    while (t->slots[j].node && t->slots[j].node != node)
        j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].node)
        t->n++;
    t->slots[j] = (pos_slot_t){node, line, col};
}

static const pos_slot_t *pos_get(const pos_table_t *t, const cJSON *node)
{
    if (!t->cap || !node)
        return NULL;
    size_t j = ptr_hash(node) & (t->cap - 1);
    while (t->slots[j].node) {
        if (t->slots[j].node == node)
            return &t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    return NULL;
}

/* --- anchors: name -> finished node, per document ------------------------------------------------------ */

typedef struct anchor {
    char *name;  /* owned */
    cJSON *node; /* borrowed from the document being built */
    size_t cost;
    int height;
} anchor_t;

typedef struct anchor_table {
    anchor_t *slots;
    size_t cap, n;
} anchor_table_t;

static size_t str_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void anchors_clear(anchor_table_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].name);
    free(t->slots);
    *t = (anchor_table_t){0};
}

static anchor_t *anchor_find(const anchor_table_t *t, const char *name)
{
    if (!t->cap)
        return NULL;
    size_t j = str_hash(name) & (t->cap - 1);
    while (t->slots[j].name) {
        if (strcmp(t->slots[j].name, name) == 0)
            return &t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    return NULL;
}

/* A redefined anchor replaces the old one, as YAML says. */
static void anchor_put(anchor_table_t *t, const char *name, cJSON *node, size_t cost, int height)
{
    anchor_t *a = anchor_find(t, name);
    if (a) {
        a->node = node, a->cost = cost, a->height = height;
        return;
    }
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        anchor_t *ns = ekg_xcalloc(ncap, sizeof(*ns));
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i].name)
                continue;
            size_t j = str_hash(t->slots[i].name) & (ncap - 1);
            while (ns[j].name)
                j = (j + 1) & (ncap - 1);
            ns[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    char *copy = ekg_xstrdup(name);
    size_t j = str_hash(name) & (t->cap - 1);
    while (t->slots[j].name)
        j = (j + 1) & (t->cap - 1);
    t->slots[j] = (anchor_t){copy, node, cost, height};
    t->n++;
}

/* --- the builder --------------------------------------------------------------------------------------- */

typedef struct frame {
    cJSON *node;   /* the open array or object */
    char *anchor;  /* owned copy of its anchor, or NULL */
    int line, col; /* where it starts */
    char *key;     /* mapping: the pending key (owned), NULL when the next scalar is a key */
    int key_line, key_col;
    size_t cost; /* cost of the children attached so far, plus the node itself */
    int height;  /* 1 + max child height */
} frame_t;

typedef struct builder {
    const char *source;
    ekg_yaml_docs_t *docs;
    ekg_diag_t *diag;
    frame_t stack[MAX_DEPTH];
    int depth;
    cJSON *root; /* the finished root of the current document */
    anchor_table_t anchors;
    size_t alias_cost;
    ekg_err_t err;
} builder_t;

static ekg_err_t fail(builder_t *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ekg_err_t fail(builder_t *b, int line, int col, const char *fmt, ...)
{
    if (b->err)
        return b->err;
    if (b->diag) {
        char reason[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        ekg_diag_set(b->diag, EKG_EPARSE, "%s:%d:%d: %s", b->source, line, col, reason);
    }
    return b->err = EKG_EPARSE;
}

/* Plain-scalar resolution, YAML 1.2 core schema. */
static bool is_digits(const char *s, const char *digits)
{
    if (!*s)
        return false;
    return strspn(s, digits) == strlen(s);
}

static bool match_float(const char *s)
{
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t intd = strspn(p, "0123456789");
    p += intd;
    size_t fracd = 0;
    if (*p == '.') {
        p++;
        fracd = strspn(p, "0123456789");
        p += fracd;
    }
    if (intd == 0 && fracd == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        size_t expd = strspn(p, "0123456789");
        if (expd == 0)
            return false;
        p += expd;
    }
    return *p == '\0';
}

static cJSON *resolve_plain(const char *s)
{
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return cJSON_CreateTrue();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return cJSON_CreateFalse();
    if (!strncmp(s, "0x", 2) && is_digits(s + 2, "0123456789abcdefABCDEF"))
        return cJSON_CreateNumber((double)strtoull(s + 2, NULL, 16));
    if (!strncmp(s, "0o", 2) && is_digits(s + 2, "01234567"))
        return cJSON_CreateNumber((double)strtoull(s + 2, NULL, 8));
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    if (is_digits(d, "0123456789") || match_float(s))
        return cJSON_CreateNumber(strtod(s, NULL));
    if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF"))
        return cJSON_CreateNumber(*s == '-' ? -INFINITY : INFINITY);
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
        return cJSON_CreateNumber(NAN);
    return cJSON_CreateString(s);
}

static cJSON *scalar_node(const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && (!strcmp(tag, YAML_STR_TAG) || !strcmp(tag, "!")))
        return cJSON_CreateString(value);
    if (!tag && !ev->data.scalar.plain_implicit)
        return cJSON_CreateString(value); /* quoted or block scalar */
    return resolve_plain(value);
}

/* Sorts members by key, then by position, so that a duplicate follows its first occurrence. */
typedef struct member {
    const char *key;
    int line, col;
} member_t;

static int member_cmp(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

static ekg_err_t check_duplicates(builder_t *b, const cJSON *obj)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return EKG_OK;
    member_t *m = ekg_xmalloc(n * sizeof(*m));
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++) {
        const pos_slot_t *p = pos_get(&b->docs->pos, c);
        m[i] = (member_t){c->string, p ? p->line : 0, p ? p->col : 0};
    }
    qsort(m, n, sizeof(*m), member_cmp);
    /* Report the duplicate that comes first in the text. */
    size_t dup = n;
    for (i = 1; i < n; i++) {
        if (strcmp(m[i - 1].key, m[i].key) != 0)
            continue;
        if (dup == n || m[i].line < m[dup].line || (m[i].line == m[dup].line && m[i].col < m[dup].col))
            dup = i;
    }
    ekg_err_t err = EKG_OK;
    if (dup < n) {
        size_t first = dup;
        while (first > 0 && !strcmp(m[first - 1].key, m[dup].key))
            first--;
        err = fail(b, m[dup].line, m[dup].col, "duplicate key \"%s\" (first at %d:%d)", m[dup].key,
                   m[first].line, m[first].col);
    }
    free(m);
    return err;
}

/*
 * Deep copy of an anchored node for an alias. Children inherit their original positions; the copy's own
 * position is recorded by attach(). Recursion is bounded: the anchor's height was checked against MAX_DEPTH.
 */
static cJSON *copy_tree(builder_t *b, const cJSON *src)
{
    cJSON *dst = NULL;
    if (!cJSON_IsArray(src) && !cJSON_IsObject(src)) {
        dst = cJSON_Duplicate(src, false);
        if (dst->string) {
            cJSON_free(dst->string); /* attach() gives the copy the key of its new place, if any */
            dst->string = NULL;
        }
        return dst;
    }
    dst = cJSON_IsArray(src) ? cJSON_CreateArray() : cJSON_CreateObject();
    for (const cJSON *c = src->child; c; c = c->next) {
        cJSON *cc = copy_tree(b, c);
        if (cJSON_IsArray(src))
            cJSON_AddItemToArray(dst, cc);
        else
            cJSON_AddItemToObject(dst, c->string, cc);
        const pos_slot_t *p = pos_get(&b->docs->pos, c);
        if (p)
            pos_put(&b->docs->pos, cc, p->line, p->col);
    }
    return dst;
}

/*
 * Hands a finished node to its parent (or makes it the root), which takes ownership of it. line/col is where
 * the node starts; in a mapping the member's position is its key's instead (a mapping that gets a value
 * always has its pending key: a collection or an alias in a key's place fails before it is built).
 */
static void attach(builder_t *b, cJSON *node, int line, int col, const char *anchor, size_t cost, int height)
{
    if (b->depth == 0) {
        b->root = node;
    } else {
        frame_t *p = &b->stack[b->depth - 1];
        if (cJSON_IsArray(p->node)) {
            cJSON_AddItemToArray(p->node, node);
        } else {
            cJSON_AddItemToObject(p->node, p->key, node);
            line = p->key_line, col = p->key_col;
            free(p->key);
            p->key = NULL;
        }
        p->cost += cost;
        if (height + 1 > p->height)
            p->height = height + 1;
    }
    pos_put(&b->docs->pos, node, line, col);
    if (anchor)
        anchor_put(&b->anchors, anchor, node, cost, height);
}

static bool anchor_is_open(const builder_t *b, const char *name)
{
    for (int i = 0; i < b->depth; i++)
        if (b->stack[i].anchor && !strcmp(b->stack[i].anchor, name))
            return true;
    return false;
}

/* In a mapping expecting a key, takes the scalar as the key. Returns true if ev was consumed as a key. */
static bool wants_key(const builder_t *b)
{
    if (b->depth == 0)
        return false;
    const frame_t *p = &b->stack[b->depth - 1];
    return cJSON_IsObject(p->node) && !p->key;
}

static ekg_err_t on_scalar(builder_t *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *value = (const char *)ev->data.scalar.value;
    if (memchr(value, '\0', ev->data.scalar.length))
        return fail(b, line, col, "NUL character in a scalar");
    if (wants_key(b)) {
        frame_t *p = &b->stack[b->depth - 1];
        p->key = ekg_xstrdup(value);
        p->key_line = line, p->key_col = col;
        p->cost += ev->data.scalar.length;
        return EKG_OK;
    }
    attach(b, scalar_node(ev), line, col, (const char *)ev->data.scalar.anchor,
           NODE_COST + ev->data.scalar.length, 1);
    return EKG_OK;
}

static ekg_err_t on_alias(builder_t *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    const char *name = (const char *)ev->data.alias.anchor;
    if (wants_key(b))
        return fail(b, line, col, "an alias cannot be a mapping key");
    const anchor_t *a = anchor_find(&b->anchors, name);
    if (!a) {
        if (anchor_is_open(b, name))
            return fail(b, line, col, "alias *%s refers to the collection that contains it", name);
        return fail(b, line, col, "unknown alias *%s", name);
    }
    if (b->depth + a->height > MAX_DEPTH + 1)
        return fail(b, line, col, "alias *%s nests deeper than %d levels", name, MAX_DEPTH);
    if (a->cost > MAX_ALIAS_COST - b->alias_cost)
        return fail(b, line, col, "aliases expand to too much data (more than %u MiB)", MAX_ALIAS_COST >> 20);
    b->alias_cost += a->cost;
    size_t cost = a->cost;
    int height = a->height;
    attach(b, copy_tree(b, a->node), line, col, NULL, cost, height);
    return EKG_OK;
}

static ekg_err_t on_start(builder_t *b, const yaml_event_t *ev, bool mapping)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (wants_key(b))
        return fail(b, line, col, "mapping keys must be scalars");
    if (b->depth == MAX_DEPTH)
        return fail(b, line, col, "nesting deeper than %d levels", MAX_DEPTH);
    const char *anchor =
        (const char *)(mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
    frame_t *f = &b->stack[b->depth];
    *f = (frame_t){.line = line, .col = col, .cost = NODE_COST, .height = 1};
    f->node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
    if (anchor)
        f->anchor = ekg_xstrdup(anchor);
    b->depth++;
    return EKG_OK;
}

static ekg_err_t on_end(builder_t *b)
{
    frame_t f = b->stack[--b->depth];
    ekg_err_t err = EKG_OK;
    if (cJSON_IsObject(f.node))
        err = check_duplicates(b, f.node);
    if (err)
        cJSON_Delete(f.node);
    else
        attach(b, f.node, f.line, f.col, f.anchor, f.cost, f.height);
    free(f.anchor);
    free(f.key);
    return err;
}

static void unwind(builder_t *b)
{
    /* Everything on the stack is detached from the document, so delete from the bottom. */
    while (b->depth > 0) {
        frame_t *f = &b->stack[--b->depth];
        cJSON_Delete(f->node);
        free(f->anchor);
        free(f->key);
    }
    cJSON_Delete(b->root);
    b->root = NULL;
}

static void end_document(builder_t *b)
{
    anchors_clear(&b->anchors);
    cJSON *root = b->root;
    b->root = NULL;
    if (!root || cJSON_IsNull(root)) {
        cJSON_Delete(root);
        return;
    }
    ekg_yaml_docs_t *d = b->docs;
    EKG_ARRAY_PUSH(d->docs, d->ndocs, d->cap, root);
}

static void offset_to_line(const char *buf, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n')
            ++*line, *col = 1;
        else
            ++*col;
    }
}

static ekg_err_t parse_yaml(builder_t *b, const char *buf, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        ekg_oom(0); /* libyaml allocates with plain malloc: its failure is ours to report */
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    bool done = false;
    while (!done && !b->err) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                ekg_oom(0);
            } else if (parser.error == YAML_READER_ERROR) {
                int line, col;
                offset_to_line(buf, parser.problem_offset < len ? parser.problem_offset : len, &line, &col);
                fail(b, line, col, "%s", parser.problem ? parser.problem : "invalid input");
            } else {
                const yaml_mark_t *m = &parser.problem_mark;
                const char *problem = parser.problem ? parser.problem : "invalid YAML";
                if (parser.context)
                    fail(b, (int)m->line + 1, (int)m->column + 1, "%s (%s)", problem, parser.context);
                else
                    fail(b, (int)m->line + 1, (int)m->column + 1, "%s", problem);
            }
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_END_EVENT:
            end_document(b);
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(b, &ev, false);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(b, &ev, true);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    unwind(b);
    anchors_clear(&b->anchors);
    return b->err;
}

/* --- JSON ---------------------------------------------------------------------------------------------- */

static ekg_err_t parse_json(builder_t *b, const char *buf, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    int line, col;
    if (!root) {
        size_t off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        offset_to_line(buf, off, &line, &col);
        /* cJSON does not tell out-of-memory apart; a parse failure is far more likely. */
        return fail(b, line, col, "invalid JSON");
    }
    for (const char *p = end; p < buf + len; p++) {
        if (!strchr(" \t\r\n", *p) || !*p) {
            cJSON_Delete(root);
            offset_to_line(buf, (size_t)(p - buf), &line, &col);
            return fail(b, line, col, "unexpected content after the JSON value");
        }
    }
    b->root = root;
    end_document(b);
    return EKG_OK;
}

static bool looks_like_json(const char *buf, size_t len)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < len && strchr(" \t\r\n", buf[i]) && buf[i])
        i++;
    return i < len && (buf[i] == '{' || buf[i] == '[');
}

/* --- JSON Lists, one item at a time (yaml_stream.h) ----------------------------------------------------- */

/*
 * The scanner does not build anything: it finds where values begin and end, and leaves checking their insides
 * to cJSON, which parses every piece of the text on its own (each item, each other member of the List, each
 * key), so that the texts accepted here are exactly those cJSON accepts as a whole. What it must get right is
 * the boundaries: strings end at the first quote not escaped by an odd run of backslashes (cJSON's rule), and
 * a bracketed value ends where its brackets balance, outside strings. A piece parsed alone could nest one or
 * two levels deeper than in the whole text, so depth is counted and capped at what cJSON allows in place.
 * Whitespace between tokens is any byte up to ' ', as in cJSON; around the whole text only " \t\r\n", as in
 * parse_json().
 */
#define JSON_MAX_DEPTH CJSON_NESTING_LIMIT /* nested arrays and objects cJSON accepts, counting the root */

typedef struct span {
    size_t off, len;
} span_t;

typedef struct span_vec {
    span_t *v;
    size_t n, cap;
} span_vec_t;

/* Bytes that the bracket matcher stops at. */
static const unsigned char json_special[256] = {['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1};

static const char *json_skip_ws(const char *p, const char *end)
{
    while (p < end && (unsigned char)*p <= ' ')
        p++;
    return p;
}

/* p at the opening quote: returns one past the closing quote, or NULL if there is none. */
static const char *json_skip_string(const char *p, const char *end)
{
    const char *q = p + 1;
    for (;;) {
        q = memchr(q, '"', (size_t)(end - q));
        if (!q)
            return NULL;
        size_t backslashes = 0; /* an odd run of them escapes the quote */
        while (q - backslashes > p + 1 && q[-1 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (!(backslashes & 1))
            return q + 1;
        q++;
    }
}

/*
 * p at the first byte of a value: returns one past its last byte, or NULL when no value of at most max_depth
 * levels can start there. Scalars are only delimited (cJSON checks them): a number is the longest run of the
 * bytes cJSON's parse_number copies.
 */
static const char *json_skip_value(const char *p, const char *end, int max_depth)
{
    unsigned char c = (unsigned char)*p;
    if (c == '"')
        return json_skip_string(p, end);
    if (c == '{' || c == '[') {
        int depth = 0;
        while (p < end) {
            while (p < end && !json_special[(unsigned char)*p])
                p++;
            if (p == end)
                break;
            c = (unsigned char)*p;
            if (c == '"') {
                if (!(p = json_skip_string(p, end)))
                    return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > max_depth)
                    return NULL;
            } else if (--depth == 0) {
                return p + 1;
            }
            p++;
        }
        return NULL;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);
        if (c == (unsigned char)words[i][0])
            return (size_t)(end - p) >= n && !memcmp(p, words[i], n) ? p + n : NULL;
    }
    if (c != '-' && !(c >= '0' && c <= '9'))
        return NULL;
    for (p++; p < end && *p && strchr("0123456789+-eE.", *p); p++)
        ;
    return p;
}

/* cJSON's tree of exactly the value at [p, e), or NULL when that is not one whole, valid value. */
static cJSON *json_parse_exact(const char *p, const char *e)
{
    const char *stop = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(e - p), &stop, false);
    if (v && stop != e) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

typedef enum { SCAN_LIST = 0, SCAN_NOT_LIST } scan_result_t;

/*
 * The items array at p ('['): the span of each item into items, and where the array ends into *after. Items
 * sit two levels down (the List, its items), so each may nest JSON_MAX_DEPTH - 2 levels itself.
 */
static scan_result_t scan_items(const char *buf, const char *p, const char *end, span_vec_t *items,
                                const char **after)
{
    p = json_skip_ws(p + 1, end);
    if (p < end && *p == ']') {
        *after = p + 1;
        return SCAN_LIST;
    }
    for (;;) {
        const char *start = p;
        if (p == end || !(p = json_skip_value(p, end, JSON_MAX_DEPTH - 2)))
            return SCAN_NOT_LIST;
        EKG_ARRAY_PUSH(items->v, items->n, items->cap,
                       ((span_t){(size_t)(start - buf), (size_t)(p - start)}));
        p = json_skip_ws(p, end);
        if (p < end && *p == ']') {
            *after = p + 1;
            return SCAN_LIST;
        }
        if (p == end || *p != ',')
            return SCAN_NOT_LIST;
        p = json_skip_ws(p + 1, end);
    }
}

/*
 * Checks the whole text. SCAN_LIST: it is valid JSON (as far as the pieces cJSON has not parsed yet go: the
 * items), a List as yaml_stream.h says; *kind is the "kind" member (a string, the caller deletes it) and
 * items the spans of the items. Stops early once "kind" or "items" shows that the text is not such a List.
 */
static scan_result_t scan_list(const char *buf, size_t len, cJSON **kind, span_vec_t *items)
{
    const char *p = buf, *end = buf + len;
    bool have_items = false;
    scan_result_t r = SCAN_NOT_LIST;
    *kind = NULL;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) {
        if (len < 5)
            return SCAN_NOT_LIST; /* cJSON skips a BOM only if it can see two bytes past it */
        p += 3;
    }
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p == end || *p != '{')
        return SCAN_NOT_LIST;
    p = json_skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return SCAN_NOT_LIST; /* {} is no List */
    for (;;) {
        const char *key_start = p, *key_end;
        if (p == end || *p != '"' || !(key_end = json_skip_string(p, end)))
            goto out;
        cJSON *key = json_parse_exact(key_start, key_end);
        if (!key)
            goto out;
        bool is_kind = !*kind && !strcmp(key->valuestring, "kind");
        bool is_items = !have_items && !strcmp(key->valuestring, "items");
        cJSON_Delete(key);
        p = json_skip_ws(key_end, end);
        if (p == end || *p != ':')
            goto out;
        p = json_skip_ws(p + 1, end);
        if (p == end)
            goto out;
        if (is_items) {
            if (*p != '[')
                goto out; /* null or a mistake: the tree path says which */
            if ((r = scan_items(buf, p, end, items, &p)) != SCAN_LIST)
                goto out;
            r = SCAN_NOT_LIST;
            have_items = true;
        } else {
            const char *value_start = p;
            cJSON *value;
            if (!(p = json_skip_value(p, end, JSON_MAX_DEPTH - 1)) ||
                !(value = json_parse_exact(value_start, p)))
                goto out;
            if (is_kind) {
                *kind = value;
                size_t n = cJSON_IsString(value) ? strlen(value->valuestring) : 0;
                if (n < 4 || strcmp(value->valuestring + n - 4, "List") != 0)
                    goto out;
            } else {
                cJSON_Delete(value);
            }
        }
        p = json_skip_ws(p, end);
        if (p < end && *p == '}')
            break;
        if (p == end || *p != ',')
            goto out;
        p = json_skip_ws(p + 1, end);
    }
    for (p++; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            goto out;
    if (*kind && have_items)
        r = SCAN_LIST;
out:
    if (r != SCAN_LIST) {
        cJSON_Delete(*kind);
        *kind = NULL;
    }
    return r;
}

ekg_err_t ekg_yaml_stream_json_list(const char *buf, size_t len, ekg_yaml_item_fn on_item, void *arg,
                                    bool *streamed)
{
    span_vec_t items = {0};
    cJSON *kind = NULL;
    ekg_err_t err = EKG_OK;
    *streamed = false;
    if (!buf || scan_list(buf, len, &kind, &items) != SCAN_LIST)
        goto out;
    for (size_t i = 0; i < items.n; i++) {
        const char *p = buf + items.v[i].off;
        cJSON *item = json_parse_exact(p, p + items.v[i].len);
        if (!item)
            goto out; /* not valid after all: the tree path will say where */
        err = on_item(arg, item, kind->valuestring);
        cJSON_Delete(item);
        if (err)
            goto out;
    }
    *streamed = true;
out:
    cJSON_Delete(kind);
    free(items.v);
    return err;
}

/* --- API ----------------------------------------------------------------------------------------------- */

ekg_err_t ekg_yaml_parse(const char *buf, size_t len, const char *source_name, ekg_yaml_docs_t **out,
                         ekg_diag_t *diag)
{
    ekg_yaml_docs_t *docs = ekg_xcalloc(1, sizeof(*docs));
    docs->source = ekg_xstrdup(source_name ? source_name : "<input>");
    /* The builder holds a MAX_DEPTH stack: keep it off the caller's (possibly small, thread) stack. */
    builder_t *b = ekg_xcalloc(1, sizeof(*b));
    b->source = docs->source;
    b->docs = docs;
    b->diag = diag;
    if (!buf)
        len = 0;
    ekg_err_t err = looks_like_json(buf, len) ? parse_json(b, buf, len) : parse_yaml(b, buf ? buf : "", len);
    free(b);
    if (err) {
        ekg_yaml_docs_free(docs);
        return err;
    }
    *out = docs;
    return EKG_OK;
}

ekg_err_t ekg_yaml_read_file(const char *path, char **out, size_t *out_len, ekg_diag_t *diag)
{
    /* MAX_FILE_SIZE bytes or more is too large, as always; every other failure is EKG_EIO with its reason. */
    ekg_err_t err = ekg_file_read(path, MAX_FILE_SIZE - 1, 0, out, out_len, diag);
    if (err == EKG_ERANGE)
        return ekg_diag_set(diag, EKG_EIO, "%s: file larger than %zu MiB", path, MAX_FILE_SIZE >> 20);
    return err ? EKG_EIO : EKG_OK;
}

ekg_err_t ekg_yaml_parse_file(const char *path, ekg_yaml_docs_t **out, ekg_diag_t *diag)
{
    char *buf = NULL;
    size_t len = 0;
    ekg_err_t err = ekg_yaml_read_file(path, &buf, &len, diag);
    if (err)
        return err;
    err = ekg_yaml_parse(buf, len, path, out, diag);
    free(buf);
    return err;
}

size_t ekg_yaml_docs_count(const ekg_yaml_docs_t *docs)
{
    return docs ? docs->ndocs : 0;
}

const cJSON *ekg_yaml_docs_get(const ekg_yaml_docs_t *docs, size_t i)
{
    return docs && i < docs->ndocs ? docs->docs[i] : NULL;
}

int ekg_yaml_docs_line(const ekg_yaml_docs_t *docs, const cJSON *node, int *col)
{
    const pos_slot_t *p = docs ? pos_get(&docs->pos, node) : NULL;
    if (col)
        *col = p ? p->col : 0;
    return p ? p->line : 0;
}

const char *ekg_yaml_docs_source(const ekg_yaml_docs_t *docs)
{
    return docs ? docs->source : NULL;
}

void ekg_yaml_docs_free(ekg_yaml_docs_t *docs)
{
    if (!docs)
        return;
    for (size_t i = 0; i < docs->ndocs; i++)
        cJSON_Delete(docs->docs[i]);
    free(docs->docs);
    free(docs->pos.slots);
    free(docs->source);
    free(docs);
}
