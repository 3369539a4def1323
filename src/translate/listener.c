/*
 * src/translate/listener.c: proxyless gRPC. A gRPC client with target xds:///<service>.<namespace>:<port>
 * asks for the Listener named "<service>.<namespace>:<port>" (port number or port name). Each TCP cluster
 * gets such Listeners: an api_listener holding an HttpConnectionManager with an inline route configuration
 * (one virtual host matching "*", one route sending everything to the cluster) and the router filter, which
 * is what gRPC (gRFC A27) requires. They are served only to clients that name them. Thread: the translator's
 * owner.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "common/pbwrite.h"

#include "translate/translate_internal.h"

#define HCM_TYPE                                                                                             \
    EKG_TYPE_URL_PREFIX "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_TYPE EKG_TYPE_URL_PREFIX "envoy.extensions.filters.http.router.v3.Router"

size_t ekg_listener_names(const ekg_service_t *svc, const ekg_service_port_t *port, char names[2][600])
{
    if (port->protocol != EKG_PROTOCOL_TCP)
        return 0;
    size_t n = 0;
    snprintf(names[n++], 600, "%s.%s:%d", svc->meta.name, svc->meta.namespace_, (int)port->port);
    /* A port named like a number would give the same name as the number form (Kubernetes allows it). */
    if (port->name[0] && strspn(port->name, "0123456789") != strlen(port->name))
        snprintf(names[n++], 600, "%s.%s:%s", svc->meta.name, svc->meta.namespace_, port->name);
    return n;
}

/*
 * Writes `field` holding the message currently in scratch[0..len) into *dst. Each nesting level is built in
 * its own buffer, innermost first, because a field's length comes before its bytes.
 */
typedef struct level {
    char buf[4096];
    size_t len;
} level_t;

static void add(level_t *dst, uint32_t field, const void *data, size_t len)
{
    dst->len = (size_t)(ekg_pb_put_field(dst->buf + dst->len, field, data, len) - dst->buf);
}

static void add_str(level_t *dst, uint32_t field, const char *s)
{
    add(dst, field, s, strlen(s));
}

ekg_err_t ekg_listener_encode(const char *name, const char *cluster, char **out, size_t *out_len)
{
    /* Bound: every string appears at most twice, plus fixed text and at most 3 bytes of header per level. */
    if (strlen(name) > 600 || strlen(cluster) > 600)
        return EKG_EINVAL;
    level_t a = {0}, b = {0};
    /* Route{match: RouteMatch{prefix: ""} = 1, route: RouteAction{cluster} = 2} */
    level_t action = {0};
    add_str(&action, 1, cluster);
    add_str(&a, 1, "");       /* a = RouteMatch */
    add(&b, 1, a.buf, a.len); /* b = Route */
    add(&b, 2, action.buf, action.len);
    /* VirtualHost{name = 1, domains = 2, routes = 3} */
    a.len = 0;
    add_str(&a, 1, name);
    add_str(&a, 2, "*");
    add(&a, 3, b.buf, b.len);
    /* RouteConfiguration{name = 1, virtual_hosts = 2} */
    b.len = 0;
    add_str(&b, 1, name);
    add(&b, 2, a.buf, a.len);
    /* HttpConnectionManager{stat_prefix = 2, route_config = 4, http_filters = 5: HttpFilter{name = 1,
     * typed_config = 4: Any}}. gRPC ignores stat_prefix; Envoy's rules require one (min_len 1). */
    level_t router = {0}, filter = {0};
    add_str(&router, 1, ROUTER_TYPE);
    add_str(&filter, 1, "envoy.filters.http.router");
    add(&filter, 4, router.buf, router.len);
    a.len = 0;
    add_str(&a, 2, "ekglue");
    add(&a, 4, b.buf, b.len);
    add(&a, 5, filter.buf, filter.len);
    /* Any{type_url = 1, value = 2} in ApiListener{api_listener = 1} in Listener{name = 1, api_listener = 19}
     */
    b.len = 0;
    add_str(&b, 1, HCM_TYPE);
    add(&b, 2, a.buf, a.len);
    a.len = 0;
    add(&a, 1, b.buf, b.len);
    b.len = 0;
    add_str(&b, 1, name);
    add(&b, 19, a.buf, a.len);
    char *bytes = ekg_xmalloc(b.len);
    memcpy(bytes, b.buf, b.len);
    *out = bytes;
    *out_len = b.len;
    return EKG_OK;
}
