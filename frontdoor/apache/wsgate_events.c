/*
 * wsgate_events.c: WebSocket-over-HTTP inside httpd (WebSocketEventHandler).
 * Each event of a WebSocket is an internal subrequest: a POST whose body
 * is the events, into whatever httpd serves at a URL path or a file (PHP
 * through mod_proxy_fcgi, CGI, mod_wsgi, a proxy). The answer's body is
 * captured and handed to Go, which sends its events to the client.
 *
 * Single owner: Go calls wsgate_subrequest only on the worker thread that
 * serves the WebSocket (from its handshake, or from its I/O loop), so a
 * subrequest never runs concurrently with anything else on the
 * connection's pool, filters or mod_ssl state.
 *
 * The subrequest must neither read the client's connection nor write to
 * it: its input is a filter that gives the events and then EOS, installed
 * as the subrequest's protocol input so that an internal redirect inside
 * it (mod_actions, as Debian's php-cgi setup does) keeps it; its output
 * ends in a filter that keeps the body and passes nothing on, passed as
 * the subrequest's next filter and owned by the WebSocket's request, so
 * that a redirect keeps it too.
 */
#include "mod_wsgate.h"

APLOG_USE_MODULE(wsgate);

static ap_filter_rec_t *events_in_filter, *events_out_filter;

typedef struct {
    const char *body;
    apr_size_t len, sent;
} events_in_ctx;

typedef struct {
    char *buf;
    apr_size_t len, cap, max;
    int too_large;
} events_out_ctx;

/* events_in gives the events, then EOS, whatever the mode asked. */
static apr_status_t events_in(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode, apr_read_type_e block,
                              apr_off_t readbytes)
{
    events_in_ctx *ctx = f->ctx;
    apr_size_t n = ctx->len - ctx->sent;

    (void)block;
    if (mode == AP_MODE_INIT) {
        return APR_SUCCESS;
    }
    if (n == 0) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
        return APR_SUCCESS;
    }
    if (readbytes > 0 && (apr_size_t)readbytes < n && mode != AP_MODE_EXHAUSTIVE) {
        n = (apr_size_t)readbytes;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(ctx->body + ctx->sent, n, f->c->bucket_alloc));
    if (mode != AP_MODE_SPECULATIVE) {
        ctx->sent += n;
    }
    return APR_SUCCESS;
}

/* events_out keeps the body, up to its bound, and passes nothing on. */
static apr_status_t events_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    events_out_ctx *ctx = f->ctx;

    for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t n;

        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
            ctx->too_large = 1; /* unreadable: fail the event */
            break;
        }
        if (ctx->too_large || ctx->len + n > ctx->max) {
            ctx->too_large = 1;
            continue;
        }
        if (ctx->len + n > ctx->cap) {
            apr_size_t cap = ctx->cap ? ctx->cap : 4096;
            char *nb;
            while (cap < ctx->len + n) {
                cap *= 2;
            }
            nb = realloc(ctx->buf, cap);
            if (!nb) {
                ctx->too_large = 1;
                continue;
            }
            ctx->buf = nb;
            ctx->cap = cap;
        }
        memcpy(ctx->buf + ctx->len, data, n);
        ctx->len += n;
    }
    apr_brigade_cleanup(bb);
    return APR_SUCCESS;
}

void wsgate_events_register(apr_pool_t *p)
{
    (void)p;
    events_in_filter = ap_register_input_filter("WSGATE_EVENTS_IN", events_in, NULL, AP_FTYPE_PROTOCOL);
    events_out_filter = ap_register_output_filter("WSGATE_EVENTS_OUT", events_out, NULL, AP_FTYPE_CONTENT_SET);
}

static int copy_out_header(void *data, const char *key, const char *val)
{
    apr_array_header_t *a = data;
    APR_ARRAY_PUSH(a, const char *) = key;
    APR_ARRAY_PUSH(a, const char *) = val;
    return 1;
}

