/*
 * wsgate_route.c: a section's merged directives as one route of wsgate's
 * configuration, in JSON, the schema of a route in wsgate.yaml. Go parses
 * it with the same code as the daemon's file (config.ParseRoute).
 */
#include "mod_wsgate.h"

/* The JSON is built as a list of pieces, joined once at the end. */
static void json_str(apr_array_header_t *j, const char *s)
{
    char *buf = apr_palloc(j->pool, strlen(s) * 6 + 3), *d = buf;
    *d++ = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *d++ = '\\';
            *d++ = (char)ch;
        } else if (ch < 0x20) {
            d += apr_snprintf(d, 7, "\\u%04x", ch);
        } else {
            *d++ = (char)ch;
        }
    }
    *d++ = '"';
    *d = '\0';
    APR_ARRAY_PUSH(j, const char *) = buf;
}

/* wsgate_json_string returns s as a JSON string, quotes included. */
const char *wsgate_json_string(apr_pool_t *p, const char *s)
{
    apr_array_header_t *j = apr_array_make(p, 1, sizeof(const char *));
    json_str(j, s);
    return APR_ARRAY_IDX(j, 0, const char *);
}

#define LIT(s) (APR_ARRAY_PUSH(j, const char *) = (s))

static void json_list(apr_array_header_t *j, const apr_array_header_t *list)
{
    LIT("[");
    for (int i = 0; list && i < list->nelts; i++) {
        if (i) {
            LIT(",");
        }
        json_str(j, APR_ARRAY_IDX(list, i, const char *));
    }
    LIT("]");
}

/* The route's URL prefix, which docroot names and programs' SCRIPT_NAME
 * are relative to: a <Location>'s path; for a <Directory> or .htaccess,
 * the URL the directory is reached by; otherwise "/" (a regex or <Files>
 * section has no fixed prefix). Never the request's own URI, which would
 * make one route per URL. */
const char *wsgate_route_path(request_rec *r, const char *section_path)
{
    size_t len;

    if (!section_path || *section_path != '/') {
        return "/";
    }
    len = strlen(section_path);
    if (!strncmp(r->uri, section_path, len)) {
        return section_path;
    }
    if (r->filename && !strncmp(r->filename, section_path, len)) {
        /* uri = prefix + (filename below the directory) + path_info */
        const char *below = r->filename + len;
        size_t nb = strlen(below), ni = r->path_info ? strlen(r->path_info) : 0, nu = strlen(r->uri);
        if (nu >= nb + ni && !strncmp(r->uri + nu - ni - nb, below, nb) &&
            (!ni || !strcmp(r->uri + nu - ni, r->path_info))) {
            return apr_pstrndup(r->pool, r->uri, nu - ni - nb);
        }
    }
    return "/";
}

