/*
 * src/translate/listener.c: proxyless gRPC. A gRPC client with target xds:///<service>.<namespace>:<port>
 * asks for the Listener named "<service>.<namespace>:<port>" (port number or port name). Each TCP cluster
 * gets such Listeners: an api_listener holding an HttpConnectionManager with an inline route configuration
 * (one virtual host matching "*", one route sending everything to the cluster) and the router filter, which
 * is what gRPC (gRFC A27) requires. They are served only to clients that name them. Thread: the translator's
 * owner.
 */
#include <stdio.h>
#include <string.h>

#include "envoy/config/listener/v3/api_listener.upb.h"
#include "envoy/config/listener/v3/listener.upb.h"
#include "envoy/config/route/v3/route.upb.h"
#include "envoy/config/route/v3/route_components.upb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.upb.h"
#include "google/protobuf/any.upb.h"

#include "ekglue/proto.h"

#include "translate_internal.h"

#define HCM_TYPE                                                                                             \
    EKG_TYPE_URL_PREFIX "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_TYPE EKG_TYPE_URL_PREFIX "envoy.extensions.filters.http.router.v3.Router"

static upb_StringView view(const char *s)
{
    return upb_StringView_FromDataAndSize(s, strlen(s));
}

size_t ekg_listener_names(const ekg_service_t *svc, const ekg_service_port_t *port, char names[2][600])
{
    if (port->protocol != EKG_PROTOCOL_TCP)
        return 0;
    size_t n = 0;
    snprintf(names[n++], 600, "%s.%s:%d", svc->meta.name, svc->meta.namespace_, (int)port->port);
    if (port->name[0])
        snprintf(names[n++], 600, "%s.%s:%s", svc->meta.name, svc->meta.namespace_, port->name);
    return n;
}

ekg_err_t ekg_translate_listener(const char *name, const char *cluster, upb_Arena *arena,
                                 envoy_config_listener_v3_Listener **out)
{
    envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager *hcm =
        envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager_new(arena);
    envoy_config_route_v3_RouteConfiguration *rc =
        hcm ? envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager_mutable_route_config(
                  hcm, arena)
            : NULL;
    envoy_config_route_v3_VirtualHost *vh =
        rc ? envoy_config_route_v3_RouteConfiguration_add_virtual_hosts(rc, arena) : NULL;
    envoy_config_route_v3_Route *route = vh ? envoy_config_route_v3_VirtualHost_add_routes(vh, arena) : NULL;
    envoy_config_route_v3_RouteMatch *match =
        route ? envoy_config_route_v3_Route_mutable_match(route, arena) : NULL;
    envoy_config_route_v3_RouteAction *action =
        match ? envoy_config_route_v3_Route_mutable_route(route, arena) : NULL;
    envoy_extensions_filters_network_http_connection_manager_v3_HttpFilter *filter =
        action
            ? envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager_add_http_filters(
                  hcm, arena)
            : NULL;
    struct google_protobuf_Any *router =
        filter ? envoy_extensions_filters_network_http_connection_manager_v3_HttpFilter_mutable_typed_config(
                     filter, arena)
               : NULL;
    if (!router || !envoy_config_route_v3_VirtualHost_add_domains(vh, view("*"), arena))
        return EKG_ENOMEM;
    /* Strings point into name/cluster, which outlive the encoding done by the caller. */
    envoy_config_route_v3_RouteConfiguration_set_name(rc, view(name));
    envoy_config_route_v3_VirtualHost_set_name(vh, view(name));
    envoy_config_route_v3_RouteMatch_set_prefix(match, view(""));
    envoy_config_route_v3_RouteAction_set_cluster(action, view(cluster));
    envoy_extensions_filters_network_http_connection_manager_v3_HttpFilter_set_name(
        filter, view("envoy.filters.http.router"));
    google_protobuf_Any_set_type_url(router, view(ROUTER_TYPE));

    size_t len;
    char *bytes =
        envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager_serialize_ex(
            hcm, kUpb_EncodeOption_Deterministic, arena, &len);
    envoy_config_listener_v3_Listener *l = bytes ? envoy_config_listener_v3_Listener_new(arena) : NULL;
    envoy_config_listener_v3_ApiListener *api =
        l ? envoy_config_listener_v3_Listener_mutable_api_listener(l, arena) : NULL;
    struct google_protobuf_Any *any =
        api ? envoy_config_listener_v3_ApiListener_mutable_api_listener(api, arena) : NULL;
    if (!any)
        return EKG_ENOMEM;
    envoy_config_listener_v3_Listener_set_name(l, view(name));
    google_protobuf_Any_set_type_url(any, view(HCM_TYPE));
    google_protobuf_Any_set_value(any, upb_StringView_FromDataAndSize(bytes, len));
    *out = l;
    return EKG_OK;
}
