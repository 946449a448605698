/*
 * request.c: what apache-websocket plugins find of httpd in the
 * standalone daemon.
 *
 * Plugins written for mod_websocket use APR (pools, threads, atomics,
 * tables) and read httpd's request_rec through server->request(). In
 * httpd both come with the server; in the daemon this file provides them:
 *
 *   - APR itself: libapr-1 and libapr-util-1 are loaded with RTLD_GLOBAL
 *     before the first plugin, so a plugin's APR symbols resolve as they
 *     do inside httpd. They are loaded at run time, not linked: the
 *     daemon runs without them, and only plugins that use APR need them.
 *   - a request_rec per connection, built with httpd's own headers
 *     (apache2-dev) so that its layout is httpd's: a pool that lives as
 *     long as the connection, the request line, headers_in, headers_out
 *     (copied into the 101 after on_connect), err_headers_out,
 *     subprocess_env and notes (empty), the URI fields, the hostname, and
 *     a conn_rec and server_rec with the addresses. Fields that only httpd
 *     can fill (configuration vectors, filters, the log) are NULL;
 *     functions of httpd's own (ap_*) do not exist in the daemon, so a
 *     plugin that calls one fails to load, with dlopen's message naming
 *     the symbol.
 *
 * Without httpd's or APR's headers at build time, or without libapr at
 * run time, request() returns NULL, as it did before this file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cplugin.h"

#if defined(__has_include)
#if __has_include(<httpd.h>) && __has_include(<apr_pools.h>)
#define WSGATE_HAVE_HTTPD 1
#endif
#endif

#ifdef WSGATE_HAVE_HTTPD

/* httpd.h's inline functions and macros are not all -Wextra clean. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <httpd.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>
#pragma GCC diagnostic pop

/* The APR functions this file calls, from the libraries loaded at run
 * time. */
static struct {
    apr_status_t (*initialize)(void);
    apr_status_t (*pool_create_ex)(apr_pool_t **, apr_pool_t *, apr_abortfunc_t, apr_allocator_t *);
    void (*pool_destroy)(apr_pool_t *);
    void *(*palloc)(apr_pool_t *, apr_size_t);
    char *(*pstrdup)(apr_pool_t *, const char *);
    apr_table_t *(*table_make)(apr_pool_t *, int);
    void (*table_add)(apr_table_t *, const char *, const char *);
    apr_status_t (*sockaddr_info_get)(apr_sockaddr_t **, const char *, apr_int32_t, apr_port_t,
                                      apr_int32_t, apr_pool_t *);
    apr_time_t (*time_now)(void);
    const apr_array_header_t *(*table_elts)(const apr_table_t *);
} apr;

static pthread_once_t apr_once = PTHREAD_ONCE_INIT;
static char apr_status[512];
static int apr_ready;

static void apr_load(void)
{
    void *lib = dlopen("libapr-1.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(apr_status, sizeof(apr_status), "APR is not available (%s); plugins that use it will not load, and request() returns NULL",
                 dlerror());
        return;
    }
    /* apr-util (queues, base64, hashes...) is optional: plugins that
     * need it fail to load without it, with the symbol named. */
    if (!dlopen("libaprutil-1.so.0", RTLD_NOW | RTLD_GLOBAL)) {
        (void)dlerror();
    }
#define SYM(field, name)                                                                     \
    do {                                                                                     \
        *(void **)(&apr.field) = dlsym(lib, name);                                           \
        if (!apr.field) {                                                                    \
            snprintf(apr_status, sizeof(apr_status), "APR lacks %s; request() returns NULL", \
                     name);                                                                  \
            return;                                                                          \
        }                                                                                    \
    } while (0)
    SYM(initialize, "apr_initialize");
    SYM(pool_create_ex, "apr_pool_create_ex");
    SYM(pool_destroy, "apr_pool_destroy");
    SYM(palloc, "apr_palloc");
    SYM(pstrdup, "apr_pstrdup");
    SYM(table_make, "apr_table_make");
    SYM(table_add, "apr_table_add");
    SYM(sockaddr_info_get, "apr_sockaddr_info_get");
    SYM(time_now, "apr_time_now");
    SYM(table_elts, "apr_table_elts");
#undef SYM
    if (apr.initialize() != APR_SUCCESS) {
        snprintf(apr_status, sizeof(apr_status), "apr_initialize failed; request() returns NULL");
        return;
    }
    apr_ready = 1;
    snprintf(apr_status, sizeof(apr_status), "APR loaded for plugins; request() gives each connection a request_rec");
}

const char *ws_apr_load(void)
{
    pthread_once(&apr_once, apr_load);
    return apr_status;
}

int ws_apr_ready(void)
{
    pthread_once(&apr_once, apr_load);
    return apr_ready;
}

static void *zalloc(apr_pool_t *p, size_t n)
{
    void *v = apr.palloc(p, n);
    if (v) {
        memset(v, 0, n);
    }
    return v;
}

static char *pdup(apr_pool_t *p, const char *s) { return apr.pstrdup(p, s ? s : ""); }