/* wsgate_route_json describes conf as a route served at path. */
const char *wsgate_route_json(apr_pool_t *p, const wsgate_dir_conf *conf, const char *path)
{
    apr_array_header_t *j = apr_array_make(p, 32, sizeof(const char *));
    const char *loc = path;

    LIT("{\"path\":");
    json_str(j, loc);
    if (conf->max_message_size) {
        LIT(",\"max_message_size\":");
        json_str(j, apr_psprintf(p, "%" APR_INT64_T_FMT, conf->max_message_size));
    }
    if (conf->origin_check != UNSET) {
        static const char *modes[] = {"\"off\"", "\"same\"", "\"trusted\""};
        LIT(",\"origin_check\":");
        LIT(modes[conf->origin_check]);
    }
    if (conf->trusted) {
        LIT(",\"trusted_origins\":");
        json_list(j, conf->trusted);
    }
    if (conf->allow_reserved == 1) {
        LIT(",\"allow_reserved_status_codes\":true");
    }
    if (conf->deflate == 1) {
        LIT(",\"deflate\":true");
    }
    if (conf->idle_timeout) {
        LIT(",\"idle_timeout\":");
        json_str(j, conf->idle_timeout);
    }
    if (conf->keepalive) {
        LIT(",\"keepalive_interval\":");
        json_str(j, conf->keepalive);
    }
    /* The application: a plugin goes separately, as a pointer. */
    if (!conf->plugin) {
        if (conf->app) {
            LIT(",\"app\":");
            json_str(j, conf->app);
        } else if (conf->backend) {
            const char *addr = conf->backend;
            LIT(",\"backend\":{");
            if (!strncmp(addr, "tcp:", 4)) {
                LIT("\"address\":");
                json_str(j, addr + 4);
            } else {
                LIT("\"socket\":");
                json_str(j, !strncmp(addr, "unix:", 5) ? addr + 5 : addr);
            }
            if (conf->backend_mode && !strcmp(conf->backend_mode, "raw")) {
                LIT(",\"protocol\":\"raw\"");
            } else if (conf->backend_mode) {
                LIT(",\"mode\":");
                json_str(j, conf->backend_mode);
            }
            if (conf->backend_hold) {
                LIT(",\"hold\":");
                json_str(j, conf->backend_hold);
            }
            LIT("}");
        } else if (conf->upstream) {
            LIT(",\"backend\":{\"upstream\":");
            json_list(j, conf->upstream);
            LIT("}");
        } else if (conf->events) {
            if (!strncmp(conf->events, "http://", 7) || !strncmp(conf->events, "https://", 8)) {
                LIT(",\"backend\":{\"http\":");
            } else {
                LIT(",\"backend\":{\"subrequest\":");
            }
            json_str(j, conf->events);
            LIT("}");
        } else if (conf->docroot) {
            LIT(",\"docroot\":{\"root\":");
            json_str(j, conf->docroot);
            if (conf->allow) {
                LIT(",\"allow\":");
                json_list(j, conf->allow);
            }
            if (conf->deny) {
                LIT(",\"deny\":");
                json_list(j, conf->deny);
            }
            if (conf->raw_text) {
                LIT(",\"mode\":\"per-client\",\"protocol\":\"raw\",\"message_type\":\"text\"");
            }
            LIT("}");
        } else if (conf->program) {
            LIT(",\"program\":{\"command\":");
            json_list(j, conf->program);
            LIT("}");
        }
    }
    LIT("}");
    return apr_array_pstrcat(p, j, 0);
}

/* wsgate_apachews_route: apache-ws mapped a URL to a file (AddHandler
 * websocket .ws) and its producer listens on that path, taking one
 * connection per client and raw bytes. The route is a raw docroot of the
 * file's directory, served at the URL the directory is reached by, so that
 * every .ws file of a directory shares one route (routes stay bounded by
 * the directories, not the URLs), with the section's other directives
 * (origin check, limits) applied. */
const char *wsgate_apachews_route(request_rec *r, const wsgate_dir_conf *conf, int *status)
{
    wsgate_dir_conf c = *conf;
    const char *slash, *base;
    size_t nu, nb;

    if (!r->filename || r->filename[0] != '/' || (r->path_info && *r->path_info)) {
        *status = HTTP_NOT_FOUND;
        return NULL;
    }
    slash = strrchr(r->filename, '/');
    base = slash + 1;
    nu = strlen(r->uri);
    nb = strlen(base);
    if (!nb || nu < nb + 1 || strcmp(r->uri + nu - nb, base) || r->uri[nu - nb - 1] != '/') {
        *status = HTTP_NOT_FOUND;
        return NULL;
    }
    c.plugin = NULL;
    c.app = c.backend = c.events = NULL;
    c.program = NULL;
    c.docroot = slash == r->filename ? "/" : apr_pstrndup(r->pool, r->filename, slash - r->filename);
    c.allow = apr_array_make(r->pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(c.allow, const char *) = "*.ws";
    c.deny = NULL;
    c.raw_text = 1;
    return wsgate_route_json(r->pool, &c, apr_pstrndup(r->pool, r->uri, nu - nb));
}