void wsgate_subrequest(void *rv, const wsgate_subreq *in, wsgate_subresp *out)
{
    request_rec *r = rv, *rr, *last;
    events_in_ctx inctx;
    events_out_ctx outctx;
    ap_filter_t sink, *source;
    apr_array_header_t *hdrs;
    const char *target = in->target;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&outctx, 0, sizeof(outctx));
    outctx.max = in->max_body > 0 ? (apr_size_t)in->max_body : 1 << 20;

    /* The sink belongs to the WebSocket's request, not the subrequest's: a
     * redirect inside the subrequest drops the subrequest's own filters.
     * It lives on this stack, as everything of one event does: the
     * WebSocket's pool lasts as long as the connection and must not grow
     * with every event. */
    memset(&sink, 0, sizeof(sink));
    sink.frec = events_out_filter;
    sink.ctx = &outctx;
    sink.r = r;
    sink.c = r->connection;

    if (!strncmp(target, "file:", 5)) {
        const char *path = target + 5, *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        char file[4096];
        if (n >= sizeof(file)) {
            out->status = HTTP_REQUEST_URI_TOO_LARGE;
            return;
        }
        memcpy(file, path, n);
        file[n] = '\0';
        rr = ap_sub_req_lookup_file(file, r, &sink);
        if (q) {
            rr->args = apr_pstrdup(rr->pool, q + 1);
        }
        rr->method = "POST";
        rr->method_number = M_POST;
        if (!rr->uri || !*rr->uri) {
            /* A file has no URL of its own (mod_cgid refuses an empty
             * one): the WebSocket's, as SCRIPT_NAME, says where it ran. */
            rr->uri = r->uri;
        }
    } else {
        rr = ap_sub_req_method_uri("POST", target, r, &sink);
    }
    if (rr->status != HTTP_OK) {
        out->status = rr->status;
        ap_destroy_sub_req(rr);
        return;
    }

    /* The request: the events as the body, these headers only. */
    rr->headers_in = apr_table_make(rr->pool, in->nheaders + 2);
    for (int i = 0; i < in->nheaders; i++) {
        apr_table_add(rr->headers_in, in->header_names[i], in->header_values[i]);
    }
    apr_table_setn(rr->headers_in, "Content-Length", apr_off_t_toa(rr->pool, in->len));
    inctx.body = apr_pmemdup(rr->pool, in->body, in->len > 0 ? (apr_size_t)in->len : 1);
    inctx.len = in->len > 0 ? (apr_size_t)in->len : 0;
    inctx.sent = 0;
    source = apr_pcalloc(rr->pool, sizeof(*source));
    source->frec = events_in_filter;
    source->ctx = &inctx;
    source->r = rr;
    source->c = rr->connection;
    source->next = NULL;
    rr->input_filters = rr->proto_input_filters = source;

    rc = ap_run_sub_req(rr);
    for (last = rr; last->next; last = last->next) {
    }
    out->status = (rc != OK && rc != DONE && rc >= 100) ? rc : last->status;
    if (out->status == 0) {
        out->status = HTTP_OK;
    }

    hdrs = apr_array_make(rr->pool, 16, sizeof(const char *));
    apr_table_do(copy_out_header, hdrs, last->headers_out, NULL);
    apr_table_do(copy_out_header, hdrs, last->err_headers_out, NULL);
    if (last->content_type) {
        copy_out_header(hdrs, "Content-Type", last->content_type);
    }
    out->nheaders = hdrs->nelts / 2;
    if (out->nheaders > 0) {
        out->header_names = malloc(sizeof(char *) * out->nheaders);
        out->header_values = malloc(sizeof(char *) * out->nheaders);
        for (int i = 0; i < out->nheaders; i++) {
            out->header_names[i] = strdup(APR_ARRAY_IDX(hdrs, 2 * i, const char *));
            out->header_values[i] = strdup(APR_ARRAY_IDX(hdrs, 2 * i + 1, const char *));
        }
    }
    out->body = outctx.buf;
    out->len = (long)outctx.len;
    out->too_large = outctx.too_large;
    ap_destroy_sub_req(rr);
}

void wsgate_free_subresp(wsgate_subresp *out)
{
    for (int i = 0; i < out->nheaders; i++) {
        free(out->header_names[i]);
        free(out->header_values[i]);
    }
    free(out->header_names);
    free(out->header_values);
    free(out->body);
    memset(out, 0, sizeof(*out));
}

/* SetHandler wsgate-publish: Pushpin's publish API, served by whichever
 * child takes the request; with WsgateCluster it reaches every child. */
int wsgate_publish_handler(request_rec *r)
{
    apr_bucket_brigade *bb;
    char *answer = NULL;
    events_out_ctx body;
    const apr_size_t max = 16 << 20;
    int seen_eos = 0, status;
    apr_bucket_brigade *tmp;
    ap_filter_t sink;

    if (!r->handler || strcmp(r->handler, "wsgate-publish")) {
        return DECLINED;
    }
    if (r->method_number != M_POST) {
        apr_table_setn(r->headers_out, "Allow", "POST");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!wsgate_go.publish) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    /* The body is collected the way a subrequest's answer is. */
    memset(&body, 0, sizeof(body));
    body.max = max;
    memset(&sink, 0, sizeof(sink));
    sink.ctx = &body;
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    tmp = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ, 8192);
        if (rv != APR_SUCCESS) {
            free(body.buf);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        if (!APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
            seen_eos = 1;
        }
        APR_BRIGADE_CONCAT(tmp, bb);
        events_out(&sink, tmp);
        if (body.too_large) {
            free(body.buf);
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    status = wsgate_go.publish(body.buf ? body.buf : "", (long)body.len, &answer);
    free(body.buf);
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (answer) {
        ap_rputs(answer, r);
        free(answer);
    }
    return OK;
}