static apr_sockaddr_t *sockaddr(apr_pool_t *p, const char *ip, int port)
{
    apr_sockaddr_t *sa = NULL;
    /* A numeric address: no name service is asked. */
    if (!ip || !*ip || apr.sockaddr_info_get(&sa, ip, APR_UNSPEC, (apr_port_t)port, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    return sa;
}

void *ws_request_new(const ws_request_info *in)
{
    apr_pool_t *pool = NULL;
    request_rec *r;
    conn_rec *c;
    server_rec *s;
    char *host, *colon;

    if (!ws_apr_ready() || apr.pool_create_ex(&pool, NULL, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    r = zalloc(pool, sizeof(*r));
    c = zalloc(pool, sizeof(*c));
    s = zalloc(pool, sizeof(*s));
    if (!r || !c || !s) {
        apr.pool_destroy(pool);
        return NULL;
    }

    /* The host the client named, without its port, as httpd's
     * r->hostname. */
    host = pdup(pool, in->host);
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (end) {
            *end = '\0';
        }
        host++;
    } else if ((colon = strrchr(host, ':')) != NULL) {
        *colon = '\0';
    }

    s->process = NULL;
    s->defn_name = "wsgate";
    s->server_hostname = host;
    s->port = (apr_port_t)in->local_port;
    s->server_scheme = in->tls ? "https" : "http";
    s->is_virtual = 0;
    s->timeout = apr_time_from_sec(60);
    s->keep_alive_timeout = apr_time_from_sec(5);

    c->pool = pool;
    c->base_server = s;
    c->client_ip = pdup(pool, in->client_ip);
    c->client_addr = sockaddr(pool, in->client_ip, in->client_port);
    c->local_ip = pdup(pool, in->local_ip);
    c->local_addr = sockaddr(pool, in->local_ip, in->local_port);
    c->local_host = host;
    c->id = in->conn_id;
    c->notes = apr.table_make(pool, 1);
    c->keepalive = AP_CONN_CLOSE;

    r->pool = pool;
    r->connection = c;
    r->server = s;
    r->the_request = pdup(pool, in->request_line);
    r->proto_num = HTTP_VERSION(in->proto_major, in->proto_minor);
    r->protocol = apr.pstrdup(pool, in->proto_minor ? "HTTP/1.1" : "HTTP/1.0");
    if (in->proto_major != 1) {
        r->protocol = pdup(pool, "HTTP/2.0");
    }
    r->hostname = host;
    r->request_time = apr.time_now();
    r->status = HTTP_OK;
    r->method = pdup(pool, in->method);
    r->method_number = M_GET;
    r->headers_in = apr.table_make(pool, (int)in->nheaders + 1);
    for (size_t i = 0; i < in->nheaders; i++) {
        apr.table_add(r->headers_in, in->header_names[i], in->header_values[i]);
    }
    r->headers_out = apr.table_make(pool, 4);
    r->err_headers_out = apr.table_make(pool, 1);
    r->subprocess_env = apr.table_make(pool, 1);
    r->notes = apr.table_make(pool, 1);
    r->handler = "websocket-handler";
    r->unparsed_uri = pdup(pool, in->unparsed_uri);
    r->uri = pdup(pool, in->path);
    r->path_info = pdup(pool, "");
    r->args = in->query && *in->query ? pdup(pool, in->query) : NULL;
    r->parsed_uri.scheme = in->tls ? "https" : "http";
    r->parsed_uri.hostname = host;
    r->parsed_uri.path = r->uri;
    r->parsed_uri.query = r->args;
    r->parsed_uri.port = (apr_port_t)in->local_port;
    r->parsed_uri.is_initialized = 1;
    r->useragent_ip = c->client_ip;
    r->useragent_addr = c->client_addr;
    /* The route's authenticated client, where httpd's auth modules put it. */
    r->user = in->user ? pdup(pool, in->user) : NULL;
    r->ap_auth_type = in->auth_type ? pdup(pool, in->auth_type) : NULL;
    return r;
}

size_t ws_request_headers_out(void *rv, const char ***names, const char ***values)
{
    request_rec *r = rv;
    const apr_array_header_t *a = apr.table_elts(r->headers_out);
    const apr_table_entry_t *e = (const apr_table_entry_t *)a->elts;
    size_t n = 0;

    *names = apr.palloc(r->pool, sizeof(char *) * ((size_t)a->nelts + 1));
    *values = apr.palloc(r->pool, sizeof(char *) * ((size_t)a->nelts + 1));
    for (int i = 0; i < a->nelts; i++) {
        if (e[i].key && e[i].val) {
            (*names)[n] = e[i].key;
            (*values)[n] = e[i].val;
            n++;
        }
    }
    return n;
}

void ws_request_free(void *r)
{
    if (r) {
        apr.pool_destroy(((request_rec *)r)->pool);
    }
}

#else /* !WSGATE_HAVE_HTTPD */

const char *ws_apr_load(void)
{
    return "built without httpd's headers (apache2-dev): request() returns NULL in the daemon, and plugins that use APR do not load";
}

int ws_apr_ready(void) { return 0; }

void *ws_request_new(const ws_request_info *in)
{
    (void)in;
    return NULL;
}

size_t ws_request_headers_out(void *r, const char ***names, const char ***values)
{
    (void)r;
    *names = NULL;
    *values = NULL;
    return 0;
}

void ws_request_free(void *r) { (void)r; }

#endif
